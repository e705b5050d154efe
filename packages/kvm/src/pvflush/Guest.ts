/**
 * The guest side of thread 1 (spec §2.4): a guest page table shared by the guest's CPUs, the
 * TLB shootdown `flush_tlb_multi` — native (IPI every CPU in the mask and wait for each) or
 * `kvm_flush_tlb_multi` (skip preempted vCPUs by setting KVM_VCPU_FLUSH_TLB in their steal-time
 * byte) or Peter Zijlstra's IPI_PENDING / SHOULD_FLUSH scheme (§2.9, made correct with
 * generations; its defects are bug switches) — the IPI handlers, the VM-exit transfer, and the
 * steal clock reader `kvm_steal_clock`.
 * Sending an IPI is the x2APIC ICR write, handled on the fast path without leaving guest mode
 * (`kvm_apic_send_ipi` -> KVM_REQ_EVENT and `kvm_vcpu_kick` of the target).
 */
import type { Memory } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import { KVM_REQ_EVENT, KVM_REQ_STEAL_UPDATE } from "../requests/Protocol.js"
import { kvm_make_request, kvm_make_request_and_kick } from "../requests/Requests.js"
import type { VcpuState } from "../vcpu/State.js"
import type { Vm } from "../Vm.js"
import * as Inv from "./Invariants.js"
import { KVM_VCPU_FLUSH_TLB, KVM_VCPU_IPI_PENDING, KVM_VCPU_PREEMPTED, steal } from "./State.js"

/** The guest's memory map: one process's page table, page to frame. */
export class GuestMm {
  readonly pte: Array<Memory.Loc> = []
  /** Ghost (PV-1): page to the latest flush_tlb_multi of it that has returned: its begin step and initiator. */
  readonly completedFlush = new Map<number, { readonly began: number; readonly by: string }>()
  private nextFrame = 1
  constructor(readonly vm: Vm) {}
  frame(): number {
    return this.nextFrame++
  }
}

export const makeMm = (vm: Vm, pages: number): GuestMm => {
  const mm = new GuestMm(vm)
  for (let p = 0; p < pages; p++) mm.pte.push(vm.memory.alloc(`${vm.name}.pte[${p}]`, mm.frame()))
  return mm
}

/** A guest access to `page` through the TLB (PV-1 on a hit), or a page walk and a fill. */
export function* access(mm: GuestMm, v: VcpuState, page: number): Sim.Gen<number> {
  const vm = mm.vm
  const e = v.tlb.get(page)
  if (e !== undefined) {
    const stale = Inv.pv1Stale(vm.kernel, v.name, page, e.fill, mm.completedFlush.get(page))
    if (stale !== undefined) yield* Sim.fail("PV-1", stale)
    yield* Sim.point(vm.costs.guestAccessNs)
    vm.count("guest_accesses")
    return e.pfn
  }
  const frame = yield* v.hw.READ_ONCE(mm.pte[page]!)
  v.tlb.set(page, { pfn: frame, fill: vm.kernel.steps })
  vm.count("guest_accesses")
  return frame
}

/**
 * The guest's IPI handlers, before its next instruction: `flush_tlb_func` for call-function IPIs
 * (flush the local TLB, then acknowledge), and for the §2.9 TLB vector Peter's handler — return
 * if IPI_PENDING is already clear (the VM-exit path handled it), else flush and clear it with a
 * cmpxchg loop; with generations it also publishes the generation its flush covers.
 */
export function* flush_tlb_func(mm: GuestMm, v: VcpuState): Sim.Gen<void> {
  const vm = mm.vm
  const st = steal.of(v)
  const irqs = st.injected.splice(0)
  const calls = irqs.filter((i) => i.vector === "call-function")
  if (calls.length > 0) {
    yield* localFlush(vm, v)
    for (const { from } of calls) {
      from.acks++
      vm.kernel.wakeAll(from.spin)
    }
  }
  if (irqs.some((i) => i.vector === "tlb")) yield* pv_flush_tlb_handler(mm, v)
}

/**
 * Flushes the guest's TLB on `v` (the IPI handler's local flush, or KVM's
 * `kvm_vcpu_flush_tlb_guest`), counted under `stat`; `event` names a trace event, if any.
 */
export function* flushGuestTlb(vm: Vm, v: VcpuState, stat: string, event?: string): Sim.Gen<void> {
  yield* Sim.point(vm.costs.tlbFlushNs)
  v.tlb.clear()
  steal.of(v).lastFlushAt = vm.kernel.steps
  vm.count(stat)
  if (event !== undefined) vm.kernel.event(event, [v.vcpu_id])
}

