/**
 * The shadow MMU of mechanism C (spec §3.5, §10.2), after `arch/x86/kvm/mmu/mmu.c` with shadow
 * paging (`tdp_mmu=0`, the MMU thread 2 discusses; the TDP MMU's roots and RCU-freed pages are
 * not modelled): shadow pages on `kvm->arch.active_mmu_pages` (new pages at the head), each
 * stamped with `mmu_valid_gen`; per address space, roots shared by the vCPUs that load them
 * (`root_count`), whose entries (memory locations) link last-level pages, each covering
 * `sptesPerPage` consecutive gfns (512 in the kernel), whose SPTEs (memory locations) map each
 * gfn's pfn or are MMIO SPTEs; `mmu_lock` as a lock in
 * memory whose waiters are visible (`rwlock_needbreak`). The zaps: `kvm_mmu_zap_all_fast` with
 * `kvm_zap_obsolete_pages`, `kvm_mmu_zap_memslot`, `kvm_mmu_zap_all`, all through
 * `__kvm_mmu_prepare_zap_page` and `kvm_mmu_commit_zap_page` (mechanism A's remote flush, then
 * the free). The vCPU side: the hardware walk in guest mode, the page fault, the MMIO page fault
 * with its lockless walk (mechanism A's `walk_shadow_page_lockless_begin/_end`), and the roots'
 * reload (`KVM_REQ_MMU_FREE_OBSOLETE_ROOTS`, `kvm_mmu_reload`).
 *
 * Page bookkeeping that only the lock holder touches (the list, `root_count`, `role.invalid`)
 * is plain data; the entries the hardware and lockless walkers read, and `mmu_valid_gen`, are
 * memory locations.
 */
import { type Memory, Spinlock } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import * as Inv from "../requests/Invariants.js"
import { KVM_REQ_MMU_FREE_OBSOLETE_ROOTS } from "../requests/Protocol.js"
import { kvm_flush_remote_tlbs, kvm_make_all_cpus_request } from "../requests/Requests.js"
import { Slot, type VcpuState } from "../vcpu/State.js"
import type { HostThread, Vm } from "../Vm.js"
import * as MmuInv from "./Invariants.js"
import { walk_shadow_page_lockless_begin, walk_shadow_page_lockless_end } from "./ShadowMmu.js"
import { is_mmio_spte, is_shadow_present_pte } from "./Spte.js"

/** `INVALID_PAGE`: no root loaded. Page ids start at 1. */
export const INVALID_PAGE = 0
/** `BATCH_ZAP_PAGES`. */
export const BATCH_ZAP_PAGES = 10

/** `struct kvm_mmu_page`. */
export class MmuPage {
  /** `sp->mmu_valid_gen`. */
  readonly mmu_valid_gen: number
  /** `sp->role.invalid`. */
  invalid = false
  /** `sp->root_count`: vCPUs that have it loaded as their root. */
  root_count = 0
  /** On `active_mmu_pages` (false once zapped: on an invalid list, or a loaded root taken off). */
  onList = true
  /** A leaf's parent entry (`parent_ptes`): the root entry that links it, or undefined. */
  parent: Memory.Loc | undefined = undefined
  // ---- ghost
  /** Freed by `kvm_mmu_commit_zap_page` (WALK-1). */
  freed = false
  /** Per SPTE: the full memslot generation its MMIO SPTE was made at (GEN-2), or -1. */
  readonly mmioGen: Array<number>
  constructor(
    readonly id: number,
    /** `role.level`: a root (its entries link leaves) or a last-level page (one SPTE). */
    readonly isRoot: boolean,
    /** `kvm_mmu_role_as_id(sp->role)`. */
    readonly as_id: number,
    /** A leaf's first gfn (`sp->gfn`; shadow paging: the page has guest PTEs for its gfns), -1 for a root. */
    readonly gfn: number,
    mmu_valid_gen: number,
    /** A root's entries (child page id, 0 when not present); a leaf's SPTEs, one per gfn from `gfn`. */
    readonly entries: ReadonlyArray<Memory.Loc>
  ) {
    this.mmu_valid_gen = mmu_valid_gen
    this.mmioGen = isRoot ? [] : entries.map(() => -1)
  }
  /** Whether this leaf maps `gfn`. */
  maps(gfn: number): boolean {
    return !this.isRoot && gfn >= this.gfn && gfn < this.gfn + this.entries.length
  }
  /** A leaf's SPTE for `gfn`. */
  sptep(gfn: number): Memory.Loc {
    return this.entries[gfn - this.gfn]!
  }
}

