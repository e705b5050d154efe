/**
 * The vCPU's page faults on the shadow MMU (spec §3.4, §10.2), after `arch/x86/kvm/mmu/mmu.c`:
 * `kvm_mmu_page_fault`, which for a reserved-bit fault (an EPT misconfiguration: an MMIO SPTE)
 * tries `handle_mmio_page_fault` first — the per-vCPU MMIO cache, then the lockless walk and
 * `check_mmio_spte` — and otherwise takes the full fault: the slot lookup under SRCU, an invalid
 * slot retries, no slot goes to `kvm_handle_noslot_fault` (cache the gfn as MMIO, then an MMIO
 * SPTE with the generation), a slot maps its pfn; under `mmu_lock`, a stale fault (the root went
 * obsolete) retries.
 */
import { Sim } from "@kvmlab/sim"
import * as CInv from "../memslots/Invariants.js"
import { kvm_vcpu_gfn_to_memslot, memslotsGeneration, search_memslots } from "../memslots/KvmMain.js"
import { KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS, KVM_MEMSLOT_INVALID } from "../memslots/Protocol.js"
import { gfnToPfn, type KvmMemslots, type Memslots } from "../memslots/State.js"
import { mmio_info_in_cache, vcpu_cache_mmio_info } from "../memslots/X86.js"
import type { VcpuState } from "../vcpu/State.js"
import { direct_map, get_mmio_spte, is_page_fault_stale, type MmuPage, vcpuMmu, write_lock, write_unlock } from "./Mmu.js"
import { get_mmio_spte_generation, is_mmio_spte, make_mmio_spte, make_spte, mmio_generation } from "./Spte.js"

/** `enum RET_PF_*`. */
export const enum RetPf {
  CONTINUE = 0,
  RETRY = 1,
  EMULATE = 2,
  FIXED = 3,
  INVALID = 4
}

/** `kvm_vcpu_memslots(vcpu)` and its generation, as a vCPU reads them (GEN-4 is checked at the read). */
function* vcpuMemslots(ms: Memslots, v: VcpuState, as: number): Sim.Gen<readonly [KvmMemslots, number]> {
  const r = yield* memslotsGeneration(ms, v, as)
  const bad = CInv.gen4(ms.vm.kernel, v, as, r[1], ms.wrapPending[as]!)
  if (bad !== undefined) yield* Sim.fail("GEN-4", bad)
  return r
}

/**
 * `check_mmio_spte`: a miss while the vCPU's memslots are being updated (the in-progress flag is
 * not stored in SPTEs), else a hit iff the masked generations match. GEN-2 is checked at a hit.
 */
function* check_mmio_spte(ms: Memslots, v: VcpuState, spte: number, sp: MmuPage, gfn: number): Sim.Gen<boolean> {
  const [slots, gen] = yield* vcpuMemslots(ms, v, vcpuMmu.of(v).as_id)
  if (gen >= KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS && !ms.vm.bug("C.lowBitInProgress")) return false
  const kvm_gen = mmio_generation(gen, ms.mmioGenBits)
  if (kvm_gen !== get_mmio_spte_generation(spte)) return false
  const bad = CInv.gen2(ms.vm.kernel, v, gfn, sp.mmioGen[gfn - sp.gfn]!, gen, search_memslots(slots, gfn))
  if (bad !== undefined) yield* Sim.fail("GEN-2", bad)
  return true
}

/** `handle_mmio_page_fault`: EMULATE on a cache or SPTE hit, INVALID for the slow path, RETRY if the walk found nothing. */
export function* handle_mmio_page_fault(ms: Memslots, v: VcpuState, gfn: number): Sim.Gen<RetPf> {
  const vm = ms.vm
  if (yield* mmio_info_in_cache(ms, v, gfn)) {
    vm.count("mmio_cache_hits")
    return RetPf.EMULATE
  }
  const [spte, sp] = yield* get_mmio_spte(ms.mmu, v, gfn)
  if (is_mmio_spte(spte) && sp !== undefined) {
    if (!(yield* check_mmio_spte(ms, v, spte, sp, gfn))) {
      vm.count("mmio_spte_stale")
      return RetPf.INVALID
    }
    vm.count("mmio_spte_hits")
    yield* vcpu_cache_mmio_info(ms, v, gfn, 1)
    return RetPf.EMULATE
  }
  // The page table was zapped by another CPU: let the guest fault again.
  return RetPf.RETRY
}

