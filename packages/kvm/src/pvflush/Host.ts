/**
 * The host side of mechanism B (spec §2.5), in `arch/x86/kvm/x86.c`'s order: the scheduler's
 * preempt notifiers (`kvm_sched_out` -> `kvm_arch_vcpu_put` -> `kvm_steal_time_set_preempted`,
 * `kvm_sched_in` -> `kvm_arch_vcpu_load` -> KVM_REQ_STEAL_UPDATE) and `record_steal_time`,
 * plus a host thread that takes a vCPU's physical CPU while it is preempted.
 */
import { Sim } from "@kvmlab/sim"
import { ExitReason, KVM_REQ_STEAL_UPDATE } from "../requests/Protocol.js"
import { kvm_make_request } from "../requests/Requests.js"
import type { VcpuState } from "../requests/State.js"
import type { Scheduler } from "../host/Scheduler.js"
import type { Vm } from "../Vm.js"
import { flushGuestTlb, vmexit_transfer } from "./Guest.js"
import { KVM_VCPU_FLUSH_TLB, KVM_VCPU_PREEMPTED, type StealTime } from "./State.js"

const self = (v: VcpuState) => ({ name: v.name, hw: v.hw, cpu: v.cpu })

/** Whether the guest was given KVM_FEATURE_PV_TLB_FLUSH (the scenario's flush variant). */
const pvTlbFlush = (vm: Vm) => vm.switches.variant.flush !== "native"

/** `kvm_vcpu_flush_tlb_guest`: flush the guest's TLB (VPID/ASID). */
export const kvm_vcpu_flush_tlb_guest = (vm: Vm, v: VcpuState): Sim.Gen<void> =>
  flushGuestTlb(vm, v, "guest_tlb_flushes_deferred", "tlb.flush_guest")

/**
 * `kvm_steal_time_set_preempted`, from `kvm_arch_vcpu_put` when `vcpu->preempted`. Reports the
 * preemption only at an instruction boundary (the CVE-2022-39189 fix, undone by
 * `B.preemptedMidEmulation`), with the MSR enabled, and once (the cached copy).
 */
export function* kvm_steal_time_set_preempted(vm: Vm, v: VcpuState): Sim.Gen<void> {
  const st = v.st!
  if (!st.at_instruction_boundary && !vm.bug("B.preemptedMidEmulation")) {
    vm.count("preemption_other")
    return
  }
  vm.count("preemption_reported")
  if (st.cachedPreempted !== 0) return
  if (vm.switches.variant.flush === "pv-ipi-pending") {
    // §2.9 keeps other bits in the byte (a SHOULD_FLUSH transferred at the last exit must
    // survive until record_steal_time), so the store becomes a LOCK OR.
    yield* v.hw.atomic_fetch_or(KVM_VCPU_PREEMPTED, st.preempted)
  } else {
    // copy_to_user_nofault(&st->preempted, &preempted, 1): a single byte store.
    yield* v.hw.WRITE_ONCE(st.preempted, KVM_VCPU_PREEMPTED)
  }
  st.cachedPreempted = KVM_VCPU_PREEMPTED
}

/** `record_steal_time`, for KVM_REQ_STEAL_UPDATE before the guest runs. */
export function* record_steal_time(vm: Vm, v: VcpuState): Sim.Gen<void> {
  const st = v.st!
  const hw = v.hw
  if (vm.bug("B.readCopyWriteback")) return yield* recordByCopy(vm, v, st)
  if (pvTlbFlush(vm)) {
    // (With §2.9 the byte may also carry IPI_PENDING for an IPI still in flight: keep it.)
    // xchgb on the user mapping: totally ordered with the guest's cmpxchg in
    // kvm_flush_tlb_multi on the same byte (§2.6).
    const old = yield* hw.xchg(st.preempted, 0)
    st.cachedPreempted = 0
    if ((old & KVM_VCPU_FLUSH_TLB) !== 0) yield* kvm_vcpu_flush_tlb_guest(vm, v)
  } else {
    yield* hw.WRITE_ONCE(st.preempted, 0)
    st.cachedPreempted = 0
  }
  let version = yield* hw.READ_ONCE(st.version)
  if (version % 2 === 1) version += 1 // uninitialised junk
  yield* hw.WRITE_ONCE(st.version, version + 1)
  // smp_wmb(): version odd before steal; pairs with virt_rmb() in kvm_steal_clock.
  yield* hw.smp_wmb()
  const steal = yield* hw.READ_ONCE(st.steal)
  yield* hw.WRITE_ONCE(st.steal, steal + st.run_delay - st.last_steal)
  st.last_steal = st.run_delay
  // smp_wmb(): steal before the even version; pairs with virt_rmb() in kvm_steal_clock.
  yield* hw.smp_wmb()
  yield* hw.WRITE_ONCE(st.version, version + 2)
}

/**
 * CVE-2019-3016 (`B.readCopyWriteback`): the pre-5.6 code read the whole struct through a cached
 * mapping, decided the flush from its copy, and wrote the copy back: a FLUSH_TLB the guest set in
 * between is overwritten with 0 and never acted on.
 */
