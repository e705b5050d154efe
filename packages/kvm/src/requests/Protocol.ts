/**
 * The request and mode constants of `include/linux/kvm_host.h` and the x86 arch requests of
 * `arch/x86/include/asm/kvm_host.h`, with the same names and values (spec §1.1).
 */

/** `vcpu->mode` (`kvm_host.h`). */
export const OUTSIDE_GUEST_MODE = 0
export const IN_GUEST_MODE = 1
export const EXITING_GUEST_MODE = 2
export const READING_SHADOW_PAGE_TABLES = 3

export const modeName = (mode: number): string =>
  ["OUTSIDE_GUEST_MODE", "IN_GUEST_MODE", "EXITING_GUEST_MODE", "READING_SHADOW_PAGE_TABLES"][mode] ?? `mode ${mode}`

/** Bits 0-7 of a request constant: the bit in `vcpu->requests`. */
export const KVM_REQUEST_MASK = 0xff
/** Do not wake a blocked vCPU for this request. */
export const KVM_REQUEST_NO_WAKEUP = 1 << 8
/** The sender waits until every target has acknowledged the IPI. */
export const KVM_REQUEST_WAIT = 1 << 9
/** Set no bit; only force the vCPU out of guest mode. */
export const KVM_REQUEST_NO_ACTION = 1 << 10
/** Arch requests start after the generic ones. */
export const KVM_REQUEST_ARCH_BASE = 8

const KVM_ARCH_REQ_FLAGS = (nr: number, flags: number) => (nr + KVM_REQUEST_ARCH_BASE) | flags
const KVM_ARCH_REQ = (nr: number) => KVM_ARCH_REQ_FLAGS(nr, 0)

export const KVM_REQ_TLB_FLUSH = 0 | KVM_REQUEST_WAIT | KVM_REQUEST_NO_WAKEUP
export const KVM_REQ_VM_DEAD = 1 | KVM_REQUEST_WAIT | KVM_REQUEST_NO_WAKEUP
export const KVM_REQ_UNBLOCK = 2
export const KVM_REQ_OUTSIDE_GUEST_MODE = KVM_REQUEST_NO_ACTION | KVM_REQUEST_WAIT | KVM_REQUEST_NO_WAKEUP

export const KVM_REQ_MMU_SYNC = KVM_ARCH_REQ(3)
export const KVM_REQ_CLOCK_UPDATE = KVM_ARCH_REQ(4)
/** An interrupt to inject: the usual companion of `kvm_vcpu_kick`. */
export const KVM_REQ_EVENT = KVM_ARCH_REQ(6)
export const KVM_REQ_STEAL_UPDATE = KVM_ARCH_REQ(8)
export const KVM_REQ_MASTERCLOCK_UPDATE = KVM_ARCH_REQ(13)
/**
 * Set on every vCPU while a VM-wide kvmclock update runs (`kvm_start_pvclock_update`): never
 * consumed — it only makes `kvm_vcpu_exit_request` cancel every entry until the updater clears it
 * (spec §10.3). WAIT: the setter waits for vCPUs in guest mode to leave; NO_WAKEUP: a halted vCPU
 * sleeps on.
 */
export const KVM_REQ_MCLOCK_INPROGRESS = KVM_ARCH_REQ_FLAGS(14, KVM_REQUEST_WAIT | KVM_REQUEST_NO_WAKEUP)
/** Update this vCPU's kvmclock now and every vCPU's within 100 ms (`kvm_gen_kvmclock_update`). */
export const KVM_REQ_GLOBAL_CLOCK_UPDATE = KVM_ARCH_REQ(16)
/** Drop obsolete roots before the next entry (`kvm_mmu_zap_all_fast`, a zapped active root). */
export const KVM_REQ_MMU_FREE_OBSOLETE_ROOTS = KVM_ARCH_REQ_FLAGS(31, KVM_REQUEST_WAIT | KVM_REQUEST_NO_WAKEUP)

/** The bit a request sets in `vcpu->requests` (`KVM_REQUEST_MASK`). */
export const requestBit = (req: number): number => req & KVM_REQUEST_MASK

export const requestName = (req: number): string => {
  switch (req & ~KVM_REQUEST_WAIT) {
    case KVM_REQ_TLB_FLUSH & ~KVM_REQUEST_WAIT:
      return "KVM_REQ_TLB_FLUSH"
    case KVM_REQ_VM_DEAD & ~KVM_REQUEST_WAIT:
      return "KVM_REQ_VM_DEAD"
    case KVM_REQ_UNBLOCK:
      return "KVM_REQ_UNBLOCK"
    case KVM_REQ_EVENT:
      return "KVM_REQ_EVENT"
    case KVM_REQ_STEAL_UPDATE:
      return "KVM_REQ_STEAL_UPDATE"
    case KVM_REQ_OUTSIDE_GUEST_MODE & ~KVM_REQUEST_WAIT:
      return "KVM_REQ_OUTSIDE_GUEST_MODE"
    case KVM_REQ_MMU_FREE_OBSOLETE_ROOTS & ~KVM_REQUEST_WAIT:
      return "KVM_REQ_MMU_FREE_OBSOLETE_ROOTS"
    case KVM_REQ_MMU_SYNC:
      return "KVM_REQ_MMU_SYNC"
    case KVM_REQ_CLOCK_UPDATE:
      return "KVM_REQ_CLOCK_UPDATE"
    case KVM_REQ_MASTERCLOCK_UPDATE:
      return "KVM_REQ_MASTERCLOCK_UPDATE"
    case KVM_REQ_MCLOCK_INPROGRESS & ~KVM_REQUEST_WAIT:
      return "KVM_REQ_MCLOCK_INPROGRESS"
    case KVM_REQ_GLOBAL_CLOCK_UPDATE:
      return "KVM_REQ_GLOBAL_CLOCK_UPDATE"
    default:
      return `request ${requestBit(req)}`
  }
}

/** The request whose bit is `bit` in `vcpu->requests`, by its kernel name. */
export const requestNameOfBit = (bit: number): string => {
  for (const req of [KVM_REQ_TLB_FLUSH, KVM_REQ_VM_DEAD, KVM_REQ_UNBLOCK, KVM_REQ_MMU_SYNC, KVM_REQ_CLOCK_UPDATE, KVM_REQ_EVENT, KVM_REQ_STEAL_UPDATE, KVM_REQ_MASTERCLOCK_UPDATE, KVM_REQ_MCLOCK_INPROGRESS, KVM_REQ_GLOBAL_CLOCK_UPDATE, KVM_REQ_MMU_FREE_OBSOLETE_ROOTS]) {
    if (requestBit(req) === bit) return requestName(req)
  }
  return `request bit ${bit}`
}

/** `vcpu->arch.mp_state`. */
export const KVM_MP_STATE_RUNNABLE = 0
export const KVM_MP_STATE_HALTED = 3

/** VM-exit reasons the model distinguishes (`EXIT_REASON_*`). */
export const enum ExitReason {
  ExternalInterrupt = 1,
  Hlt = 12,
  Vmcall = 18,
  MsrWrite = 32,
  IoInstruction = 30,
  PauseInstruction = 40,
  EptViolation = 48,
  EptMisconfig = 49
}
