/**
 * The shadow MMU's zaps (spec §3.4, §3.5, §10.2), after `arch/x86/kvm/mmu/mmu.c`:
 * `kvm_mmu_zap_all_fast` (flip `mmu_valid_gen`, make every vCPU drop obsolete roots, then
 * `kvm_zap_obsolete_pages` from the tail), `kvm_mmu_zap_memslot` (only the slot's pages, the
 * quirk off), `kvm_mmu_zap_all` (from the head), and `kvm_mmu_invalidate_mmio_sptes` (the MMIO
 * generation's wrap). ZAP-1 watches each zap with a liveness monitor; LAT-1 is checked at each
 * page zapped under a contended lock.
 */
import { Sim } from "@kvmlab/sim"
import * as CInv from "../memslots/Invariants.js"
import type { Memslot } from "../memslots/State.js"
import { KVM_REQ_MMU_FREE_OBSOLETE_ROOTS } from "../requests/Protocol.js"
import { kvm_make_all_cpus_request } from "../requests/Requests.js"
import type { HostThread } from "../Vm.js"
import {
  __kvm_mmu_prepare_zap_page,
  cond_resched_rwlock_write,
  is_obsolete_sp,
  kvm_mmu_commit_zap_page,
  kvm_mmu_remote_flush_or_zap,
  type Mmu,
  type MmuPage,
  write_lock,
  write_unlock
} from "./Mmu.js"
import { is_shadow_present_pte, mmio_wrap_value } from "./Spte.js"

/** Zaps one page, checking LAT-1 (the holder may not zap past a batch while someone waits). */
function* zapPage(mmu: Mmu, sp: MmuPage, invalid_list: Array<MmuPage>, t: HostThread): Sim.Gen<readonly [boolean, number]> {
  const r = yield* __kvm_mmu_prepare_zap_page(mmu, sp, invalid_list, t)
  const bad = CInv.lat1(mmu.vm.kernel, t.name, mmu.mmu_lock.zapsWhileContended, mmu.options.zapBatch)
  if (bad !== undefined) yield* Sim.fail("LAT-1", bad)
  return r
}

/** ZAP-1's monitor for a zap that starts now, with the pages on `active_mmu_pages` to get rid of. */
const zap1 = (mmu: Mmu, what: string): Sim.Monitor => {
  const pages = mmu.active_mmu_pages
  const m = mmu.vm.kernel.monitor("ZAP-1", { maxHotSteps: CInv.zap1Bound(pages.length, pages.reduce((n, sp) => n + sp.entries.length, 0)), fair: true })
  m.hot(`${what} began with ${pages.length} shadow pages to zap and has not finished`)
  return m
}

/**
 * `kvm_zap_obsolete_pages`: from the tail (oldest first), stop at the first page that is not
 * obsolete (FIFO: everything newer is valid); skip invalid pages; after a batch of
 * `BATCH_ZAP_PAGES` zapped, drop `mmu_lock` if it is contended and restart from the tail;
 * commit the whole `invalid_list` once, at the end.
 */
export function* kvm_zap_obsolete_pages(mmu: Mmu, t: HostThread): Sim.Gen<void> {
  const vm = mmu.vm
  const invalid_list: Array<MmuPage> = []
  let batch = 0
  restart: for (;;) {
    for (let i = 0; i < mmu.active_mmu_pages.length;) {
      const sp = mmu.active_mmu_pages[i]!
      if (!is_obsolete_sp(mmu, sp)) break
      if (sp.invalid) {
        i++ // WARN_ON_ONCE: invalid pages never go back on the list
        continue
      }
      if (batch >= mmu.options.zapBatch && !vm.bug("C.holdLockWholeZap") && (yield* cond_resched_rwlock_write(mmu, t))) {
        batch = 0
        continue restart
      }
      const [unstable, nr_zapped] = yield* zapPage(mmu, sp, invalid_list, t)
      batch += nr_zapped
      if (unstable) continue restart
      // The page left the list (to invalid_list, or off it as a loaded root): i is the next.
    }
    break
  }
  // Kick every vCPU (the remote flush) before freeing: lockless walkers may still be in them.
  yield* kvm_mmu_commit_zap_page(mmu, invalid_list, t)
}