/** `kvm->mmu_lock` (an rwlock taken for write by the shadow MMU): the lock, and its waiters. */
export class MmuLock {
  readonly lock: Spinlock.Spinlock
  /** Threads spinning for the lock (the queued waiters `rwlock_needbreak` sees). */
  readonly waiters: Memory.Loc
  // ---- ghost (LAT-1)
  /** Page zaps by the holder since a waiter started waiting, in this hold. */
  zapsWhileContended = 0
  constructor(memory: Memory.Memory, name: string) {
    this.lock = Spinlock.make(memory, name)
    this.waiters = memory.alloc(`${name}.waiters`, 0)
  }
}

/** A vCPU's MMU (`vcpu->arch.mmu`): its loaded root. */
export class VcpuMmu {
  /** `mmu->root.hpa`: the loaded root's page id, or INVALID_PAGE. */
  root_hpa = INVALID_PAGE
  constructor(readonly as_id: number) {}
}

export const vcpuMmu = new Slot<VcpuMmu>("MMU")

export interface MmuOptions {
  /** Guest frames the roots cover. */
  readonly gfns: number
  /** SPTEs of a last-level page (`PT64_ENT_PER_PAGE`, 512 in the kernel): the gfns it covers. */
  readonly sptesPerPage: number
  /** `BATCH_ZAP_PAGES` (10). */
  readonly zapBatch: number
}

/** `kvm->arch`'s MMU state. */
export class Mmu {
  readonly mmu_lock: MmuLock
  /** `kvm->arch.mmu_valid_gen`, toggled 0/1 by the fast zap. */
  readonly mmu_valid_gen: Memory.Loc
  /** `kvm->arch.active_mmu_pages`: index 0 is the tail (oldest), the last is the head (newest). */
  readonly active_mmu_pages: Array<MmuPage> = []
  /** Every page ever made, by id (index 0 unused). */
  readonly pages: Array<MmuPage | undefined> = [undefined]
  /** The lock holder's copy of `mmu_valid_gen` (it changes only under the lock). */
  validGen = 0
  constructor(readonly vm: Vm, readonly options: MmuOptions) {
    this.mmu_lock = new MmuLock(vm.memory, `${vm.name}.mmu_lock`)
    this.mmu_valid_gen = vm.memory.alloc(`${vm.name}.arch.mmu_valid_gen`, 0)
  }
  page(id: number): MmuPage {
    return this.pages[id]!
  }
  /** The root entry that covers `gfn`. */
  index(gfn: number): number {
    return Math.floor(gfn / this.options.sptesPerPage)
  }
}

// ------------------------------------------------------------------------------ mmu_lock

/** `write_lock(&kvm->mmu_lock)` by a host thread or a vCPU thread: a waiter is visible to `rwlock_needbreak` while it spins. */
export function* write_lock(mmu: Mmu, cpu: HostThread): Sim.Gen<void> {
  const l = mmu.mmu_lock
  if (yield* Spinlock.spin_trylock(cpu.hw, l.lock)) return
  yield* cpu.hw.atomic_inc(l.waiters)
  yield* Spinlock.spin_lock(cpu.hw, l.lock)
  yield* cpu.hw.atomic_dec(l.waiters)
  l.zapsWhileContended = 0
}

/** `write_unlock(&kvm->mmu_lock)`. */
export function* write_unlock(mmu: Mmu, cpu: HostThread): Sim.Gen<void> {
  mmu.mmu_lock.zapsWhileContended = 0
  yield* Spinlock.spin_unlock(cpu.hw, mmu.mmu_lock.lock)
}

/** `rwlock_needbreak`: someone is waiting for the lock. */
function* rwlock_needbreak(mmu: Mmu, t: HostThread): Sim.Gen<boolean> {
  return (yield* t.hw.READ_ONCE(mmu.mmu_lock.waiters)) > 0
}

/**
 * `cond_resched_rwlock_write`: drop the lock and take it again when it is contended (or a
 * reschedule is due: host threads here have a CPU of their own, so never). Returns whether it did.
 */
export function* cond_resched_rwlock_write(mmu: Mmu, t: HostThread): Sim.Gen<boolean> {
  if (!(yield* rwlock_needbreak(mmu, t))) return false
  mmu.vm.count("mmu_lock_breaks")
  yield* write_unlock(mmu, t)
  yield* write_lock(mmu, t)
  return true
}

// ------------------------------------------------------------------------------ pages

