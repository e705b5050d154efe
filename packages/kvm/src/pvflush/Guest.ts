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
import { KVM_REQ_STEAL_UPDATE } from "../requests/Protocol.js"
import { kvm_make_request } from "../requests/Requests.js"
import * as Lapic from "../vcpu/Lapic.js"
import type { HostCpu } from "../vcpu/Sched.js"
import * as Spin from "../vcpu/Spin.js"
import type { VcpuState } from "../vcpu/State.js"
import type { Vm } from "../Vm.js"
import * as Inv from "./Invariants.js"
import { smp, steal } from "./State.js"
import { CSD_FLAG_LOCK, KVM_VCPU_FLUSH_TLB, KVM_VCPU_IPI_PENDING, KVM_VCPU_PREEMPTED } from "./Protocol.js"

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
 * The guest's interrupt handlers, before its next instruction: for the call-function vector
 * `flush_smp_call_function_queue` (take the queue, run `flush_tlb_func` — flush the local TLB —
 * and `csd_unlock` each csd), and for §2.9's TLB vector Peter's handler: return if IPI_PENDING is
 * already clear (the VM-exit path handled it), else flush and clear it with a cmpxchg loop; with
 * generations it also publishes the generation its flush covers.
 */
export function* flush_tlb_func(mm: GuestMm, v: VcpuState): Sim.Gen<void> {
  const vm = mm.vm
  if (Lapic.ack(v, Lapic.CALL_FUNCTION_VECTOR)) {
    // llist_del_all(): an xchg of the queue's head.
    yield* v.hw.xchg(smp.of(v).queued, 0)
    const queue = smp.of(v).call_single_queue.splice(0)
    if (queue.length > 0) yield* localFlush(vm, v)
    // csd_unlock(): smp_store_release; pairs with the initiator's csd_lock_wait acquire, so the
    // initiator returns only after this CPU's flush.
    for (const csd of queue) yield* v.hw.smp_store_release(csd, 0)
  }
  if (Lapic.ack(v, Lapic.TLB_FLUSH_VECTOR)) yield* pv_flush_tlb_handler(mm, v)
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

const localFlush = (vm: Vm, v: VcpuState) => flushGuestTlb(vm, v, "guest_tlb_flushes_ipi", "guest.tlb_flush")

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
  yield* Lapic.clear_pending(v, Lapic.TLB_FLUSH_VECTOR)
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
  readonly waitingFor: ReadonlyArray<VcpuState>
  readonly deferred: ReadonlySet<VcpuState>
  /** §2.9 with generations: the generation each waited-for target must publish. */
  readonly gens: ReadonlyMap<VcpuState, number>
  /** The wait's progress: PV-2 checked; the targets before `nextTarget` are done. */
  waited: boolean
  nextTarget: number
  /** When the current PAUSE loop began (for the PLE window), if one is going on. */
  spinSinceNs: number | undefined
  /** pvSchedYield=on: a preempted target to yield to (KVM_HC_SCHED_YIELD) before waiting. */
  readonly schedYieldTo: VcpuState | undefined
}

/**
 * `native_flush_tlb_multi` / `kvm_flush_tlb_multi` / Peter's scheme of `page` for `targets`
 * (the other CPUs of the mm): returns the shootdown to wait for with `waitShootdown`. Targets
 * flush their whole TLB, as `flush_tlb_func` does for a large range or a generation jump.
 */
export function* flush_tlb_multi(mm: GuestMm, v: VcpuState, page: number, targets: ReadonlyArray<VcpuState>): Sim.Gen<Shootdown> {
  const vm = mm.vm
  const began = vm.kernel.steps
  const beganNs = vm.kernel.now
  const flush = vm.switches.variant.flush
  vm.count("shootdowns")
  const deferred = new Set<VcpuState>()
  const gens = new Map<VcpuState, number>()
  const mask: Array<VcpuState> = []
  for (const t of targets) {
    const gen = yield* skipOrRequest(vm, v, t, flush)
    if (gen === "skip") {
      deferred.add(t)
      steal.of(t).deferredAt = vm.kernel.steps
      vm.count("ipis_avoided_preempted")
      if (!vm.bug("M.waitsForSkipped")) continue
    }
    if (typeof gen === "number") gens.set(t, gen)
    mask.push(t)
  }
  let schedYieldTo: VcpuState | undefined
  if (flush === "pv-ipi-pending") {
    // Peter's TLB vector to each remaining CPU (x2APIC: one ICR write per CPU).
    for (const t of mask) yield* Lapic.kvm_apic_send_ipi(vm, v, t, Lapic.TLB_FLUSH_VECTOR)
  } else schedYieldTo = yield* smp_call_function_many(vm, v, mask)
  return { page, began, beganNs, waitingFor: mask, deferred, gens, waited: false, nextTarget: 0, spinSinceNs: undefined, schedYieldTo }
}