/**
 * `kvm_mmu_zap_all_fast` (the caller holds `slots_lock`): under `mmu_lock`, flip
 * `mmu_valid_gen` (every page now obsolete), make every vCPU drop its obsolete root before its
 * next entry (`KVM_REQ_MMU_FREE_OBSOLETE_ROOTS`, in the same critical section), then zap the
 * obsolete pages. New pages are made under the new generation at the head, so the tail walk ends.
 */
export function* kvm_mmu_zap_all_fast(mmu: Mmu, t: HostThread, onFlip?: () => void): Sim.Gen<void> {
  const vm = mmu.vm
  yield* write_lock(mmu, t)
  vm.count("zap_all_fast")
  const gen = yield* t.hw.READ_ONCE(mmu.mmu_valid_gen)
  mmu.validGen = gen === 0 ? 1 : 0
  yield* t.hw.WRITE_ONCE(mmu.mmu_valid_gen, mmu.validGen)
  onFlip?.()
  const monitor = zap1(mmu, "kvm_mmu_zap_all_fast")
  // In the flip's critical section, before kvm_zap_obsolete_pages can drop mmu_lock (the
  // kernel's comment: otherwise a vCPU would purge shadow pages but miss the TLB flush).
  const late = vm.bug("C.reloadOutsideLock")
  if (!late) yield* kvm_make_all_cpus_request(vm, KVM_REQ_MMU_FREE_OBSOLETE_ROOTS, t)
  yield* kvm_zap_obsolete_pages(mmu, t)
  monitor.cold()
  yield* write_unlock(mmu, t)
  if (late) yield* kvm_make_all_cpus_request(vm, KVM_REQ_MMU_FREE_OBSOLETE_ROOTS, t)
}

/**
 * `kvm_mmu_zap_all` (teardown; on deletion in the v5.2 revert as first posted): from the head,
 * zap every page (skipping invalid ones), commit, all under `mmu_lock`. With `lockBreak` (v5.1's
 * "Voluntarily reschedule as needed when zapping all sptes": `C.zapAllLivelock` on deletion,
 * `C.slowZapAllAtWrap` at the MMIO wrap): drop the lock when contended and restart from the
 * head, where faulting vCPUs keep adding pages.
 */
export function* kvm_mmu_zap_all(mmu: Mmu, t: HostThread, lockBreak = mmu.vm.bug("C.zapAllLivelock")): Sim.Gen<void> {
  const vm = mmu.vm
  yield* write_lock(mmu, t)
  vm.count("zap_all")
  const monitor = zap1(mmu, "kvm_mmu_zap_all")
  const invalid_list: Array<MmuPage> = []
  restart: for (;;) {
    for (let i = mmu.active_mmu_pages.length - 1; i >= 0; i--) {
      const sp = mmu.active_mmu_pages[i]
      if (sp === undefined || sp.invalid) continue
      const [unstable] = yield* __kvm_mmu_prepare_zap_page(mmu, sp, invalid_list, t)
      if (unstable) continue restart
      if (lockBreak && (yield* cond_resched_rwlock_write(mmu, t))) continue restart
    }
    break
  }
  yield* kvm_mmu_commit_zap_page(mmu, invalid_list, t)
  monitor.cold()
  yield* write_unlock(mmu, t)
}

/**
 * `kvm_unmap_gfn_range` on the shadow MMU (`kvm_zap_rmap` over `[start, end)` of address space
 * `as_id`), `mmu_lock` held: clears every present SPTE mapping a gfn in the range. Returns whether
 * a remote TLB flush is due.
 */