/** `kvm_mmu_alloc_shadow_page`: a new page at the head of `active_mmu_pages`, stamped with `mmu_valid_gen`. */
const kvm_mmu_alloc_shadow_page = (mmu: Mmu, isRoot: boolean, as_id: number, gfn: number): MmuPage => {
  const id = mmu.pages.length
  const m = mmu.vm.memory
  const per = mmu.options.sptesPerPage
  const entries = isRoot
    ? Array.from({ length: Math.ceil(mmu.options.gfns / per) }, (_, i) => m.alloc(`${mmu.vm.name}.sp[${id}].spt[${i}]`, 0))
    : Array.from({ length: per }, (_, i) => m.alloc(`${mmu.vm.name}.sp[${id}].spt[gfn ${gfn + i}]`, 0))
  const sp = new MmuPage(id, isRoot, as_id, gfn, mmu.validGen, entries)
  mmu.pages.push(sp)
  mmu.active_mmu_pages.push(sp)
  mmu.vm.count("mmu_pages_allocated")
  return sp
}

/** `is_obsolete_sp`: invalid, or made under the other `mmu_valid_gen`. */
export const is_obsolete_sp = (mmu: Mmu, sp: MmuPage, validGen = mmu.validGen): boolean => sp.invalid || sp.mmu_valid_gen !== validGen

/** Takes `sp` off `active_mmu_pages`. */
const list_del = (mmu: Mmu, sp: MmuPage): void => {
  const i = mmu.active_mmu_pages.indexOf(sp)
  if (i >= 0) mmu.active_mmu_pages.splice(i, 1)
  sp.onList = false
}

/**
 * `__kvm_mmu_prepare_zap_page`: unlink the page's children (a root's entries; a leaf's SPTE)
 * and its parent entry, then either move it to `invalid_list` or, for a root still loaded
 * (`root_count > 0`), take it off the list, to be freed when its last user drops it; mark it
 * invalid; a zapped valid root makes every vCPU drop obsolete roots. Returns [unstable, nr_zapped].
 */
export function* __kvm_mmu_prepare_zap_page(mmu: Mmu, sp: MmuPage, invalid_list: Array<MmuPage>, t: HostThread): Sim.Gen<readonly [boolean, number]> {
  const vm = mmu.vm
  vm.count("mmu_shadow_zapped")
  // kvm_mmu_page_unlink_children -> mmu_page_zap_pte: each present entry cleared (drop_spte,
  // drop_parent_pte); children stay on the list (no nested TDP here), so nothing else is zapped.
  for (const e of sp.entries) {
    const old = yield* t.hw.READ_ONCE(e)
    if (old === 0) continue
    yield* t.hw.WRITE_ONCE(e, 0) // mmu_spte_clear_no_track / drop_spte
    yield* Sim.point(vm.costs.spteZapNs)
    if (sp.isRoot) mmu.page(old).parent = undefined
    else if (is_shadow_present_pte(old)) vm.count("sptes_zapped")
    else if (is_mmio_spte(old)) vm.count("mmio_sptes_zapped")
  }
  // kvm_mmu_unlink_parents: the root entry that links a leaf.
  if (sp.parent !== undefined) {
    yield* t.hw.WRITE_ONCE(sp.parent, 0)
    sp.parent = undefined
  }
  let nr_zapped = 0
  let zapped_root = false
  if (sp.root_count === 0) {
    nr_zapped++ // count self
    if (sp.onList) list_del(mmu, sp)
    invalid_list.push(sp)
  } else {
    // An active root leaves the list; the last vCPU to drop it frees it.
    list_del(mmu, sp)
    zapped_root = !is_obsolete_sp(mmu, sp)
  }
  sp.invalid = true
  const l = mmu.mmu_lock
  if (vm.memory.peek(l.waiters) > 0) l.zapsWhileContended += nr_zapped
  // After marking the root invalid, so that every vCPU sees it as such.
  if (zapped_root) yield* kvm_make_all_cpus_request(vm, KVM_REQ_MMU_FREE_OBSOLETE_ROOTS, t)
  return [false, nr_zapped] as const
}

/**
 * `kvm_mmu_commit_zap_page`: flush every vCPU's TLB (mechanism A's WAIT request: no lockless
 * walker or guest can still reach the pages), then free them.
 */