const localFlush = (vm: Vm, v: VcpuState) => flushGuestTlb(vm, v, "guest_tlb_flushes_ipi")

/**
 * A `try_cmpxchg` loop on `loc`, starting from the value `state` read before: `next` gives the
 * value to store, or undefined to stop. Returns the last value seen and the value stored (or
 * undefined when it stopped).
 */
function* cmpxchgLoop(
  hw: VcpuState["hw"],
  loc: Memory.Loc,
  state: number,
  next: (s: number) => number | undefined
): Sim.Gen<readonly [number, number | undefined]> {
  for (;;) {
    const n = next(state)
    if (n === undefined) return [state, undefined] as const
    const found = yield* hw.cmpxchg(loc, state, n)
    if (found === state) return [state, n] as const
    state = found
  }
}

/**
 * What §2.9's handler and VM-exit transfer find in the steal-time area: the byte, and with
 * generations the requested and done ones; undefined when there is nothing to do (IPI_PENDING
 * clear and, with generations, no generation outstanding).
 */
function* pendingFlush(vm: Vm, v: VcpuState) {
  const st = steal.of(v)
  const shared = vm.bug("P.sharedPendingBitABA")
  const state = yield* v.hw.READ_ONCE(st.preempted)
  const gen = shared ? 0 : yield* v.hw.READ_ONCE(st.flush_gen_req)
  const done = shared ? 0 : yield* v.hw.READ_ONCE(st.flush_gen_done)
  if ((state & KVM_VCPU_IPI_PENDING) === 0 && (shared || gen <= done)) return undefined
  return { shared, state, gen, done }
}

/**
 * The hardware page walker may fill a TLB entry speculatively at any time (Intel SDM vol. 3,
 * §4.10.2.3): here, with an even chance drawn by the vCPU, one page of the mm, from the page
 * table as it is now. Between a handler's flush and the moment it reports the flush done, such a
 * fill is what makes §2.9's shared bit lose a second initiator's flush.
 */
function* speculativeFill(mm: GuestMm, v: VcpuState): Sim.Gen<void> {
  const k = mm.vm.kernel
  if (k.randomBetween(0, 2) === 0) return
  const page = k.randomBetween(0, mm.pte.length)
  const frame = yield* v.hw.READ_ONCE(mm.pte[page]!)
  v.tlb.set(page, { pfn: frame, fill: k.steps })
  mm.vm.count("speculative_fills")
}

/** Peter's TLB-vector handler (§2.9), with generations unless `P.sharedPendingBitABA`. */
function* pv_flush_tlb_handler(mm: GuestMm, v: VcpuState): Sim.Gen<void> {
  const vm = mm.vm
  const st = steal.of(v)
  // "If IPI_PENDING is already clear, the VMEXIT path handled it": with generations, only
  // when no generation is outstanding either.
  const p = yield* pendingFlush(vm, v)
  if (p === undefined) return
  yield* localFlush(vm, v)
  yield* speculativeFill(mm, v)
  // Clear IPI_PENDING to complete flush_tlb_multi(), a try_cmpxchg loop from a fresh read; the
  // initiator's acquire pairs with it.
  const now = yield* v.hw.READ_ONCE(st.preempted)
  yield* cmpxchgLoop(v.hw, st.preempted, now, (x) => ((x & KVM_VCPU_IPI_PENDING) !== 0 ? x & ~KVM_VCPU_IPI_PENDING : undefined))
  // smp_store_release(): the flush before the generation; pairs with the initiator's acquire.
  if (!p.shared && p.gen > p.done) yield* v.hw.smp_store_release(st.flush_gen_done, p.gen)
}

/**
 * At VM exit, Peter's transfer (§2.9): IPI_PENDING becomes SHOULD_FLUSH, which releases waiting
 * initiators now; the flush happens at the next entry. With generations: any generation not yet
 * done is transferred. The transfer must also request the flush (KVM_REQ_STEAL_UPDATE, which
 * consumes SHOULD_FLUSH in record_steal_time), unless `P.transferWithoutFlushRequest`.
 */
export function* vmexit_transfer(vm: Vm, v: VcpuState): Sim.Gen<void> {
  const st = steal.of(v)
  const hw = v.hw
  const p = yield* pendingFlush(vm, v)
  if (p === undefined) return
  const { done, shared } = p
  yield* cmpxchgLoop(hw, st.preempted, p.state, (x) => (x & ~KVM_VCPU_IPI_PENDING) | KVM_VCPU_FLUSH_TLB)
  st.deferredAt = vm.kernel.steps
  // Clear any pending TLB vector in the virtual APIC, so it is not taken spuriously; only then
  // read the generation to publish: an initiator that took a later one sends its vector after
  // this, and that vector stays pending.
  const keep = st.guestIrqs.filter((i) => i.vector !== "tlb")
  st.guestIrqs.length = 0
  st.guestIrqs.push(...keep)
  vm.count("ipi_pending_transfers")
  if (!shared) {
    const gen = yield* hw.READ_ONCE(st.flush_gen_req)
    if (gen > done) yield* hw.smp_store_release(st.flush_gen_done, gen)
  }
  if (!vm.bug("P.transferWithoutFlushRequest")) {
    yield* kvm_make_request(vm, KVM_REQ_STEAL_UPDATE, v, { name: v.name, hw, cpu: v.cpu })
  }
}

