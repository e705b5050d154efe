/**
 * The constants of mechanism B (spec §2.1) with the kernel's names and values: the bits of
 * `struct kvm_steal_time`'s `preempted` byte (`arch/x86/include/uapi/asm/kvm_para.h`) and the
 * guest's csd lock flag (`kernel/smp.c`). Mechanism B's actors talk through guest memory and
 * IPIs, so it has no mailbox messages of its own.
 */

/** `KVM_VCPU_PREEMPTED` (bit 0 of `preempted`). */
export const KVM_VCPU_PREEMPTED = 1 << 0
/** `KVM_VCPU_FLUSH_TLB` (bit 1), Peter's SHOULD_FLUSH. */
export const KVM_VCPU_FLUSH_TLB = 1 << 1
/** `KVM_VCPU_IPI_PENDING` (bit 2): Peter's proposal in thread 1 (spec §2.9), never merged. */
export const KVM_VCPU_IPI_PENDING = 1 << 2

/** `CSD_FLAG_LOCK` (`kernel/smp.c`): the csd is in use until its target has run the function. */
export const CSD_FLAG_LOCK = 1
