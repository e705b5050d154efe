/**
 * The host scheduler as the vCPU thread meets it: `need_resched()` at its preemption points,
 * `schedule()`, and KVM's preempt notifiers around every switch (`kvm_sched_out` ->
 * `kvm_arch_vcpu_put`, `kvm_sched_in` -> `kvm_arch_vcpu_load`, `virt/kvm/kvm_main.c`), which is
 * where the mechanisms' `vcpu_put`/`vcpu_load` hooks run. Who takes the CPU, and when, is the
 * `HostCpu` the scenario gives (a runqueue scheduler, a competing host thread, or none).
 */
import { Sim } from "@kvmlab/sim"
import type { Vm } from "../Vm.js"
import type { VcpuState } from "./State.js"

/** What the host does with a vCPU thread's physical CPU. */
export interface HostCpu {
  /** `need_resched()`: another task wants this CPU now. */
  readonly need_resched: (v: VcpuState) => boolean
  /** The tick wants the CPU back while `v` is in guest mode (it forces an external-interrupt exit). */
  readonly guest_should_exit: (v: VcpuState) => boolean
  /** Virtual ns until the tick would preempt `v` (Infinity when nothing else wants the CPU). */
  readonly until_resched: (v: VcpuState) => number
  /** The switch itself: others run; returns when `v` runs again. */
  readonly yield_cpu: (v: VcpuState) => Sim.Gen<void>
  /** `schedule()` of a task going to sleep: the CPU passes to the next runnable task. */
  readonly sleep: (v: VcpuState) => Sim.Gen<void>
  /** `try_to_wake_up()`: the woken task is queued; returns when it runs again. */
  readonly wake: (v: VcpuState) => Sim.Gen<void>
  /**
   * `yield_to(target, true)` from `v`'s thread: > 0 when it yielded (the target is picked next on
   * its CPU, and `v` has let others on its own CPU run), < 0 (-ESRCH) when there was nobody to
   * yield to, 0 when the target could not be boosted (running, or not runnable).
   */
  readonly yield_to: (v: VcpuState, target: VcpuState) => Sim.Gen<number>
  /** `single_task_running()`: nothing else is runnable on `v`'s CPU. */
  readonly single_task_running: (v: VcpuState) => boolean
}

/** A `HostCpu` operation with nothing to do (no one else wants the CPU, or the sleep is not the CPU's business). */
export function* nothing(): Sim.Gen<void> {}

/** -ESRCH: `yield_to` found no other runnable task on either runqueue. */
export const ESRCH = -3

/** `yield_to` with no runqueue to look at: -ESRCH. */
export function* noYield(): Sim.Gen<number> {
  return ESRCH
}

/** A CPU nobody else wants. */
export const alone: HostCpu = {
  need_resched: () => false,
  guest_should_exit: () => false,
  until_resched: () => Infinity,
  yield_cpu: nothing,
  sleep: nothing,
  wake: nothing,
  yield_to: noYield,
  single_task_running: () => true
}

/**
 * A CPU shared through `runqueue` (other vCPU threads pinned to it) that `other` (a host thread
 * that takes it at preemption points) also wants: whichever asked for it at `need_resched` gets
 * it at the switch. Sleeping and waking go through the runqueue.
 */
export const sharedWith = (runqueue: HostCpu, other: HostCpu): HostCpu => {
  let wants: HostCpu | undefined
  return {
    need_resched: (v) => {
      wants = runqueue.need_resched(v) ? runqueue : other.need_resched(v) ? other : undefined
      return wants !== undefined
    },
    guest_should_exit: (v) => runqueue.guest_should_exit(v) || other.guest_should_exit(v),
    until_resched: (v) => Math.min(runqueue.until_resched(v), other.until_resched(v)),
    yield_cpu: (v) => {
      const to = wants ?? runqueue
      wants = undefined
      return to.yield_cpu(v)
    },
    sleep: runqueue.sleep,
    wake: runqueue.wake,
    yield_to: runqueue.yield_to,
    single_task_running: runqueue.single_task_running
  }
}

/**
 * `kvm_sched_out`: `vcpu->preempted` and `vcpu->ready` when the task is still runnable; then
 * `kvm_arch_vcpu_put`, which (x86) notes whether the guest was in kernel mode, for directed yield.
 */
export function* kvm_sched_out(vm: Vm, v: VcpuState, runnable: boolean): Sim.Gen<void> {
  if (runnable) {
    v.preempted = true
    v.ready = true
  }
  if (v.preempted) v.preempted_in_kernel = v.cpl === 0 // kvm_arch_vcpu_in_kernel(): CPL 0
  for (const put of vm.hooks.vcpu_put) yield* put(v)
}

/**
 * `kvm_sched_in`: `vcpu->preempted = vcpu->ready = false`, `kvm_arch_sched_in` (VMX:
 * `shrink_ple_window`, back to the base window), then `kvm_arch_vcpu_load`.
 */
export function* kvm_sched_in(vm: Vm, v: VcpuState): Sim.Gen<void> {
  v.preempted = false
  v.ready = false
  v.ple_window = vm.costs.pleWindowNs
  for (const load of vm.hooks.vcpu_load) yield* load(v)
}

/**
 * `schedule()` of the still-runnable vCPU task (an involuntary preemption): the preempt
 * notifier, the switch (a full barrier: the runqueue lock), whatever runs in between, and back.
 */
export function* preempt(vm: Vm, v: VcpuState, host: HostCpu): Sim.Gen<void> {
  yield* kvm_sched_out(vm, v, true)
  // __schedule(): the runqueue lock and the switch are a full barrier.
  yield* v.hw.smp_mb()
  v.offCpu = true
  v.offCpuSince = vm.kernel.now
  vm.count("preemptions")
  vm.kernel.event("sched.out", [v.vcpu_id])
  yield* host.yield_cpu(v)
  yield* Sim.point(vm.costs.contextSwitchNs)
  v.offCpu = false
  v.run_delay += vm.kernel.now - v.offCpuSince
  vm.kernel.event("sched.in", [v.vcpu_id])
  yield* kvm_sched_in(vm, v)
}

/** `cond_resched()`: one preemption point. */
export function* cond_resched(vm: Vm, v: VcpuState, host: HostCpu): Sim.Gen<void> {
  if (host.need_resched(v)) yield* preempt(vm, v, host)
}

/** A thread that leaves for good (the vCPU thread's return): its CPU passes on, as at a sleep. */
export const exit_thread = (v: VcpuState, host: HostCpu): Sim.Gen<void> => host.sleep(v)

/**
 * `xfer_to_guest_mode_handle_work` for TIF_NEED_RESCHED: schedule while the flag is set, so a
 * vCPU can be preempted again before it re-enters the guest (and before its requests run).
 */
export function* resched_before_entry(vm: Vm, v: VcpuState, host: HostCpu): Sim.Gen<void> {
  while (host.need_resched(v)) yield* preempt(vm, v, host)
}
