/**
 * `virt/kvm/kvm_main.c`'s MMU-notifier side (v6.13; spec §5.3, §10.4): `invalidate_range_start`
 * raises `mn_active_invalidate_count` (under `mn_invalidate_lock`), invalidates the pfn caches
 * before taking `mmu_lock`, and — only if a memslot overlaps the range — takes `mmu_lock`,
 * `kvm_mmu_invalidate_begin`, adds each overlapping slot's gfn range and unmaps its SPTEs, and
 * flushes. `invalidate_range_end` — again only with an overlapping memslot — bumps
 * `mmu_invalidate_seq` (`smp_wmb`) and drops `mmu_invalidate_in_progress` under `mmu_lock`, then
 * drops the count, which wakes the memslot updater at 0.
 *
 * The SRCU read section of `__kvm_handle_hva_range` is not modelled: it lies inside the count's
 * window, when no memslot array can be published (GPC-4).
 */
import { Spinlock } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import type { MmuNotifier } from "../host/Mm.js"
import { __kvm_memslots } from "../memslots/KvmMain.js"
import { write_lock, write_unlock } from "../mmu/Mmu.js"
import { kvm_unmap_gfn_range } from "../mmu/Zap.js"
import { kvm_flush_remote_tlbs } from "../requests/Requests.js"
import type { HostThread } from "../Vm.js"
import * as Inv from "./Invariants.js"
import { gfn_to_pfn_cache_invalidate_start } from "./PfnCache.js"
import { INVALID_GPA } from "./Protocol.js"
import type { KvmMmuNotifier } from "./State.js"

/** `kvm_mmu_invalidate_begin`, `mmu_lock` held: one more in progress; the first resets the range. */
function* kvm_mmu_invalidate_begin(kvm: KvmMmuNotifier, t: HostThread): Sim.Gen<void> {
  const n = (yield* t.hw.READ_ONCE(kvm.mmu_invalidate_in_progress)) + 1
  yield* t.hw.WRITE_ONCE(kvm.mmu_invalidate_in_progress, n)
  if (n === 1) {
    yield* t.hw.WRITE_ONCE(kvm.mmu_invalidate_range_start, INVALID_GPA)
    yield* t.hw.WRITE_ONCE(kvm.mmu_invalidate_range_end, INVALID_GPA)
  }
}

/** `kvm_mmu_invalidate_range_add`, `mmu_lock` held: the union of the ranges in progress. */
function* kvm_mmu_invalidate_range_add(kvm: KvmMmuNotifier, t: HostThread, start: number, end: number): Sim.Gen<void> {
  const s = yield* t.hw.READ_ONCE(kvm.mmu_invalidate_range_start)
  if (s === INVALID_GPA) {
    yield* t.hw.WRITE_ONCE(kvm.mmu_invalidate_range_start, start)
    yield* t.hw.WRITE_ONCE(kvm.mmu_invalidate_range_end, end)
  } else {
    yield* t.hw.WRITE_ONCE(kvm.mmu_invalidate_range_start, Math.min(s, start))
    yield* t.hw.WRITE_ONCE(kvm.mmu_invalidate_range_end, Math.max(yield* t.hw.READ_ONCE(kvm.mmu_invalidate_range_end), end))
  }
}

/**
 * `kvm_mmu_invalidate_end`, `mmu_lock` held: `seq++`, then `smp_wmb` (pairs with the `smp_rmb` of
 * `mmu_invalidate_retry` and `mmu_notifier_retry_cache`), then one fewer in progress.
 */
function* kvm_mmu_invalidate_end(kvm: KvmMmuNotifier, t: HostThread): Sim.Gen<void> {
  yield* t.hw.WRITE_ONCE(kvm.mmu_invalidate_seq, (yield* t.hw.READ_ONCE(kvm.mmu_invalidate_seq)) + 1)
  yield* t.hw.smp_wmb()
  yield* t.hw.WRITE_ONCE(kvm.mmu_invalidate_in_progress, (yield* t.hw.READ_ONCE(kvm.mmu_invalidate_in_progress)) - 1)
}

/**
 * `__kvm_handle_hva_range`: over every address space's memslots overlapping host pages
 * `[start, end)`, the first one found takes `mmu_lock` and runs `on_lock`; `unmap` runs
 * `kvm_mmu_unmap_gfn_range` on each (range add, SPTEs cleared) and flushes at the end if any
 * SPTE went. Returns whether a memslot overlapped.
 */
function* __kvm_handle_hva_range(
  kvm: KvmMmuNotifier,
  t: HostThread,
  start: number,
  end: number,
  on_lock: (kvm: KvmMmuNotifier, t: HostThread) => Sim.Gen<void>,
  unmap: boolean
): Sim.Gen<boolean> {
  const ms = kvm.ms
  let found = false
  let flush = false
  for (let as = 0; as < ms.nr_as; as++) {
    const slots = yield* __kvm_memslots(ms, t, as)
    for (const slot of slots.slots.values()) {
      const hva_start = Math.max(start, slot.userspace_addr)
      const hva_end = Math.min(end, slot.userspace_addr + slot.npages)
      if (hva_start >= hva_end) continue
      if (!found) {
        found = true
        yield* write_lock(ms.mmu, t)
        yield* on_lock(kvm, t)
        if (!unmap) break
      }
      const gfnStart = slot.base_gfn + (hva_start - slot.userspace_addr)
      const gfnEnd = slot.base_gfn + (hva_end - slot.userspace_addr)
      yield* kvm_mmu_invalidate_range_add(kvm, t, gfnStart, gfnEnd)
      if (yield* kvm_unmap_gfn_range(ms.mmu, as, gfnStart, gfnEnd, t)) flush = true
    }
    if (found && !unmap) break
  }
  if (flush) yield* kvm_flush_remote_tlbs(kvm.vm, t)
  if (found) yield* write_unlock(ms.mmu, t)
  return found
}