/**
 * What `flush_tlb_multi` does for target `t` before any IPI: `"skip"` when a preempted vCPU
 * takes the flush through its steal-time byte instead (pv; §2.9's SHOULD_FLUSH), otherwise the
 * §2.9 generation to wait for (undefined for native and pv).
 */
function* skipOrRequest(vm: Vm, v: VcpuState, t: VcpuState, flush: Vm["switches"]["variant"]["flush"]): Sim.Gen<"skip" | number | undefined> {
  const src = steal.of(t)
  if (flush === "pv") {
    // kvm_flush_tlb_multi: a preempted vCPU gets KVM_VCPU_FLUSH_TLB instead of an IPI. The
    // page-table write before this cmpxchg pairs with the host's xchg in record_steal_time (§2.6).
    const state = yield* v.hw.READ_ONCE(src.preempted)
    if ((state & KVM_VCPU_PREEMPTED) !== 0 && (yield* v.hw.try_cmpxchg(src.preempted, state, state | KVM_VCPU_FLUSH_TLB))) return "skip"
    return undefined
  }
  if (flush !== "pv-ipi-pending") return undefined
  // Peter's loop (§2.9): SHOULD_FLUSH for a preempted vCPU, IPI_PENDING for a running one.
  const [seen, stored] = yield* cmpxchgLoop(
    v.hw,
    src.preempted,
    yield* v.hw.READ_ONCE(src.preempted),
    (x) => ((x & KVM_VCPU_PREEMPTED) !== 0 ? x | KVM_VCPU_FLUSH_TLB : x | KVM_VCPU_IPI_PENDING)
  )
  // Another initiator's IPI_PENDING already there: with one shared bit, this request rides on it.
  if ((seen & KVM_VCPU_IPI_PENDING) !== 0) vm.count("ipi_pending_shared")
  // The intent: drop the CPU when it got SHOULD_FLUSH. P.invertedMaskClear keeps Peter's
  // compact rewrite, which drops it when the new state has IPI_PENDING.
  const pending = (stored! & KVM_VCPU_IPI_PENDING) !== 0
  if (vm.bug("P.invertedMaskClear") ? pending : !pending) return "skip"
  // The generation this flush needs (the LOCK'd increment is after the page-table write).
  return vm.bug("P.sharedPendingBitABA") ? undefined : yield* v.hw.atomic_inc_return(src.flush_gen_req)
}

/**
 * `smp_call_function_many_cond(mask, flush_tlb_func, info, wait)`: for each CPU, `csd_lock` its
 * csd (CSD_FLAG_LOCK, then `smp_wmb()` before the csd is queued) and `llist_add` it to the
 * CPU's call queue; then the call-function IPI to each CPU whose queue was empty (one already
 * queued has its IPI coming). The caller waits with `waitShootdown` (`csd_lock_wait`). Returns
 * the vCPU to yield to, if `kvm_smp_send_call_func_ipi` finds one.
 */
function* smp_call_function_many(vm: Vm, v: VcpuState, mask: ReadonlyArray<VcpuState>): Sim.Gen<VcpuState | undefined> {
  const ipi: Array<VcpuState> = []
  for (const t of mask) {
    const csd = smp.of(v).csd.get(t.vcpu_id)!
    yield* v.hw.WRITE_ONCE(csd, CSD_FLAG_LOCK)
    yield* v.hw.smp_wmb() // csd_lock(): the lock before the csd is queued; pairs with llist_del_all
    // llist_add(): a LOCK'd cmpxchg of the queue's head, so the locked csd is visible before the
    // target can take it; true when the queue was empty.
    const first = (yield* v.hw.atomic_inc_return(smp.of(t).queued)) === 1
    smp.of(t).call_single_queue.push(csd)
    if (first) ipi.push(t)
  }
  for (const t of ipi) yield* Lapic.kvm_apic_send_ipi(vm, v, t, Lapic.CALL_FUNCTION_VECTOR)
  vm.count("call_function_ipis_saved", mask.length - ipi.length)
  return yield* kvm_smp_send_call_func_ipi(vm, v, mask)
}

/**
 * The rest of `kvm_smp_send_call_func_ipi` (with KVM_FEATURE_PV_SCHED_YIELD, `pvSchedYield=on`):
 * the first target that is preempted (`vcpu_is_preempted`, its steal-time byte) is the one to
 * yield to with KVM_HC_SCHED_YIELD; the caller makes the hypercall.
 */
function* kvm_smp_send_call_func_ipi(vm: Vm, v: VcpuState, mask: ReadonlyArray<VcpuState>): Sim.Gen<VcpuState | undefined> {
  if (vm.switches.variant.pvSchedYield !== "on") return undefined
  for (const t of mask) {
    if (((yield* v.hw.READ_ONCE(steal.of(t).preempted)) & KVM_VCPU_PREEMPTED) !== 0) return t
  }
  return undefined
}