/**
 * The full fault (`FNAME(page_fault)` / `direct_page_fault`): the slot lookup outside
 * `mmu_lock`, `kvm_mmu_faultin_pfn` (an INVALID slot retries; no slot is MMIO), then under
 * `mmu_lock` the staleness check and the mapping (`direct_map`, `mark_mmio_spte`).
 */
export function* kvm_mmu_do_page_fault(ms: Memslots, v: VcpuState, gfn: number): Sim.Gen<RetPf> {
  const vm = ms.vm
  const mmu = ms.mmu
  const as = vcpuMmu.of(v).as_id
  vm.count("pf_taken")
  const slot = yield* kvm_vcpu_gfn_to_memslot(ms, v, as, gfn)
  let pfn = 0
  if (slot === undefined) {
    // kvm_handle_noslot_fault
    yield* vcpu_cache_mmio_info(ms, v, gfn, 1)
    if (vm.switches.variant.mmioCaching === "off") return RetPf.EMULATE
  } else if ((slot.flags & KVM_MEMSLOT_INVALID) !== 0) {
    // Any SPTE of the old slot is zapped before a new one for the gfn can be made.
    vm.count("pf_retry_invalid_slot")
    return RetPf.RETRY
  } else pfn = gfnToPfn(slot, gfn)

  yield* write_lock(mmu, v)
  const validGen = yield* v.hw.READ_ONCE(mmu.mmu_valid_gen)
  mmu.validGen = validGen
  let r = RetPf.RETRY
  if (is_page_fault_stale(mmu, v, validGen)) vm.count("pf_stale")
  else if (slot === undefined) {
    // mark_mmio_spte -> make_mmio_spte: the vCPU's memslot generation, masked (the in-progress
    // flag is not stored). mmioSpteInFlux=skip, a proposal: no MMIO SPTE while the update is in
    // progress (as vcpu_cache_mmio_info does for the cache), the access is emulated all the same.
    const [, gen] = yield* vcpuMemslots(ms, v, as)
    if (gen >= KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS && vm.switches.variant.mmioSpteInFlux === "skip") vm.count("mmio_sptes_skipped_in_flux")
    else {
      const sp = yield* direct_map(mmu, v, gfn, make_mmio_spte(gfn, mmio_generation(gen, ms.mmioGenBits)))
      sp.mmioGen[gfn - sp.gfn] = gen
      vm.count("mmio_sptes_made")
    }
    r = RetPf.EMULATE
  } else {
    yield* direct_map(mmu, v, gfn, make_spte(pfn))
    vm.count("pf_fixed")
    r = RetPf.FIXED
  }
  yield* write_unlock(mmu, v)
  return r
}

/**
 * `kvm_mmu_page_fault`: a reserved-bit fault (`rsvd`, an MMIO SPTE) tries the MMIO fast path
 * first; INVALID falls back to the full fault. Returns EMULATE (an MMIO access to emulate),
 * or RETRY/FIXED (enter the guest again).
 */
export function* kvm_mmu_page_fault(ms: Memslots, v: VcpuState, gfn: number, rsvd: boolean): Sim.Gen<RetPf> {
  let r = RetPf.INVALID
  if (rsvd) {
    r = yield* handle_mmio_page_fault(ms, v, gfn)
    if (r === RetPf.EMULATE) return r
  }
  if (r === RetPf.INVALID) r = yield* kvm_mmu_do_page_fault(ms, v, gfn)
  return r
}
