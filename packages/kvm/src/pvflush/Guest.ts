/**
 * The guest side of thread 1 (spec §2.4): a guest page table shared by the guest's CPUs, the
 * TLB shootdown `flush_tlb_multi` — native (IPI every CPU in the mask and wait for each) or
 * `kvm_flush_tlb_multi` (skip preempted vCPUs by setting KVM_VCPU_FLUSH_TLB in their steal-time
 * byte) — the IPI handler `flush_tlb_func`, and the steal clock reader `kvm_steal_clock`.
 * Sending an IPI is the x2APIC ICR write, handled on the fast path without leaving guest mode
 * (`kvm_apic_send_ipi` -> KVM_REQ_EVENT and `kvm_vcpu_kick` of the target).
 */
import type { Memory } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import { Effect } from "effect"
import { KVM_REQ_EVENT } from "../requests/Protocol.js"
import { kvm_make_request_and_kick } from "../requests/Requests.js"
import type { VcpuState } from "../requests/State.js"
import type { Vm } from "../Vm.js"
import * as Inv from "./Invariants.js"
import { KVM_VCPU_FLUSH_TLB, KVM_VCPU_PREEMPTED } from "./State.js"

/** The guest's memory map: one process's page table, page to frame. */
export class GuestMm {
  readonly pte: Array<Memory.Loc> = []
  /** Ghost (PV-1): page to the begin step of the latest flush_tlb_multi of it that has returned. */
  readonly completedFlushBegin = new Map<number, number>()
  private nextFrame = 1
  constructor(readonly vm: Vm) {}
  frame(): number {
    return this.nextFrame++
  }
}

export const makeMm = (vm: Vm, pages: number): Effect.Effect<GuestMm> =>
  Effect.gen(function*() {
    const mm = new GuestMm(vm)
    for (let p = 0; p < pages; p++) mm.pte.push(yield* vm.memory.alloc(`${vm.name}.pte[${p}]`, mm.frame()))
    return mm
  })

/** A guest access to `page` through the TLB (PV-1 on a hit), or a page walk and a fill. */
export const access = (mm: GuestMm, v: VcpuState, page: number): Effect.Effect<number, never, Sim.SimKernel> =>
  Effect.gen(function*() {
    const vm = mm.vm
    const e = v.tlb.get(page)
    if (e !== undefined) {
      yield* Inv.pv1Stale(vm.kernel, v.name, page, e.fill, mm.completedFlushBegin.get(page) ?? -1)
      yield* Sim.pointCost(vm.costs.guestAccessNs)
      vm.count("guest_accesses")
      return e.pfn
    }
    const frame = yield* v.hw.READ_ONCE(mm.pte[page]!)
    v.tlb.set(page, { pfn: frame, fill: vm.kernel.steps })
    vm.count("guest_accesses")
    return frame
  })

/** `flush_tlb_func`, the IPI handler on a target: flush the local TLB, then acknowledge. */
export const flush_tlb_func = (vm: Vm, v: VcpuState): Effect.Effect<void, never, Sim.SimKernel> =>
  Effect.gen(function*() {
    const st = v.st!
    yield* Sim.pointCost(vm.costs.tlbFlushNs)
    v.tlb.clear()
    st.lastFlushAt = vm.kernel.steps
    vm.count("guest_tlb_flushes_ipi")
    for (const from of st.injected.splice(0)) {
      from.acks++
      yield* Sim.wakeAll(from.spin)
    }
  })

/** An initiator's flush in progress: how many acknowledgements it waits for, and since when. */
export interface Shootdown {
  /** The page whose translations are flushed. */
  readonly page: number
  readonly began: number
  readonly beganNs: number
  readonly until: number
  readonly waitingFor: ReadonlyArray<VcpuState>
  readonly deferred: ReadonlySet<VcpuState>
}

/**
 * `native_flush_tlb_multi` / `kvm_flush_tlb_multi` of `page` for `targets` (the other CPUs of
 * the mm): returns the shootdown to wait for with `waitShootdown`. (Targets flush their whole
 * TLB, as `flush_tlb_func` does when a range is large or the generation moved.)
 */
