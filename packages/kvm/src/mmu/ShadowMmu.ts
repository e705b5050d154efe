/**
 * The shadow MMU as mechanism A needs it (spec §1.6): a root table whose entries point to
 * last-level shadow pages, each mapping one gfn to a pfn. Table entries are memory locations.
 * The guest reaches them through its TLB and the hardware page walker (in guest mode); the
 * host reaches them locklessly (`walk_shadow_page_lockless_begin/_end`, fast page faults and
 * MMIO lookups) or under `mmu_lock` (zapping, `kvm_mmu_commit_zap_page`).
 */
import type { Memory } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import * as Inv from "../requests/Invariants.js"
import * as MmuInv from "./Invariants.js"
import { OUTSIDE_GUEST_MODE, READING_SHADOW_PAGE_TABLES } from "../requests/Protocol.js"
import { kvm_flush_remote_tlbs } from "../requests/Requests.js"
import type { VcpuState } from "../vcpu/State.js"
import type { HostThread, Vm } from "../Vm.js"

export class ShadowMmu {
  /** Root entries: gfn to the id of its last-level shadow page, 0 when not present. */
  readonly root: Array<Memory.Loc> = []
  /** Shadow page contents by id (index 0 unused): the pfn it maps. */
  readonly pages: Array<Memory.Loc | undefined> = [undefined]
  /** Ghost (WALK-1): pages `kvm_mmu_commit_zap_page` has freed. */
  readonly freed = new Set<number>()
  private nextPfn = 1

  constructor(readonly vm: Vm) {}

  /** Allocates a shadow page mapping a fresh pfn; returns its id. */
  allocPage(): number {
    this.pages.push(this.vm.memory.alloc(`sp[${this.pages.length}].spte`, this.nextPfn++))
    return this.pages.length - 1
  }
}

/** Creates the MMU with `gfns` mapped gfns, each through its own shadow page. */
export const make = (vm: Vm, gfns: number): ShadowMmu => {
  const mmu = new ShadowMmu(vm)
  for (let g = 0; g < gfns; g++) {
    const sp = mmu.allocPage()
    mmu.root.push(vm.memory.alloc(`root.spte[gfn ${g}]`, sp))
  }
  return mmu
}

/**
 * A guest access to `gfn` in guest mode: through the TLB, or the hardware page walk and a TLB
 * fill. Returns false when the entry is not present (an EPT violation).
 */
export function* guestAccess(mmu: ShadowMmu, v: VcpuState, gfn: number): Sim.Gen<boolean> {
  const vm = mmu.vm
  const e = v.tlb.get(gfn)
  if (e !== undefined) {
    const stale = Inv.tlb1(vm.kernel, vm, v, gfn, e)
    if (stale !== undefined) yield* Sim.fail("TLB-1", stale)
    yield* Sim.point(vm.costs.guestAccessNs)
    vm.count("guest_accesses")
    return true
  }
  // The hardware walker: its reads are ordered after the entry barrier (A1's third job).
  const sp = yield* v.hw.READ_ONCE(mmu.root[gfn]!)
  if (sp === 0) return false
  const pfn = yield* v.hw.READ_ONCE(mmu.pages[sp]!)
  const freed = MmuInv.walk1(vm.kernel, v, sp, mmu.freed.has(sp)) // at the dereference
  if (freed !== undefined) yield* Sim.fail("WALK-1", freed)
  v.tlb.set(gfn, { pfn, fill: vm.kernel.steps })
  vm.count("guest_accesses")
  return true
}

/** `walk_shadow_page_lockless_begin`. */
export function* walk_shadow_page_lockless_begin(vm: Vm, v: VcpuState): Sim.Gen<void> {
  v.pcpu.local_irq_disable()
  if (vm.bug("A.noWalkBarrier")) {
    yield* v.hw.WRITE_ONCE(v.mode, READING_SHADOW_PAGE_TABLES)
  } else {
    // smp_store_mb(): the mode store before the SPTE reads; pairs with the full barrier in
    // kvm_vcpu_exiting_guest_mode on the zapper's side (A2).
    yield* v.hw.smp_store_mb(v.mode, READING_SHADOW_PAGE_TABLES)
  }
  v.ghost.walkSince = vm.kernel.steps
}

/** `walk_shadow_page_lockless_end`. */
export function* walk_shadow_page_lockless_end(vm: Vm, v: VcpuState): Sim.Gen<void> {
  // smp_store_release(): the walk's loads before the mode store; pairs with the zapper's mode
  // read in kvm_vcpu_exiting_guest_mode (A5).
  yield* v.hw.smp_store_release(v.mode, OUTSIDE_GUEST_MODE)
  v.ghost.walkSince = -1
  // local_irq_enable(): a pending flush IPI is acknowledged only now, so the zapper cannot
  // free a page this walk might still reach.
  v.pcpu.local_irq_enable(vm.kernel)
}

/** A lockless walk of `gfn`'s entries (`get_mmio_spte`, `fast_page_fault`): returns the pfn or 0. */
export function* walkLockless(mmu: ShadowMmu, v: VcpuState, gfn: number): Sim.Gen<number> {
  const vm = mmu.vm
  yield* walk_shadow_page_lockless_begin(vm, v)
  vm.count("lockless_walks")
  const sp = yield* v.hw.READ_ONCE(mmu.root[gfn]!)
  let pfn = 0
  if (sp !== 0) {
    pfn = yield* v.hw.READ_ONCE(mmu.pages[sp]!)
    const freed = MmuInv.walk1(vm.kernel, v, sp, mmu.freed.has(sp)) // at the dereference
    if (freed !== undefined) yield* Sim.fail("WALK-1", freed)
  }
  yield* walk_shadow_page_lockless_end(vm, v)
  return pfn
}

/**
 * Zaps `gfn`'s shadow page and maps a new one, as the zapper holding `mmu_lock` does:
 * `__kvm_mmu_prepare_zap_page` unlinks the page onto the invalid list, `kvm_mmu_commit_zap_page`
 * flushes remote TLBs (a WAIT request) and then frees it; a later fault links a new page.
 */
export const zapAndRemap = Sim.proc(function* zapAndRemap(mmu: ShadowMmu, t: HostThread, gfn: number): Sim.Gen<void> {
  const vm = mmu.vm
  // __kvm_mmu_prepare_zap_page: unlink from the parent (drop_parent_pte -> mmu_spte_clear_no_track).
  const sp = yield* t.hw.READ_ONCE(mmu.root[gfn]!)
  yield* t.hw.WRITE_ONCE(mmu.root[gfn]!, 0)
  const invalid_list = sp === 0 ? [] : [sp]
  // kvm_mmu_commit_zap_page
  if (invalid_list.length > 0) {
    // Historical smp_mb() (c142786c6): "wmb: make sure everyone sees our modifications to the
    // page tables; rmb: make sure we see changes to vcpu->mode". Redundant with the barrier in
    // kvm_vcpu_exiting_guest_mode, which kvm_flush_remote_tlbs reaches (thread 4).
    if (vm.switches.variant.extraBarriers === "on") yield* t.hw.smp_mb()
    yield* kvm_flush_remote_tlbs(vm, t)
    for (const p of invalid_list) {
      mmu.freed.add(p) // kvm_mmu_free_shadow_page
      vm.count("shadow_pages_freed")
      vm.kernel.event("sp.free", [p])
    }
  }
  // A fault maps the gfn again through a new shadow page (link_shadow_page -> mmu_spte_set).
  const fresh = mmu.allocPage()
  yield* t.hw.WRITE_ONCE(mmu.root[gfn]!, fresh)
})
