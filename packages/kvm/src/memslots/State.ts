/**
 * The state of mechanism C (spec §3.1): per address space, two `struct kvm_memslots` arrays
 * (active and inactive) whose `generation` is a memory location and whose active one
 * `kvm->memslots[as]` points to (a memory location: `rcu_assign_pointer` / `srcu_dereference`);
 * the MMU-notifier interlock the updater waits on (`mn_active_invalidate_count`); the
 * per-vCPU MMIO cache (`vcpu->arch.mmio_*`, only its own thread touches it); and the ghost
 * records GEN-1, GEN-2 and DEL-1 check against.
 *
 * A slot's contents are plain data: the updater changes an array only while it is inactive
 * (after `synchronize_srcu_expedited`), so no reader can see it change.
 */
import { type Memory, Spinlock } from "@kvmlab/memory"
import type { Mmu } from "../mmu/Mmu.js"
import { Slot } from "../vcpu/State.js"
import type { Vm } from "../Vm.js"

/** `struct kvm_memory_slot`: an immutable copy (`kvm_copy_memslot` makes a new one). */
export interface Memslot {
  readonly id: number
  readonly as_id: number
  readonly base_gfn: number
  readonly npages: number
  /** The host page backing `base_gfn`: the model's pfn of gfn g is `userspace_addr + g - base_gfn`. */
  readonly userspace_addr: number
  readonly flags: number
}

/** `struct kvm_memslots`: one of an address space's two arrays. */
export class KvmMemslots {
  /** `slots->generation`. */
  readonly generation: Memory.Loc
  /** The slots by id (the kernel's id hash and gfn tree). */
  readonly slots = new Map<number, Memslot>()
  constructor(readonly as_id: number, readonly node_idx: number, generation: Memory.Loc) {
    this.generation = generation
  }
}

/** The memslots of a VM (`kvm->memslots`, `kvm->__memslots`, the locks and the notifier interlock). */
export class Memslots {
  /** `kvm->memslots[as]`: which of `arrays[as]` is active (0 or 1). */
  readonly memslots: Array<Memory.Loc> = []
  /** The updater's own copy of `memslots[as]` (only it stores there, under `slots_lock`). */
  readonly activeIndex: Array<number> = []
  /** `kvm->__memslots[as][2]`. */
  readonly arrays: Array<readonly [KvmMemslots, KvmMemslots]> = []
  /** `kvm->slots_lock` (a mutex; only memslot updaters take it). */
  readonly slots_lock: Spinlock.Spinlock
  /** `kvm->mn_invalidate_lock`. */
  readonly mn_invalidate_lock: Spinlock.Spinlock
  /** `kvm->mn_active_invalidate_count`: invalidations between range start and range end. */
  readonly mn_active_invalidate_count: Memory.Loc
  /** `kvm->mn_memslots_update_rcuwait.task`: the updater sleeping until the count is 0. */
  readonly mn_memslots_update_rcuwait: Memory.Loc
  // ---- ghost
  /** GEN-1: every generation stored into an array, with the address space that stored it. */
  readonly published = new Map<number, number>()
  /** GEN-4: per address space, the completed generation whose wrap zap has not flipped yet (or -1). */
  readonly wrapPending: Array<number> = []
  /** Ioctls completed (statistics). */
  ioctls = 0
  /** Virtual ns the updaters slept in `kvm_swap_active_memslots` for the invalidations in flight, and the swaps that had to. */
  swapWaitNs = 0
  swapWaits = 0

  constructor(readonly vm: Vm, readonly mmu: Mmu, readonly nr_as: number, readonly mmioGenBits: number) {
    const m = vm.memory
    this.slots_lock = Spinlock.make(m, `${vm.name}.slots_lock`)
    this.mn_invalidate_lock = Spinlock.make(m, `${vm.name}.mn_invalidate_lock`)
    this.mn_active_invalidate_count = m.alloc(`${vm.name}.mn_active_invalidate_count`, 0)
    this.mn_memslots_update_rcuwait = m.alloc(`${vm.name}.mn_memslots_update_rcuwait.task`, 0)
    for (let as = 0; as < nr_as; as++) {
      // kvm_create_vm: both arrays of address space i start at generation i (unique across
      // address spaces: each update adds nr_as).
      const array = (i: number) => new KvmMemslots(as, i, m.alloc(`${vm.name}.__memslots[${as}][${i}].generation`, as))
      this.arrays.push([array(0), array(1)])
      this.memslots.push(m.alloc(`${vm.name}.memslots[${as}]`, 0))
      this.activeIndex.push(0)
      this.published.set(as, as)
      this.wrapPending.push(-1)
    }
  }
}

/** `vcpu->arch`'s MMIO cache (`vcpu_cache_mmio_info`), and the vCPU's address space (SMM or not). */
export class MmioCache {
  mmio_gva = 0
  mmio_gfn = 0
  mmio_access = 0
  mmio_gen = 0
  /** `kvm_mmu_role_as_id`: 1 while the vCPU is in SMM. The model's vCPUs stay in one. */
  constructor(readonly as_id: number) {}
}

/** Each vCPU's MMIO cache. */
export const mmioCache = new Slot<MmioCache>("MMIO cache")

/** The pfn backing `gfn` in `slot`. */
export const gfnToPfn = (slot: Memslot, gfn: number): number => slot.userspace_addr + (gfn - slot.base_gfn)

/** Whether `gfn` lies in `slot`. */
export const covers = (slot: Memslot, gfn: number): boolean => gfn >= slot.base_gfn && gfn < slot.base_gfn + slot.npages