export const flush_tlb_multi = (mm: GuestMm, v: VcpuState, page: number, targets: ReadonlyArray<VcpuState>): Effect.Effect<Shootdown, never, Sim.SimKernel> =>
  Effect.gen(function*() {
    const vm = mm.vm
    const st = v.st!
    const began = vm.kernel.steps
    const beganNs = vm.kernel.now
    vm.count("shootdowns")
    const mask: Array<VcpuState> = []
    const deferred = new Set<VcpuState>()
    for (const t of targets) {
      if (vm.switches.variant.flush === "pv") {
        // kvm_flush_tlb_multi: a preempted vCPU gets KVM_VCPU_FLUSH_TLB instead of an IPI. The
        // page-table write before this cmpxchg pairs with the host's xchg in record_steal_time (§2.6).
        const src = t.st!
        const state = yield* v.hw.READ_ONCE(src.preempted)
        if ((state & KVM_VCPU_PREEMPTED) !== 0) {
          if (yield* v.hw.try_cmpxchg(src.preempted, state, state | KVM_VCPU_FLUSH_TLB)) {
            deferred.add(t)
            src.deferredAt = vm.kernel.steps
            vm.count("ipis_avoided_preempted")
            continue
          }
        }
      }
      mask.push(t)
    }
    // native_flush_tlb_multi: the call-function IPI to each remaining CPU (x2APIC fast path).
    const t = { name: v.name, hw: v.hw, cpu: v.cpu }
    const until = st.acks + mask.length // targets may acknowledge while later IPIs are sent
    for (const target of mask) {
      yield* Sim.pointCost(vm.costs.ipiSendNs)
      target.st!.guestIrqs.push(st)
      vm.count("guest_ipis_sent")
      yield* kvm_make_request_and_kick(vm, KVM_REQ_EVENT, target, t)
    }
    return { page, began, beganNs, until, waitingFor: mask, deferred }
  })

/**
 * One guest step of the initiator spinning in `smp_call_function_many` until every IPI'd CPU
 * has run the handler (`csd_lock_wait`). True when the shootdown is complete.
 */
export const waitShootdown = (
  mm: GuestMm,
  v: VcpuState,
  s: Shootdown,
  spinNs = Infinity
): Effect.Effect<boolean, never, Sim.SimKernel> =>
  Effect.gen(function*() {
    const vm = mm.vm
    const st = v.st!
    for (const t of s.waitingFor) yield* Inv.pv2(vm.kernel, t.st!, s.deferred.has(t))
    if (st.acks < s.until) {
      // Spinning with interrupts enabled: an IPI delivered to this CPU, or the tick
      // (`spinNs`), ends this step so the vCPU loop can exit.
      v.pcpu.wakeOnDeliver = st.spin
      yield* Sim.waitFor(st.spin, spinNs)
      v.pcpu.wakeOnDeliver = undefined
      return false
    }
    if (s.began > (mm.completedFlushBegin.get(s.page) ?? -1)) mm.completedFlushBegin.set(s.page, s.began)
    vm.count("shootdown_wait_ns", vm.kernel.now - s.beganNs)
    vm.sample("shootdown_wait_ns", vm.kernel.now - s.beganNs)
    return true
  })

/** `kvm_steal_clock`: retries while `version` is odd or changed (PV-4). */
export const kvm_steal_clock = (vm: Vm, v: VcpuState, of: VcpuState): Effect.Effect<number, never, Sim.SimKernel> =>
  Effect.gen(function*() {
    const src = of.st!
    for (;;) {
      const v1 = yield* v.hw.READ_ONCE(src.version)
      yield* v.hw.smp_rmb() // virt_rmb(): pairs with the smp_wmb()s in record_steal_time
      const steal = yield* v.hw.READ_ONCE(src.steal)
      yield* v.hw.smp_rmb()
      const v2 = yield* v.hw.READ_ONCE(src.version)
      if (v1 % 2 === 1 || v1 !== v2) continue
      yield* Inv.pv4(vm.kernel, src, v1, v2, steal)
      return steal
    }
  })
