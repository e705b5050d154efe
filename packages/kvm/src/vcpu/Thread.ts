/**
 * The VMM's vCPU thread: the userspace loop around the KVM_RUN ioctl (`kvm_vcpu_ioctl` ->
 * `vcpu_load`, `kvm_arch_vcpu_ioctl_run` -> `vcpu_run`, `vcpu_put`), taking the VMM's commands
 * from its mailbox whenever KVM_RUN returns -EINTR for a signal. `vcpu_put` at the end of KVM_RUN
 * is a voluntary put: the task is not preempted. The other side, `command`, is how VMM threads
 * (and the scenario's teardown) reach a vCPU thread.
 */
import { Mailbox, Sim } from "@kvmlab/sim"
import { kvm_vcpu_kick } from "../requests/Requests.js"
import type { HostThread, Vm } from "../Vm.js"
import { type VCPU_MAILBOX_CAPACITY, type VcpuCommand } from "./Protocol.js"
import type { HostCpu } from "./Sched.js"
import { kvm_vcpu_srcu_read_lock, kvm_vcpu_srcu_read_unlock } from "./Srcu.js"
import { Slot, TIF_SIGPENDING, type VcpuState } from "./State.js"
import { EINTR, type Guest, vcpu_run } from "./Vcpu.js"

/** Each vCPU thread's mailbox of VMM commands. */
export const mailbox = new Slot<Mailbox.Mailbox<VcpuCommand>>("VMM command mailbox")

/** Makes `v`'s mailbox (`capacity` commands). */
export const makeMailbox = (k: Sim.Kernel, v: VcpuState, capacity: typeof VCPU_MAILBOX_CAPACITY | number): void =>
  mailbox.set(v, Mailbox.make<VcpuCommand>(k, `${v.name} commands`, capacity))

/** `kvm_vcpu_ioctl(KVM_RUN)`: `vcpu_load`, `vcpu_run`, `vcpu_put`. */
export const kvm_vcpu_ioctl_run = Sim.proc(function* kvm_vcpu_ioctl_run(vm: Vm, v: VcpuState, guest: Guest, host: HostCpu): Sim.Gen<number> {
  for (const load of vm.hooks.vcpu_load) yield* load(v) // vcpu_load -> kvm_arch_vcpu_load
  // kvm_arch_vcpu_ioctl_run: vcpu_run inside the vCPU's SRCU read section.
  if (vm.srcu !== undefined) yield* kvm_vcpu_srcu_read_lock(vm.srcu, v)
  const r = yield* vcpu_run(vm, v, guest, host)
  if (vm.srcu !== undefined) yield* kvm_vcpu_srcu_read_unlock(vm.srcu, v)
  for (const put of vm.hooks.vcpu_put) yield* put(v) // vcpu_put -> kvm_arch_vcpu_put (not preempted)
  return r
})

/**
 * The vCPU thread's body: KVM_RUN until a signal brings it back to userspace, then the queued
 * commands; `Stop` ends it. Returns what the last KVM_RUN returned.
 */
export const vcpu_thread = Sim.proc(function* vcpu_thread(vm: Vm, v: VcpuState, guest: Guest, host: HostCpu): Sim.Gen<number> {
  const box = mailbox.of(v)
  for (;;) {
    const r = yield* kvm_vcpu_ioctl_run(vm, v, guest, host)
    if (r !== EINTR) return r
    // get_signal(): the signal is dequeued and delivered to userspace (SIG_IPI's empty handler);
    // recalc_sigpending() clears TIF_SIGPENDING.
    yield* v.hw.clear_bit(TIF_SIGPENDING, v.thread_flags)
    for (let cmd = yield* box.poll(); cmd !== undefined; cmd = yield* box.poll()) {
      if (cmd._tag === "Stop") return r
      vm.count("vmm_commands")
      if (cmd._tag === "RunOnCpu") yield* Sim.point(cmd.workNs)
      else for (const ioctl of vm.hooks.vcpu_ioctl) yield* ioctl(v, cmd)
    }
  }
})

/** A VMM thread sends `cmd` to `v`'s thread: queue it, then signal the thread out of KVM_RUN. */
export function* command(vm: Vm, v: VcpuState, cmd: VcpuCommand, t: HostThread): Sim.Gen<void> {
  yield* mailbox.of(v).send(cmd)
  yield* signal_wake_up(vm, v, t)
}

/**
 * `pthread_kill` -> `signal_wake_up`: set TIF_SIGPENDING (a LOCK-prefixed `set_bit`, a full
 * barrier: pairs with the entry barrier before `kvm_vcpu_exit_request` reads the flags, A1), then
 * wake the task or kick its CPU (`wake_up_state` / `kick_process`, which for a vCPU thread is
 * `kvm_vcpu_kick`'s wake-up and IPI): the thread leaves guest mode or its halt, and sees the signal.
 */
export function* signal_wake_up(vm: Vm, v: VcpuState, t: HostThread): Sim.Gen<void> {
  yield* t.hw.set_bit(TIF_SIGPENDING, v.thread_flags)
  yield* kvm_vcpu_kick(vm, v, t)
}