export function* kvm_mmu_commit_zap_page(mmu: Mmu, invalid_list: Array<MmuPage>, t: HostThread): Sim.Gen<void> {
  if (invalid_list.length === 0) return
  yield* kvm_flush_remote_tlbs(mmu.vm, t)
  for (const sp of invalid_list.splice(0)) {
    yield* Sim.point(mmu.vm.costs.shadowPageFreeNs)
    sp.freed = true // kvm_mmu_free_shadow_page
    mmu.vm.count("shadow_pages_freed")
    mmu.vm.kernel.event("sp.free", [sp.id])
  }
}

/**
 * `kvm_mmu_remote_flush_or_zap`: commit a non-empty list (which flushes), else flush if asked.
 * `C.flushOrZapPriority`: a21136345cb6f as merged in v5.1-rc, with the `list_empty()` check
 * inverted — a non-empty list with no flush pending bails out, and its pages are never freed.
 */
export function* kvm_mmu_remote_flush_or_zap(mmu: Mmu, invalid_list: Array<MmuPage>, remote_flush: boolean, t: HostThread): Sim.Gen<boolean> {
  const empty = invalid_list.length === 0
  if (!remote_flush && (mmu.vm.bug("C.flushOrZapPriority") ? !empty : empty)) return false
  if (invalid_list.length > 0) yield* kvm_mmu_commit_zap_page(mmu, invalid_list, t)
  else yield* kvm_flush_remote_tlbs(mmu.vm, t)
  return true
}

// ------------------------------------------------------------------------------ vCPU: roots

/** The leaf a root entry links, if any (`kvm_mmu_get_child_sp` finds it). */
const childOf = (mmu: Mmu, entry: number): MmuPage | undefined => (entry === 0 ? undefined : mmu.page(entry))

/**
 * `kvm_mmu_free_obsolete_roots` (KVM_REQ_MMU_FREE_OBSOLETE_ROOTS): if the loaded root is
 * obsolete, `kvm_mmu_free_roots` drops it under `mmu_lock` (the last user of an invalid root
 * zaps and frees it), leaving no root: `kvm_mmu_reload` loads a fresh one before the entry.
 */
export function* kvm_mmu_free_obsolete_roots(mmu: Mmu, v: VcpuState): Sim.Gen<void> {
  const m = vcpuMmu.of(v)
  if (m.root_hpa === INVALID_PAGE) return
  const root = mmu.page(m.root_hpa)
  // is_obsolete_root: read outside the lock, as the kernel does.
  const validGen = yield* v.hw.READ_ONCE(mmu.mmu_valid_gen)
  if (!is_obsolete_sp(mmu, root, validGen)) return
  yield* write_lock(mmu, v)
  const invalid_list: Array<MmuPage> = []
  // mmu_free_root_page
  root.root_count--
  if (root.root_count === 0 && root.invalid) yield* __kvm_mmu_prepare_zap_page(mmu, root, invalid_list, v)
  m.root_hpa = INVALID_PAGE
  mmu.vm.count("roots_freed")
  yield* kvm_mmu_commit_zap_page(mmu, invalid_list, v)
  yield* write_unlock(mmu, v)
}

/**
 * `kvm_mmu_reload` -> `kvm_mmu_load`: with no root loaded, take `mmu_lock`, find a valid root of
 * the vCPU's address space (`kvm_mmu_get_shadow_page` skips obsolete ones) or make one, take a
 * reference; then `kvm_x86_flush_tlb_current` (the new root's provenance is unknown).
 */
export function* kvm_mmu_reload(mmu: Mmu, v: VcpuState): Sim.Gen<void> {
  const m = vcpuMmu.of(v)
  if (m.root_hpa !== INVALID_PAGE) return
  yield* write_lock(mmu, v)
  mmu.validGen = yield* v.hw.READ_ONCE(mmu.mmu_valid_gen)
  let root = mmu.active_mmu_pages.find((sp) => sp.isRoot && sp.as_id === m.as_id && !is_obsolete_sp(mmu, sp))
  root ??= kvm_mmu_alloc_shadow_page(mmu, true, m.as_id, -1)
  root.root_count++
  m.root_hpa = root.id
  yield* write_unlock(mmu, v)
  yield* Sim.point(mmu.vm.costs.rootLoadNs) // kvm_mmu_load_pgd, kvm_x86_flush_tlb_current
  v.tlb.clear()
  mmu.vm.count("roots_loaded")
}

// ------------------------------------------------------------------------------ vCPU: accesses

/** What a guest access in guest mode finds. */
export const enum Access {
  Done = 0,
  /** Not present: an EPT violation, a full page fault. */
  Violation = 1,
  /** An MMIO SPTE: an EPT misconfiguration, `handle_mmio_page_fault`. */
  Misconfig = 2
}