/** An initiator's flush in progress: whom it waits for, and since when. */
export interface Shootdown {
  /** The page whose translations are flushed. */
  readonly page: number
  readonly began: number
  readonly beganNs: number
  /** Native and pv: the acknowledgement count that completes it. */
  readonly until: number
  readonly waitingFor: ReadonlyArray<VcpuState>
  readonly deferred: ReadonlySet<VcpuState>
  /** §2.9 with generations: the generation each waited-for target must publish. */
  readonly gens: ReadonlyMap<VcpuState, number>
  /** The wait's progress: PV-2 checked; §2.9: the targets before this index are done. */
  waited: boolean
  nextTarget: number
}

/**
 * `native_flush_tlb_multi` / `kvm_flush_tlb_multi` / Peter's scheme of `page` for `targets`
 * (the other CPUs of the mm): returns the shootdown to wait for with `waitShootdown`. Targets
 * flush their whole TLB, as `flush_tlb_func` does for a large range or a generation jump.
 */
export function* flush_tlb_multi(mm: GuestMm, v: VcpuState, page: number, targets: ReadonlyArray<VcpuState>): Sim.Gen<Shootdown> {
  const vm = mm.vm
  const st = steal.of(v)
  const began = vm.kernel.steps
  const beganNs = vm.kernel.now
  const flush = vm.switches.variant.flush
  vm.count("shootdowns")
  const mask: Array<VcpuState> = []
  const deferred = new Set<VcpuState>()
  const gens = new Map<VcpuState, number>()
  const drop = (t: VcpuState) => {
    deferred.add(t)
    steal.of(t).deferredAt = vm.kernel.steps
    vm.count("ipis_avoided_preempted")
  }
  for (const t of targets) {
    const src = steal.of(t)
    if (flush === "pv") {
      // kvm_flush_tlb_multi: a preempted vCPU gets KVM_VCPU_FLUSH_TLB instead of an IPI. The
      // page-table write before this cmpxchg pairs with the host's xchg in record_steal_time (§2.6).
      const state = yield* v.hw.READ_ONCE(src.preempted)
      if ((state & KVM_VCPU_PREEMPTED) !== 0 && (yield* v.hw.try_cmpxchg(src.preempted, state, state | KVM_VCPU_FLUSH_TLB))) {
        drop(t)
        continue
      }
    } else if (flush === "pv-ipi-pending") {
      // Peter's loop (§2.9): SHOULD_FLUSH for a preempted vCPU, IPI_PENDING for a running one.
      const [seen, stored] = yield* cmpxchgLoop(
        v.hw,
        src.preempted,
        yield* v.hw.READ_ONCE(src.preempted),
        (x) => ((x & KVM_VCPU_PREEMPTED) !== 0 ? x | KVM_VCPU_FLUSH_TLB : x | KVM_VCPU_IPI_PENDING)
      )
      const next = stored!
      // Another initiator's IPI_PENDING already there: with one shared bit, this request rides on it.
      if ((seen & KVM_VCPU_IPI_PENDING) !== 0) vm.count("ipi_pending_shared")
      // The intent: drop the CPU when it got SHOULD_FLUSH. P.invertedMaskClear keeps Peter's
      // compact rewrite, which drops it when the new state has IPI_PENDING.
      const pending = (next & KVM_VCPU_IPI_PENDING) !== 0
      if (vm.bug("P.invertedMaskClear") ? pending : !pending) {
        drop(t)
        continue
      }
      // The generation this flush needs (the LOCK'd increment is after the page-table write).
      if (!vm.bug("P.sharedPendingBitABA")) gens.set(t, yield* v.hw.atomic_inc_return(src.flush_gen_req))
    }
    mask.push(t)
  }
  // The IPIs to the remaining CPUs (x2APIC fast path): call-function, or the TLB vector.
  const t = { name: v.name, hw: v.hw, cpu: v.cpu }
  const until = st.acks + mask.length // targets may acknowledge while later IPIs are sent
  for (const target of mask) {
    yield* Sim.point(vm.costs.ipiSendNs)
    steal.of(target).guestIrqs.push({ from: st, vector: flush === "pv-ipi-pending" ? "tlb" : "call-function" })
    vm.count("guest_ipis_sent")
    yield* kvm_make_request_and_kick(vm, KVM_REQ_EVENT, target, t)
  }
  return { page, began, beganNs, until, waitingFor: mask, deferred, gens, waited: false, nextTarget: 0 }
}