export function* kvm_unmap_gfn_range(mmu: Mmu, as_id: number, start: number, end: number, t: HostThread): Sim.Gen<boolean> {
  const vm = mmu.vm
  let flush = false
  for (const sp of mmu.active_mmu_pages) {
    if (sp.isRoot || sp.as_id !== as_id || sp.gfn >= end || sp.gfn + sp.entries.length <= start) continue
    for (let gfn = Math.max(sp.gfn, start); gfn < Math.min(sp.gfn + sp.entries.length, end); gfn++) {
      const spte = yield* t.hw.READ_ONCE(sp.sptep(gfn))
      if (!is_shadow_present_pte(spte)) continue
      yield* t.hw.WRITE_ONCE(sp.sptep(gfn), 0) // drop_spte
      yield* Sim.point(vm.costs.spteZapNs)
      vm.count("sptes_zapped")
      flush = true
    }
  }
  return flush
}

/**
 * `kvm_mmu_zap_memslot` (`KVM_X86_QUIRK_SLOT_ZAP_ALL` off): under `mmu_lock`,
 * `kvm_unmap_gfn_range` clears every SPTE mapping a gfn of the slot, then
 * `kvm_mmu_zap_memslot_pages_and_flush` zaps the pages with guest PTEs in the slot, gfn by gfn,
 * flushing or committing (`kvm_mmu_remote_flush_or_zap`) before each lock drop and at the end.
 */
export function* kvm_mmu_zap_memslot(mmu: Mmu, slot: Memslot, t: HostThread): Sim.Gen<void> {
  const vm = mmu.vm
  yield* write_lock(mmu, t)
  vm.count("zap_memslot")
  const monitor = zap1(mmu, "kvm_mmu_zap_memslot")
  const end = slot.base_gfn + slot.npages
  const inSlot = (sp: MmuPage) => !sp.isRoot && sp.as_id === slot.as_id && sp.gfn < end && sp.gfn + sp.entries.length > slot.base_gfn
  let flush = yield* kvm_unmap_gfn_range(mmu, slot.as_id, slot.base_gfn, end, t)
  const invalid_list: Array<MmuPage> = []
  for (let gfn = slot.base_gfn; gfn < end; gfn++) {
    // for_each_gfn_valid_sp_with_gptes
    for (const sp of mmu.active_mmu_pages.filter((p) => inSlot(p) && p.maps(gfn) && !p.invalid)) yield* zapPage(mmu, sp, invalid_list, t)
    if (yield* t.hw.READ_ONCE(mmu.mmu_lock.waiters)) {
      yield* kvm_mmu_remote_flush_or_zap(mmu, invalid_list, flush, t)
      flush = false
      yield* cond_resched_rwlock_write(mmu, t)
    }
  }
  yield* kvm_mmu_remote_flush_or_zap(mmu, invalid_list, flush, t)
  // The list is a local: pages still on it are never freed (the slab's "objects remaining").
  if (invalid_list.length === 0) monitor.cold()
  else monitor.reason = `kvm_mmu_zap_memslot returned with ${invalid_list.length} zapped shadow pages never committed: leaked, never freed`
  yield* write_unlock(mmu, t)
}

/**
 * `kvm_mmu_invalidate_mmio_sptes(kvm, gen)`, from `kvm_arch_memslots_updated` before the new
 * generation is stored: mask it to the MMIO generation, strip the address-space bits, and on a
 * wrap (0) zap everything with the fast zap. `C.wrapOnlyAs0` keeps the address-space bits.
 */
export function* kvm_mmu_invalidate_mmio_sptes(mmu: Mmu, gen: number, nr_as: number, genBits: number, t: HostThread, onFlip?: () => void): Sim.Gen<boolean> {
  if (mmio_wrap_value(gen, genBits, nr_as, !mmu.vm.bug("C.wrapOnlyAs0")) !== 0) return false
  mmu.vm.count("mmio_generation_wraps")
  if (mmu.vm.bug("C.slowZapAllAtWrap")) {
    // v5.1 (thread 2's series): no root switch; every page zapped from the head, with lock drops.
    yield* kvm_mmu_zap_all(mmu, t, true)
    onFlip?.()
  } else yield* kvm_mmu_zap_all_fast(mmu, t, onFlip)
  return true
}
