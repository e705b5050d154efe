/**
 * The constants of mechanism C (spec §3.1) with the kernel's names, and the memslot manager's
 * mailbox messages: `KVM_SET_USER_MEMORY_REGION` ioctls as a VMM thread issues them
 * (`include/uapi/linux/kvm.h`, `virt/kvm/kvm_main.c`).
 */
import { Schema } from "effect"

/**
 * `KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS`: BIT_ULL(63) in the kernel. Memory locations here hold
 * doubles, exact to 2^53, so the model's flag is bit 52: above every generation a run reaches,
 * and, as in the kernel, outside the MMIO generation an SPTE stores.
 */
export const KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS = 2 ** 52

/** `KVM_MEMSLOT_INVALID` (`kvm_host.h`: 1UL << 16): the slot is being deleted or moved. */
export const KVM_MEMSLOT_INVALID = 1 << 16

/** x86's address spaces (`kvm_arch_nr_memslot_as_ids`): 0 normal, 1 SMM. */
export const KVM_MAX_NR_ADDRESS_SPACES = 2

/** `enum kvm_mr_change`. */
export const enum KvmMrChange {
  KVM_MR_CREATE = 0,
  KVM_MR_DELETE = 1,
  KVM_MR_MOVE = 2,
  KVM_MR_FLAGS_ONLY = 3
}

/** What an ioctl does to its slot, as a VMM's timeline names it. */
export const MemslotOp = Schema.Literal("create", "delete", "move", "flags")
export type MemslotOp = typeof MemslotOp.Type

/** `KVM_SET_USER_MEMORY_REGION(slot = (as << 16) | id, ...)`, for the memslot manager. */
export class SetUserMemoryRegion extends Schema.TaggedClass<SetUserMemoryRegion>()("SetUserMemoryRegion", {
  as: Schema.Int.pipe(Schema.between(0, KVM_MAX_NR_ADDRESS_SPACES - 1)),
  slot: Schema.Int.pipe(Schema.between(0, 32_767)),
  op: MemslotOp,
  baseGfn: Schema.Int.pipe(Schema.nonNegative()),
  npages: Schema.Int.pipe(Schema.nonNegative()),
  /** The host virtual page backing the slot's first gfn (its pfn, as the model maps hva to pfn 1:1). */
  userspaceAddr: Schema.Int.pipe(Schema.nonNegative())
}) {}

/** The VMM closes the VM: the manager ends (`kvm_destroy_vm` takes no more ioctls). */
export class CloseVm extends Schema.TaggedClass<CloseVm>()("CloseVm", {}) {}

/** Every message the memslot manager takes. */
export const MemslotCommand = Schema.Union(SetUserMemoryRegion, CloseVm)
export type MemslotCommand = typeof MemslotCommand.Type

/** Ioctls the manager's mailbox holds at most (the VMM waits beyond). */
export const MEMSLOT_MAILBOX_CAPACITY = 4
