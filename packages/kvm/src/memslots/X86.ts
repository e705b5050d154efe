/**
 * Mechanism C's x86 side (spec §3.3-§3.5, §10.2): `kvm_arch_memslots_updated` (`x86.c`: the MMIO
 * generation's wrap check, then a kick of every vCPU), `kvm_arch_flush_shadow_memslot` (`mmu.c`:
 * the zap the `zap` variant picks), and the per-vCPU MMIO cache of `x86.h`
 * (`vcpu_cache_mmio_info`, `vcpu_match_mmio_gen`, `mmio_info_in_cache`), which reads address
 * space 0's generation whatever the vCPU's (§10.2).
 */
import { Sim } from "@kvmlab/sim"
import { kvm_mmu_invalidate_mmio_sptes, kvm_mmu_zap_all, kvm_mmu_zap_all_fast, kvm_mmu_zap_memslot } from "../mmu/Zap.js"
import { is_shadow_present_pte, mmio_wrap_value } from "../mmu/Spte.js"
import { kvm_vcpu_kick } from "../requests/Requests.js"
import type { VcpuState } from "../vcpu/State.js"
import type { HostThread } from "../Vm.js"
import * as Inv from "./Invariants.js"
import { memslotsGeneration } from "./KvmMain.js"
import { KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS } from "./Protocol.js"
import { covers, gfnToPfn, type Memslot, type Memslots, mmioCache } from "./State.js"

/** Whether completed generation `gen` wraps the MMIO generation (masked, address-space bits stripped, 0). */
export const wraps = (ms: Memslots, gen: number): boolean => mmio_wrap_value(gen, ms.mmioGenBits, ms.nr_as) === 0

/**
 * `kvm_arch_memslots_updated(kvm, gen)`, called with the next generation before it is stored:
 * `kvm_mmu_invalidate_mmio_sptes` (a wrap zaps everything, fast), then `kvm_vcpu_kick` of every
 * vCPU (v5.7+: the steal-time cache re-initialises lazily).
 */
export function* kvm_arch_memslots_updated(ms: Memslots, as: number, gen: number, t: HostThread): Sim.Gen<void> {
  const vm = ms.vm
  if (wraps(ms, gen)) ms.wrapPending[as] = gen // ghost (GEN-4): cleared at the zap's flip
  yield* kvm_mmu_invalidate_mmio_sptes(ms.mmu, gen, ms.nr_as, ms.mmioGenBits, t, () => {
    ms.wrapPending.fill(-1)
  })
  for (const v of vm.vcpus) yield* kvm_vcpu_kick(vm, v, t)
}

/**
 * `kvm_arch_flush_shadow_memslot`: `kvm_mmu_zap_all_fast` with KVM_X86_QUIRK_SLOT_ZAP_ALL (the
 * default), `kvm_mmu_zap_memslot` without it, or (`zap=all`) the revert's `kvm_mmu_zap_all`.
 */
export function* kvm_arch_flush_shadow_memslot(ms: Memslots, slot: Memslot, t: HostThread): Sim.Gen<void> {
  switch (ms.vm.switches.variant.zap) {
    case "fast":
      return yield* kvm_mmu_zap_all_fast(ms.mmu, t, () => ms.wrapPending.fill(-1))
    case "memslot":
      return yield* kvm_mmu_zap_memslot(ms.mmu, slot, t)
    case "all":
      return yield* kvm_mmu_zap_all(ms.mmu, t)
  }
}

/**
 * DEL-1 after a DELETE or MOVE returns: the shadow pages not freed that still map a gfn of the
 * old slot to its old pfn (undefined when there are none). Stale TLB entries are TLB-1's: a vCPU
 * cannot use one before it has processed the flush request.
 */
export const checkDeleted = (ms: Memslots, old: Memslot, op: string): string | undefined => {
  for (const sp of ms.mmu.pages) {
    if (sp === undefined || sp.isRoot || sp.freed || sp.as_id !== old.as_id) continue
    for (let gfn = sp.gfn; gfn < sp.gfn + sp.entries.length; gfn++) {
      if (!covers(old, gfn)) continue
      const spte = ms.vm.memory.peek(sp.sptep(gfn))
      if (is_shadow_present_pte(spte) && spte === gfnToPfn(old, gfn)) {
        return `KVM_SET_USER_MEMORY_REGION (${op} slot ${old.id} of address space ${old.as_id}) returned while shadow page ${sp.id} still maps gfn ${gfn} to its old pfn ${spte}`
      }
    }
  }
  return undefined
}

// ------------------------------------------------------------------------------ x86.h: the MMIO cache

/**
 * `vcpu_cache_mmio_info`: remember that `gfn` is MMIO, with address space 0's generation
 * (`kvm_memslots(vcpu->kvm)`); not while an update is in progress (patch 3/27).
 */
export function* vcpu_cache_mmio_info(ms: Memslots, v: VcpuState, gfn: number, access: number): Sim.Gen<void> {
  const [, gen] = yield* memslotsGeneration(ms, v, 0)
  if (gen >= KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS && !ms.vm.bug("C.cacheDuringFlux")) return
  const bad = Inv.gen3(ms.vm.kernel, v, gfn, gen)
  if (bad !== undefined) yield* Sim.fail("GEN-3", bad)
  const c = mmioCache.of(v)
  c.mmio_gfn = gfn
  c.mmio_access = access
  c.mmio_gen = gen
  ms.vm.count("mmio_cache_fills")
}

/** `vcpu_match_mmio_gen`: the cached generation is address space 0's current one, in full. */
function* vcpu_match_mmio_gen(ms: Memslots, v: VcpuState): Sim.Gen<boolean> {
  const [, gen] = yield* memslotsGeneration(ms, v, 0)
  return mmioCache.of(v).mmio_gen === gen
}

/** `mmio_info_in_cache` -> `vcpu_match_mmio_gpa` (a direct MMU: keyed by gpa). */
export function* mmio_info_in_cache(ms: Memslots, v: VcpuState, gfn: number): Sim.Gen<boolean> {
  const c = mmioCache.of(v)
  if (c.mmio_gfn === 0 || c.mmio_gfn !== gfn) return false
  return yield* vcpu_match_mmio_gen(ms, v)
}