/** Whether target `t` has completed its part of `s` (§2.9: an acquire load of its state). */
function* ipiPendingDone(vm: Vm, v: VcpuState, s: Shootdown, t: VcpuState): Sim.Gen<boolean> {
  if (vm.bug("P.sharedPendingBitABA")) return ((yield* v.hw.smp_load_acquire(steal.of(t).preempted)) & KVM_VCPU_IPI_PENDING) === 0
  return (yield* v.hw.smp_load_acquire(steal.of(t).flush_gen_done)) >= s.gens.get(t)!
}

/**
 * KVM's emulator translating a guest address by walking the guest page table in software (not
 * through the TLB): returns the frame and the step of the walk, to check PV-1 when the
 * translation is used after a preemption.
 */
export function* emulatorTranslate(mm: GuestMm, v: VcpuState, page: number): Sim.Gen<readonly [number, number]> {
  const frame = yield* v.hw.READ_ONCE(mm.pte[page]!)
  return [frame, mm.vm.kernel.steps] as const
}

/**
 * One guest step of the initiator waiting for its shootdown (`csd_lock_wait`, or Peter's
 * `smp_cond_load_acquire` on each target). True when the shootdown is complete.
 */
export function* waitShootdown(mm: GuestMm, v: VcpuState, s: Shootdown, spinNs = Infinity): Sim.Gen<boolean> {
  const vm = mm.vm
  const st = steal.of(v)
  // PV-2, once per shootdown: the set it waits for does not change while it waits.
  if (!s.waited) {
    s.waited = true
    for (const t of s.waitingFor) {
      const waitsForDeferred = Inv.pv2(vm.kernel, steal.of(t), s.deferred.has(t))
      if (waitsForDeferred !== undefined) yield* Sim.fail("PV-2", waitsForDeferred)
    }
  }
  // What the spin waits on: the acknowledgement count (csd_lock_wait), or (§2.9) the first
  // target whose state is not yet done, watched in memory like smp_cond_load_acquire, one
  // target after the other as Peter's for_each_cpu loop does.
  let spin: Sim.WaitQueue | undefined
  if (vm.switches.variant.flush === "pv-ipi-pending") {
    for (; s.nextTarget < s.waitingFor.length; s.nextTarget++) {
      const t = s.waitingFor[s.nextTarget]!
      if (yield* ipiPendingDone(vm, v, s, t)) continue
      spin = (vm.bug("P.sharedPendingBitABA") ? steal.of(t).preempted : steal.of(t).flush_gen_done).changed
      break
    }
  } else if (st.acks < s.until) spin = st.spin
  if (spin !== undefined) {
    // Spinning with interrupts enabled: an IPI delivered to this CPU (already, or while it
    // spins), or the tick (`spinNs`), ends this step so the vCPU loop can exit.
    if (v.pcpu.pendingIrq) return false
    v.pcpu.wakeOnDeliver = spin
    yield* Sim.waitFor(spin, spinNs)
    v.pcpu.wakeOnDeliver = undefined
    return false
  }
  if (s.began > (mm.completedFlush.get(s.page)?.began ?? -1)) mm.completedFlush.set(s.page, { began: s.began, by: v.name })
  vm.count("shootdown_wait_ns", vm.kernel.now - s.beganNs)
  vm.sample("shootdown_wait_ns", vm.kernel.now - s.beganNs)
  return true
}

/** `kvm_steal_clock`: retries while `version` is odd or changed (PV-4). */
export function* kvm_steal_clock(vm: Vm, v: VcpuState, of: VcpuState): Sim.Gen<number> {
  const src = steal.of(of)
  for (;;) {
    const v1 = yield* v.hw.READ_ONCE(src.version)
    yield* v.hw.smp_rmb() // virt_rmb(): pairs with the smp_wmb()s in record_steal_time
    const steal = yield* v.hw.READ_ONCE(src.steal)
    yield* v.hw.smp_rmb()
    const v2 = yield* v.hw.READ_ONCE(src.version)
    if (v1 % 2 === 1 || v1 !== v2) continue
    const torn = Inv.pv4(vm.kernel, src, v1, v2, steal)
    if (torn !== undefined) yield* Sim.fail("PV-4", torn)
    return steal
  }
}