/**
 * Whether target `t` has completed its part of `s`, read with an acquire: its csd unlocked
 * (`csd_lock_wait`), or §2.9 its state: the generation published, or with the shared bit
 * IPI_PENDING clear. Returns the location to spin on when not.
 */
function* targetDone(vm: Vm, v: VcpuState, s: Shootdown, t: VcpuState): Sim.Gen<Memory.Loc | undefined> {
  if (vm.switches.variant.flush !== "pv-ipi-pending") {
    const csd = smp.of(v).csd.get(t.vcpu_id)!
    return ((yield* v.hw.smp_load_acquire(csd)) & CSD_FLAG_LOCK) === 0 ? undefined : csd
  }
  const st = steal.of(t)
  if (vm.bug("P.sharedPendingBitABA")) return ((yield* v.hw.smp_load_acquire(st.preempted)) & KVM_VCPU_IPI_PENDING) === 0 ? undefined : st.preempted
  return (yield* v.hw.smp_load_acquire(st.flush_gen_done)) >= s.gens.get(t)! ? undefined : st.flush_gen_done
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

/** What one step of waiting for a shootdown came to. */
export type Wait = "done" | "spinning" | "pause-loop-exit"

/**
 * One guest step of the initiator waiting for its shootdown (`csd_lock_wait`, or Peter's
 * `smp_cond_load_acquire` on each target), spinning with PAUSE: "done" when the shootdown is
 * complete; "pause-loop-exit" when the spin outlasted the PLE window (a VM exit KVM handles
 * with `kvm_vcpu_on_spin`); "spinning" otherwise (an IPI or the tick may end guest mode now).
 */
export function* waitShootdown(mm: GuestMm, v: VcpuState, s: Shootdown, host: HostCpu): Sim.Gen<Wait> {
  const vm = mm.vm
  // PV-2, once per shootdown: the set it waits for does not change while it waits.
  if (!s.waited) {
    s.waited = true
    for (const t of s.waitingFor) {
      const waitsForDeferred = Inv.pv2(vm.kernel, steal.of(t), s.deferred.has(t))
      if (waitsForDeferred !== undefined) yield* Sim.fail("PV-2", waitsForDeferred)
    }
  }
  // What the spin waits on: the first target not yet done, watched in memory like
  // smp_cond_load_acquire, one target after the other as for_each_cpu(csd_lock_wait) does.
  for (; s.nextTarget < s.waitingFor.length; s.nextTarget++) {
    const loc = yield* targetDone(vm, v, s, s.waitingFor[s.nextTarget]!)
    if (loc === undefined) continue
    return yield* spin(vm, v, s, loc, host)
  }
  if (s.began > (mm.completedFlush.get(s.page)?.began ?? -1)) mm.completedFlush.set(s.page, { began: s.began, by: v.name })
  vm.count("shootdown_wait_ns", vm.kernel.now - s.beganNs)
  vm.sample("shootdown_wait_ns", vm.kernel.now - s.beganNs)
  return "done"
}

/**
 * Spins on `loc` with interrupts enabled until it changes, an IPI is delivered to this CPU
 * (already, or meanwhile), the tick wants the CPU, or the PAUSE loop outlasts the PLE window.
 */
function* spin(vm: Vm, v: VcpuState, s: Shootdown, loc: Memory.Loc, host: HostCpu): Sim.Gen<Wait> {
  if (v.pcpu.pendingIrq) {
    s.spinSinceNs = undefined
    return "spinning"
  }
  const since = (s.spinSinceNs ??= vm.kernel.now)
  const ple = Spin.pleEnabled(vm) ? Math.max(1, since + Spin.ple_window(vm, v) - vm.kernel.now) : Infinity
  const tick = host.until_resched(v)
  v.pcpu.wakeOnDeliver = loc.changed
  const timedOut = yield* Sim.waitFor(loc.changed, Math.min(ple, tick))
  v.pcpu.wakeOnDeliver = undefined
  // A wake-up by the location keeps the same PAUSE loop going; anything else ends it.
  if (!timedOut && !v.pcpu.pendingIrq) return "spinning"
  s.spinSinceNs = undefined
  return timedOut && ple <= tick ? "pause-loop-exit" : "spinning"
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
    if ((v1 % 2 === 1 || v1 !== v2) && !vm.bug("M.stealClockNoRetry")) {
      // The retry spins while the host is mid-update (odd): a wait the kernel sees, until the
      // version moves on.
      if (v2 % 2 === 1) yield* v.hw.smp_cond_load_relaxed(src.version, (x) => x !== v2)
      continue
    }
    const torn = Inv.pv4(vm.kernel, src, v1, v2, steal)
    if (torn !== undefined) yield* Sim.fail("PV-4", torn)
    return steal
  }
}
