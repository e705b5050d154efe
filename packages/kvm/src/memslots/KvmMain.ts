/**
 * The memslot half of `virt/kvm/kvm_main.c` (spec §3.3, §10.2): the readers' side
 * (`kvm_vcpu_memslots`, `kvm_memslots`, `kvm_vcpu_gfn_to_memslot`, under the vCPU's SRCU read
 * section) and the updater's (`kvm_set_memslot` with `kvm_invalidate_memslot`,
 * `kvm_swap_active_memslots` and the create/delete/move flows), and the memslot manager: the
 * actor that takes `KVM_SET_USER_MEMORY_REGION` ioctls from its mailbox and runs them one at a
 * time under `slots_lock`, as a VMM's ioctl thread does.
 */
import { Spinlock } from "@kvmlab/memory"
import { Mailbox, Sim } from "@kvmlab/sim"
import { synchronize_srcu_expedited } from "../vcpu/Srcu.js"
import type { VcpuState } from "../vcpu/State.js"
import type { HostThread } from "../Vm.js"
import * as EInv from "../pfncache/Invariants.js"
import * as Inv from "./Invariants.js"
import { type MemslotCommand, KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS, KVM_MEMSLOT_INVALID, type SetUserMemoryRegion } from "./Protocol.js"
import { type KvmMemslots, type Memslot, type Memslots, covers } from "./State.js"
import { kvm_arch_flush_shadow_memslot, kvm_arch_memslots_updated, checkDeleted } from "./X86.js"

// ------------------------------------------------------------------------------ readers

/** `srcu_dereference(kvm->memslots[as], &kvm->srcu)`: the array a reader uses (`__kvm_memslots`). */
export function* __kvm_memslots(ms: Memslots, t: HostThread, as: number): Sim.Gen<KvmMemslots> {
  const i = yield* t.hw.READ_ONCE(ms.memslots[as]!)
  return ms.arrays[as]![i]!
}

/** `slots->generation` of the array a reader dereferenced: [array, generation]. */
export function* memslotsGeneration(ms: Memslots, t: HostThread, as: number): Sim.Gen<readonly [KvmMemslots, number]> {
  const slots = yield* __kvm_memslots(ms, t, as)
  return [slots, yield* t.hw.READ_ONCE(slots.generation)] as const
}

/** `kvm_vcpu_gfn_to_memslot` (the slot search, after `kvm_vcpu_memslots`); an INVALID slot is returned as it is. */
export const search_memslots = (slots: KvmMemslots, gfn: number): Memslot | undefined => {
  for (const s of slots.slots.values()) if (covers(s, gfn)) return s
  return undefined
}

export function* kvm_vcpu_gfn_to_memslot(ms: Memslots, v: VcpuState, as: number, gfn: number): Sim.Gen<Memslot | undefined> {
  return search_memslots(yield* __kvm_memslots(ms, v, as), gfn)
}

// ------------------------------------------------------------------------------ the updater

/** `kvm_get_inactive_memslots`. */
const inactive = (ms: Memslots, as: number): KvmMemslots => ms.arrays[as]![1 - ms.activeIndex[as]!]!

/** `kvm_replace_memslot` on the inactive array: `old` out, `next` in (either may be absent). */
const kvm_replace_memslot = (ms: Memslots, as: number, old: Memslot | undefined, next: Memslot | undefined): void => {
  const slots = inactive(ms, as)
  if (old !== undefined) slots.slots.delete(old.id)
  if (next !== undefined) slots.slots.set(next.id, next)
}

/** Stores `gen` into `slots->generation`, checking GEN-1. */
function* storeGeneration(ms: Memslots, slots: KvmMemslots, gen: number, t: HostThread): Sim.Gen<void> {
  const bad = Inv.gen1(ms.vm.kernel, ms.published, slots.as_id, gen)
  if (bad !== undefined) yield* Sim.fail("GEN-1", bad)
  ms.published.set(gen, slots.as_id)
  yield* t.hw.WRITE_ONCE(slots.generation, gen)
}

