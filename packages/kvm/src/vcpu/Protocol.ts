/**
 * What the VMM asks of a vCPU thread, as Schema-tagged messages in the thread's mailbox (QEMU's
 * `run_on_cpu` work queue and its thread exit): the sender queues the command, then signals the
 * thread (`pthread_kill`), so that KVM_RUN returns -EINTR and the thread, back in userspace, takes
 * its commands before it enters KVM_RUN again.
 */
import { Schema } from "effect"

/** Run `workNs` of virtual time of VMM work on the vCPU thread, in userspace, then go back to KVM_RUN. */
export class RunOnCpu extends Schema.TaggedClass<RunOnCpu>()("RunOnCpu", {
  workNs: Schema.Int.pipe(Schema.nonNegative())
}) {}

/**
 * `KVM_SET_MSRS(MSR_IA32_TSC)` from the VMM, a vCPU ioctl: run on the vCPU's own thread, between
 * two KVM_RUNs, by the mechanism that owns the TSC (kvmclock's `kvm_synchronize_tsc`).
 */
export class SetTsc extends Schema.TaggedClass<SetTsc>()("SetTsc", {
  value: Schema.Int.pipe(Schema.nonNegative())
}) {}

/**
 * `KVM_KVMCLOCK_CTRL` from the VMM, a vCPU ioctl on the vCPU's own thread (QEMU's
 * `do_kvmclock_ctrl` through `run_on_cpu`, on every vCPU when the VM resumes): tell the guest it
 * was stopped, so that its watchdogs do not fire (kvmclock's `kvm_set_guest_paused`).
 */
export class KvmclockCtrl extends Schema.TaggedClass<KvmclockCtrl>()("KvmclockCtrl", {}) {}

/** The vCPU ioctls a mechanism runs on the vCPU's thread between two KVM_RUNs. */
export type VcpuIoctl = SetTsc | KvmclockCtrl

/** Leave the KVM_RUN loop for good (VM teardown). */
export class Stop extends Schema.TaggedClass<Stop>()("Stop", {}) {}

/**
 * The one `Stop` every teardown sends: a message is immutable, and constructing a Schema class
 * validates its fields, which costs a few microseconds per run that exploration does not need.
 */
export const stop: Stop = new Stop()

/** Every command a vCPU thread takes. */
export const VcpuCommand = Schema.Union(RunOnCpu, SetTsc, KvmclockCtrl, Stop)
export type VcpuCommand = typeof VcpuCommand.Type

/** Commands a vCPU thread's mailbox holds at most (a sender waits beyond). */
export const VCPU_MAILBOX_CAPACITY = 4