/**
 * A guest access to `gfn` in guest mode: through the TLB, or the hardware walk from the loaded
 * root (an obsolete root still works until the vCPU drops it) and a TLB fill.
 */
export function* guestAccess(mmu: Mmu, v: VcpuState, gfn: number): Sim.Gen<Access> {
  const vm = mmu.vm
  const e = v.tlb.get(gfn)
  if (e !== undefined) {
    const stale = Inv.tlb1(vm.kernel, vm, v, gfn, e)
    if (stale !== undefined) yield* Sim.fail("TLB-1", stale)
    yield* Sim.point(vm.costs.guestAccessNs)
    vm.count("guest_accesses")
    return Access.Done
  }
  const root = mmu.page(vcpuMmu.of(v).root_hpa)
  const child = yield* v.hw.READ_ONCE(root.entries[mmu.index(gfn)]!)
  if (child === 0) return Access.Violation
  const spte = yield* v.hw.READ_ONCE(mmu.page(child).sptep(gfn))
  const freed = MmuInv.walk1(vm.kernel, v, child, mmu.page(child).freed) // at the dereference
  if (freed !== undefined) yield* Sim.fail("WALK-1", freed)
  if (is_mmio_spte(spte)) return Access.Misconfig
  if (!is_shadow_present_pte(spte)) return Access.Violation
  v.tlb.set(gfn, { pfn: spte, fill: vm.kernel.steps })
  vm.count("guest_accesses")
  return Access.Done
}

/** `get_mmio_spte`: the lockless walk of `gfn` from the loaded root; returns the SPTE (0 when not present). */
export function* get_mmio_spte(mmu: Mmu, v: VcpuState, gfn: number): Sim.Gen<readonly [number, MmuPage | undefined]> {
  const vm = mmu.vm
  yield* walk_shadow_page_lockless_begin(vm, v)
  vm.count("lockless_walks")
  const root = mmu.page(vcpuMmu.of(v).root_hpa)
  const child = yield* v.hw.READ_ONCE(root.entries[mmu.index(gfn)]!)
  let spte = 0
  let sp: MmuPage | undefined
  if (child !== 0) {
    sp = mmu.page(child)
    spte = yield* v.hw.READ_ONCE(sp.sptep(gfn))
    const freed = MmuInv.walk1(vm.kernel, v, child, sp.freed) // at the dereference
    if (freed !== undefined) yield* Sim.fail("WALK-1", freed)
  }
  yield* walk_shadow_page_lockless_end(vm, v)
  return [spte, sp] as const
}

/**
 * The last part of a page fault under `mmu_lock` (`direct_map` -> `kvm_mmu_get_child_sp`,
 * `mmu_set_spte`): link the leaf covering `gfn` from the root if there is none (a new page at the
 * head of the list), then write its SPTE.
 */
export function* direct_map(mmu: Mmu, v: VcpuState, gfn: number, spte: number): Sim.Gen<MmuPage> {
  const root = mmu.page(vcpuMmu.of(v).root_hpa)
  const i = mmu.index(gfn)
  const entry = root.entries[i]!
  let sp = childOf(mmu, yield* v.hw.READ_ONCE(entry))
  if (sp === undefined) {
    sp = kvm_mmu_alloc_shadow_page(mmu, false, root.as_id, i * mmu.options.sptesPerPage)
    sp.parent = entry
    yield* v.hw.WRITE_ONCE(entry, sp.id) // link_shadow_page -> mmu_spte_set
  }
  yield* v.hw.WRITE_ONCE(sp.sptep(gfn), spte) // mmu_spte_set / mark_mmio_spte
  return sp
}

/** `is_page_fault_stale`: the fault's root became obsolete while it ran (`validGen` read under `mmu_lock`). */
export const is_page_fault_stale = (mmu: Mmu, v: VcpuState, validGen: number): boolean => {
  const root = vcpuMmu.of(v).root_hpa
  return root === INVALID_PAGE || is_obsolete_sp(mmu, mmu.page(root), validGen)
}

/** Attaches each vCPU's MMU state (`vcpuMmu`), the vCPU `i` in address space `asOf(i)`. */
export const attachVcpus = (mmu: Mmu, asOf: (i: number) => number): void => {
  for (const v of mmu.vm.vcpus) vcpuMmu.set(v, new VcpuMmu(asOf(v.vcpu_id)))
}