function* recordByCopy(vm: Vm, v: VcpuState, st: StealTime): Sim.Gen<void> {
  const hw = v.hw
  const copy = {
    preempted: yield* hw.READ_ONCE(st.preempted),
    version: yield* hw.READ_ONCE(st.version),
    steal: yield* hw.READ_ONCE(st.steal)
  }
  // xchg(&vcpu->arch.st.steal.preempted, 0) on the copy.
  const old = copy.preempted
  copy.preempted = 0
  st.cachedPreempted = 0
  if (pvTlbFlush(vm) && (old & KVM_VCPU_FLUSH_TLB) !== 0) yield* kvm_vcpu_flush_tlb_guest(vm, v)
  if (copy.version % 2 === 1) copy.version += 1
  copy.version += 1
  // kvm_write_guest_cached(whole struct)
  yield* hw.WRITE_ONCE(st.preempted, copy.preempted)
  yield* hw.WRITE_ONCE(st.version, copy.version)
  yield* hw.smp_wmb()
  copy.steal += st.run_delay - st.last_steal
  st.last_steal = st.run_delay
  yield* hw.WRITE_ONCE(st.steal, copy.steal)
  yield* hw.smp_wmb()
  yield* hw.WRITE_ONCE(st.version, copy.version + 1)
}

/** A host thread sharing a vCPU's physical CPU: it runs while the vCPU is preempted. */
export class Hog {
  busy = false
  readonly run: Sim.WaitQueue
  readonly done: Sim.WaitQueue
  constructor(readonly name: string, readonly maxSteps: number) {
    this.run = Sim.makeWaitQueue(`${name} runqueue`)
    this.done = Sim.makeWaitQueue(`${name} yields`)
  }
  /** The thread's body: run some steps whenever it is given the CPU. */
  *body(): Sim.Gen<never> {
    const k = yield* Sim.kernel()
    for (;;) {
      while (!this.busy) yield* Sim.wait(this.run)
      const n = k.randomBetween(1, this.maxSteps + 1)
      for (let i = 0; i < n; i++) yield* Sim.point(50_000)
      this.busy = false
      k.wakeAll(this.done)
    }
  }
}

/**
 * `schedule()` of a runnable vCPU task: `kvm_sched_out` marks it preempted and
 * `kvm_arch_vcpu_put` reports that to the guest; the context switch is a full barrier;
 * `offCpu` runs whatever takes the CPU and returns when the task runs again; then
 * `kvm_sched_in` clears `vcpu->preempted` and `kvm_arch_vcpu_load` requests KVM_REQ_STEAL_UPDATE.
 */
export function* preempt(vm: Vm, v: VcpuState, offCpu: () => Sim.Gen<void>): Sim.Gen<void> {
  const st = v.st!
  st.vcpuPreempted = true // kvm_sched_out: still runnable and wants to run
  yield* kvm_steal_time_set_preempted(vm, v) // kvm_arch_vcpu_put
  // __schedule(): the runqueue lock and the switch are a full barrier.
  yield* v.hw.smp_mb()
  st.offCpu = true
  st.offCpuSince = vm.kernel.now
  vm.count("preemptions")
  vm.kernel.event("sched.out", [v.vcpu_id])
  yield* offCpu()
  yield* Sim.point(vm.costs.contextSwitchNs)
  st.offCpu = false
  st.run_delay += vm.kernel.now - st.offCpuSince
  vm.kernel.event("sched.in", [v.vcpu_id])
  st.vcpuPreempted = false // kvm_sched_in
  yield* kvm_make_request(vm, KVM_REQ_STEAL_UPDATE, v, self(v)) // kvm_arch_vcpu_load
}

/** The CPU goes to `hog` until it yields. */
function* toHog(vm: Vm, hog: Hog): Sim.Gen<void> {
  hog.busy = true
  vm.kernel.wakeAll(hog.run)
  while (hog.busy) yield* Sim.wait(hog.done)
}

/** How a vCPU thread loses its CPU: to a competing host thread at random, or by the tick. */
export type Preemption =
  | { readonly _tag: "hog"; readonly hog: Hog; readonly percent: number }
  | { readonly _tag: "scheduler"; readonly sched: Scheduler }
  | { readonly _tag: "none" }

/** A preemption point (`cond_resched`, return to user work). */
export function* maybePreempt(vm: Vm, v: VcpuState, p: Preemption): Sim.Gen<void> {
  switch (p._tag) {
    case "none":
      return
    case "hog":
      if (p.percent > 0 && vm.kernel.randomBetween(0, 100) < p.percent) yield* preempt(vm, v, () => toHog(vm, p.hog))
      return
    case "scheduler":
      if (p.sched.need_resched(v)) yield* preempt(vm, v, () => p.sched.switchOut(v))
      return
  }
}

/** The run-loop hooks of mechanism B. */
export const hooks = (vm: Vm, p: Preemption) => ({
  record_steal_time: (v: VcpuState) => record_steal_time(vm, v),
  vcpu_run_loop: (v: VcpuState) => {
    v.st!.at_instruction_boundary = false
  },
  handle_exit_irqoff: (v: VcpuState, reason: ExitReason) => {
    // vmx_handle_exit_irqoff: an external interrupt exit is at an instruction boundary.
    if (reason === ExitReason.ExternalInterrupt) v.st!.at_instruction_boundary = true
  },
  inject_pending_event: (v: VcpuState) => {
    const st = v.st!
    st.injected.push(...st.guestIrqs.splice(0))
  },
  cond_resched: (v: VcpuState) => maybePreempt(vm, v, p),
  ...(vm.switches.variant.flush === "pv-ipi-pending" ? { vmexit: (v: VcpuState) => vmexit_transfer(vm, v) } : {}),
  ...(p._tag === "scheduler" ? { guest_should_exit: (v: VcpuState) => p.sched.need_resched(v) } : {})
})