/**
 * `kvm_swap_active_memslots`: the inactive array gets the active generation with the
 * in-progress flag; wait (lock dropped while sleeping) until no MMU-notifier invalidation is in
 * flight; publish it (`rcu_assign_pointer`: a release store, paired with the readers'
 * `srcu_dereference`); `synchronize_srcu_expedited` (every reader of the old array has left);
 * then the final generation: in-progress flag dropped, plus the number of address spaces —
 * `kvm_arch_memslots_updated` first (patch 1/27), the store last.
 */
export function* kvm_swap_active_memslots(ms: Memslots, as: number, t: HostThread): Sim.Gen<void> {
  const vm = ms.vm
  const slots = inactive(ms, as)
  const active = ms.arrays[as]![1 - slots.node_idx]!
  const gen = yield* t.hw.READ_ONCE(active.generation)
  if (gen >= KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS) throw new Error(`${vm.name}: address space ${as} is already being updated (generation ${Inv.genName(gen)})`)
  yield* storeGeneration(ms, slots, gen + KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS, t)

  // Do not publish while invalidations are in progress (their start/end accounting would be
  // unbalanced): prepare_to_rcuwait, then sleep while mn_active_invalidate_count != 0.
  yield* Spinlock.spin_lock(t.hw, ms.mn_invalidate_lock)
  yield* t.hw.smp_store_release(ms.mn_memslots_update_rcuwait, 1)
  const t0 = vm.kernel.now
  let waited = false
  while (!vm.bug("M.swapIgnoresInvalidations") && (yield* t.hw.READ_ONCE(ms.mn_active_invalidate_count)) !== 0) {
    waited = true
    yield* Spinlock.spin_unlock(t.hw, ms.mn_invalidate_lock)
    yield* t.hw.smp_cond_load_acquire(ms.mn_active_invalidate_count, (n) => n === 0) // schedule()
    yield* Spinlock.spin_lock(t.hw, ms.mn_invalidate_lock)
  }
  if (waited) {
    ms.swapWaits++
    ms.swapWaitNs += vm.kernel.now - t0
  }
  yield* t.hw.WRITE_ONCE(ms.mn_memslots_update_rcuwait, 0) // finish_rcuwait
  const interlock = EInv.gpc4(vm.kernel, as, vm.memory.peek(ms.mn_active_invalidate_count))
  if (interlock !== undefined) yield* Sim.fail("GPC-4", interlock)
  // rcu_assign_pointer(kvm->memslots[as_id], slots): pairs with srcu_dereference in the readers.
  yield* t.hw.smp_store_release(ms.memslots[as]!, slots.node_idx)
  ms.activeIndex[as] = slots.node_idx
  vm.kernel.event("memslots.publish", [as, slots.node_idx])
  yield* Spinlock.spin_unlock(t.hw, ms.mn_invalidate_lock)

  // slots_arch_lock is released here (no other taker is modelled), before the grace period.
  yield* synchronize_srcu_expedited(vm.srcu!, t, vm.costs.srcuGracePeriodNs)
  vm.count("memslot_generation_updates")

  const next = gen + (vm.bug("M.genStepOne") ? 1 : ms.nr_as)
  if (vm.bug("C.archHookAfterStore")) {
    yield* storeGeneration(ms, slots, next, t)
    yield* kvm_arch_memslots_updated(ms, as, next, t)
  } else {
    yield* kvm_arch_memslots_updated(ms, as, next, t)
    yield* storeGeneration(ms, slots, next, t)
  }
}

/** `kvm_activate_memslot`: publish the inactive array, then make the same change to the now inactive one. */
function* kvm_activate_memslot(ms: Memslots, as: number, old: Memslot | undefined, next: Memslot | undefined, t: HostThread): Sim.Gen<void> {
  yield* kvm_swap_active_memslots(ms, as, t)
  kvm_replace_memslot(ms, as, old, next)
}

/**
 * `kvm_invalidate_memslot`: publish a copy of `old` flagged KVM_MEMSLOT_INVALID (faults on it
 * now retry, and no new SPTE for it is made), then `kvm_arch_flush_shadow_memslot`.
 */
