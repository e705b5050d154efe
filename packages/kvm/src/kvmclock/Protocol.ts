/**
 * Mechanism D's constants (spec §4.1, `arch/x86/include/asm/pvclock-abi.h`,
 * `Documentation/virt/kvm/x86/msr.rst`) and the clock master's messages.
 */
import { Schema } from "effect"

/** `pvclock_vcpu_time_info.flags`: bit 0, every vCPU's pvti comes from one master pair and the TSCs are synchronised. */
export const PVCLOCK_TSC_STABLE_BIT = 1 << 0
/** bit 1: the host stopped the guest (the guest's watchdogs should not fire); the guest clears it. */
export const PVCLOCK_GUEST_STOPPED = 1 << 1

/**
 * The pvti's fields as words of its guest page (the model stores each field in a word of its own;
 * the kernel's 32-byte struct packs `tsc_shift` and `flags` into one u32 with the padding).
 */
export const PVTI = {
  version: 0,
  tsc_timestamp: 1,
  system_time: 2,
  tsc_to_system_mul: 3,
  tsc_shift: 4,
  flags: 5,
  /** `pvclock_vsyscall_time_info.migrate_count` (the 2015 guest's, after the pvti): bumped by the guest's scheduler when a thread leaves this CPU. */
  migrate_count: 6
} as const
export type PvtiField = keyof typeof PVTI
/** The body `kvm_setup_guest_pvclock` copies between its two version stores, in `memcpy`'s order. */
export const PVTI_BODY: ReadonlyArray<PvtiField> = ["tsc_timestamp", "system_time", "tsc_to_system_mul", "tsc_shift", "flags"]

/** `KVMCLOCK_UPDATE_DELAY`: `kvmclock_update_fn` runs 100 ms after `kvm_gen_kvmclock_update` schedules it. */
export const KVMCLOCK_UPDATE_DELAY_NS = 100_000_000

/** `NSEC_PER_SEC`. */
export const NSEC_PER_SEC = 1_000_000_000

/** The host's clocksource changed (`pvclock_gtod_notify`): `stable` — still TSC-based. */
export class ClocksourceChanged extends Schema.TaggedClass<ClocksourceChanged>()("ClocksourceChanged", { stable: Schema.Boolean }) {}
/** `KVM_SET_CLOCK` from the VMM: kvmclock reads `ns` now. */
export class SetClock extends Schema.TaggedClass<SetClock>()("SetClock", { ns: Schema.Int.pipe(Schema.nonNegative()) }) {}
/** A host-initiated write of `MSR_IA32_TSC` for `vcpu` (`kvm_synchronize_tsc`): its guest TSC reads `value` now. */
export class TscWrite extends Schema.TaggedClass<TscWrite>()("TscWrite", {
  vcpu: Schema.Int.pipe(Schema.nonNegative()),
  value: Schema.Int.pipe(Schema.nonNegative())
}) {}
/**
 * The host's timekeeper adjusts its clock (NTP): a new rate, in parts per million beyond the TSC's,
 * or a step of `stepNs`. Under era=v5.5 the master clock's base (CLOCK_MONOTONIC_RAW plus the boot
 * offset) is not NTP-adjusted, so only era=2015 sees it.
 */
export class HostClockAdjust extends Schema.TaggedClass<HostClockAdjust>()("HostClockAdjust", {
  ratePpm: Schema.optional(Schema.Int.pipe(Schema.between(-500, 500))),
  stepNs: Schema.optional(Schema.Int.pipe(Schema.between(-1_000_000_000, 1_000_000_000)))
}) {}
/**
 * The VMM resumed the VM and tells `vcpu`'s guest it was stopped: KVM_KVMCLOCK_CTRL, a vCPU ioctl
 * (QEMU's `kvmclock_vm_state_change` sends it to every vCPU after its KVM_SET_CLOCK).
 */
export class GuestPaused extends Schema.TaggedClass<GuestPaused>()("GuestPaused", {
  vcpu: Schema.Int.pipe(Schema.nonNegative())
}) {}
/** The clock master stops. */
export class Stop extends Schema.TaggedClass<Stop>()("Stop", {}) {}

/** Every message the clock master takes. */
export const ClockCommand = Schema.Union(ClocksourceChanged, SetClock, TscWrite, HostClockAdjust, GuestPaused, Stop)
export type ClockCommand = typeof ClockCommand.Type

/** Messages the clock master's mailbox holds at most. */
export const CLOCK_MAILBOX_CAPACITY = 4