/** `kvm_mmu_notifier_invalidate_range_start`. `E.invalidateAtEnd` (Woodhouse's 4/5) moves the cache invalidation to the end. */
export function* kvm_mmu_notifier_invalidate_range_start(kvm: KvmMmuNotifier, t: HostThread, start: number, end: number): Sim.Gen<void> {
  const ms = kvm.ms
  // Prevent memslot modification between range_start() and range_end().
  yield* Spinlock.spin_lock(t.hw, ms.mn_invalidate_lock)
  const count = (yield* t.hw.READ_ONCE(ms.mn_active_invalidate_count)) + 1
  yield* t.hw.WRITE_ONCE(ms.mn_active_invalidate_count, count)
  if (kvm.vm.switches.variant.gpcWait !== "mainline") {
    // The hva range of the invalidations in flight (Woodhouse's 2/5): reset by the first, a union after.
    const s = count === 1 ? start : Math.min(start, yield* t.hw.READ_ONCE(kvm.mmu_gpc_invalidate_range_start))
    const e = count === 1 ? end : Math.max(end, yield* t.hw.READ_ONCE(kvm.mmu_gpc_invalidate_range_end))
    yield* t.hw.WRITE_ONCE(kvm.mmu_gpc_invalidate_range_start, s)
    yield* t.hw.WRITE_ONCE(kvm.mmu_gpc_invalidate_range_end, e)
  }
  yield* Spinlock.spin_unlock(t.hw, ms.mn_invalidate_lock)
  kvm.vm.count("mmu_notifier_invalidations")
  // The pfn caches before mmu_lock (and so before in_progress is raised): they rely on the count.
  if (!kvm.vm.bug("E.invalidateAtEnd")) yield* gfn_to_pfn_cache_invalidate_start(kvm, t, start, end)
  if (yield* __kvm_handle_hva_range(kvm, t, start, end, kvm_mmu_invalidate_begin, true)) kvm.vm.count("mmu_notifier_memslot_hits")
}

/** `kvm_mmu_notifier_invalidate_range_end`; then GPC-2 over the caches the range covers (those no refresher has in hand). */
export function* kvm_mmu_notifier_invalidate_range_end(kvm: KvmMmuNotifier, t: HostThread, start: number, end: number): Sim.Gen<void> {
  const ms = kvm.ms
  yield* __kvm_handle_hva_range(kvm, t, start, end, kvm_mmu_invalidate_end, false)
  if (kvm.vm.bug("E.invalidateAtEnd")) yield* gfn_to_pfn_cache_invalidate_start(kvm, t, start, end)
  yield* Spinlock.spin_lock(t.hw, ms.mn_invalidate_lock)
  // gpcSeq=every: an end every refresher notices, memslot or not (before the count drops: the
  // refresher reads the count, smp_rmb, then the sequence; the unlock orders the two stores).
  if (kvm.vm.switches.variant.gpcSeq === "every") yield* t.hw.WRITE_ONCE(kvm.mn_invalidate_seq, (yield* t.hw.READ_ONCE(kvm.mn_invalidate_seq)) + 1)
  const n = (yield* t.hw.READ_ONCE(ms.mn_active_invalidate_count)) - 1
  yield* t.hw.WRITE_ONCE(ms.mn_active_invalidate_count, n)
  yield* Spinlock.spin_unlock(t.hw, ms.mn_invalidate_lock)
  // At 0, rcuwait_wake_up of the memslot updater: it waits on the count's location.
  const m = kvm.vm.memory
  for (const gpc of kvm.gpc_list) {
    // A cache being refreshed is between two states (its stores may still sit in the refresher's
    // store buffer, which this look at memory does not see); its next user checks it (GPC-1).
    if (gpc.refreshers > 0 || gpc.lock.writer !== -1) continue
    const bad = Inv.gpc2(kvm.vm.kernel, gpc, m.peek(gpc.valid) === 1, m.peek(gpc.pfn), m.peek(gpc.uhva), start, end, kvm.mm)
    if (bad !== undefined) yield* Sim.fail("GPC-2", bad)
  }
}

/** The VM as one of the MM's notifiers (`kvm_mmu_notifier_ops`). */
export const notifier = (kvm: KvmMmuNotifier): MmuNotifier => ({
  invalidate_range_start: (t, start, end) => kvm_mmu_notifier_invalidate_range_start(kvm, t, start, end),
  invalidate_range_end: (t, start, end) => kvm_mmu_notifier_invalidate_range_end(kvm, t, start, end)
})