function* kvm_invalidate_memslot(ms: Memslots, old: Memslot, t: HostThread): Sim.Gen<Memslot> {
  const invalid: Memslot = { ...old, flags: old.flags | KVM_MEMSLOT_INVALID }
  kvm_replace_memslot(ms, old.as_id, old, invalid)
  yield* kvm_swap_active_memslots(ms, old.as_id, t)
  // Not propagated to the now inactive array: the slot is deleted or recreated next.
  if (!ms.vm.bug("M.deleteSkipsZap")) yield* kvm_arch_flush_shadow_memslot(ms, old, t)
  return invalid
}

/**
 * `kvm_set_memslot` under `slots_lock`: DELETE and MOVE first install the invalid copy and zap,
 * then every change publishes its final array (one generation update; DELETE and MOVE make two).
 * DEL-1 is checked when a DELETE or MOVE returns.
 */
export function* kvm_set_memslot(ms: Memslots, cmd: SetUserMemoryRegion, t: HostThread): Sim.Gen<void> {
  const vm = ms.vm
  const as = cmd.as
  if (as >= ms.nr_as) throw new Error(`${vm.name}: address space ${as} does not exist (addressSpaces=${ms.nr_as})`)
  const old = inactive(ms, as).slots.get(cmd.slot)
  const next: Memslot = { id: cmd.slot, as_id: as, base_gfn: cmd.baseGfn, npages: cmd.npages, userspace_addr: cmd.userspaceAddr, flags: 0 }
  yield* Spinlock.spin_lock(t.hw, ms.slots_lock)
  vm.kernel.event("memslot.ioctl", [as, cmd.slot, ["create", "delete", "move", "flags"].indexOf(cmd.op)])
  switch (cmd.op) {
    case "create": {
      if (old !== undefined) throw new Error(`${vm.name}: slot ${cmd.slot} of address space ${as} exists; KVM_SET_USER_MEMORY_REGION returns -EEXIST`)
      kvm_replace_memslot(ms, as, undefined, next) // kvm_create_memslot
      yield* kvm_activate_memslot(ms, as, undefined, next, t)
      break
    }
    case "delete":
    case "move": {
      if (old === undefined) throw new Error(`${vm.name}: slot ${cmd.slot} of address space ${as} does not exist; KVM_SET_USER_MEMORY_REGION returns -EINVAL`)
      const invalid = yield* kvm_invalidate_memslot(ms, old, t)
      const moved: Memslot | undefined = cmd.op === "move" ? { ...old, base_gfn: cmd.baseGfn } : undefined
      // kvm_delete_memslot / kvm_move_memslot
      kvm_replace_memslot(ms, as, old, moved)
      yield* kvm_activate_memslot(ms, as, invalid, moved, t)
      break
    }
    case "flags": {
      if (old === undefined) throw new Error(`${vm.name}: slot ${cmd.slot} of address space ${as} does not exist; KVM_SET_USER_MEMORY_REGION returns -EINVAL`)
      const changed: Memslot = { ...old }
      kvm_replace_memslot(ms, as, old, changed) // kvm_update_flags_memslot
      yield* kvm_activate_memslot(ms, as, old, changed, t)
      break
    }
  }
  yield* Spinlock.spin_unlock(t.hw, ms.slots_lock)
  ms.ioctls++
  vm.count("memslot_ioctls")
  if ((cmd.op === "delete" || cmd.op === "move") && old !== undefined) {
    const bad = Inv.del1(vm.kernel, checkDeleted(ms, old, cmd.op))
    if (bad !== undefined) yield* Sim.fail("DEL-1", bad)
  }
}

/**
 * The memslot manager: takes `KVM_SET_USER_MEMORY_REGION` ioctls from its mailbox, in order,
 * until the VMM closes the VM. Returns the ioctls it ran.
 */
export function* memslot_manager(ms: Memslots, box: Mailbox.Mailbox<MemslotCommand>, t: HostThread): Sim.Gen<number> {
  yield* Mailbox.serve(box, "CloseVm", (cmd) => kvm_set_memslot(ms, cmd, t))
  return ms.ioctls
}
