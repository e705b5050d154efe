/**
 * Mechanism C's variants and bug switches (spec §3.7, §3.8, §10.2), with the spec's names. Every
 * switch off, `zap=fast`, `mmioGenBits=19`, `addressSpaces=2`, `zapBatch=10` and
 * `mmioCaching=on` is the merged kernel (v6.12+, `KVM_X86_QUIRK_SLOT_ZAP_ALL` on, shadow paging).
 */
import { Schema } from "effect"
import { knob, type Switch } from "../vcpu/Switch.js"

export const switches = {
  "C.archHookAfterStore": {
    spec: "§3.7, patch 1/27 of thread 2: kvm_swap_active_memslots stores the new generation before kvm_arch_memslots_updated, so a vCPU can read a wrapped generation before the wrap's fast zap",
    breaks: "GEN-4",
    needs: {},
    note: "a vCPU then hits an old MMIO SPTE whose masked generation aliases the new one (GEN-2 follows); GEN-4 is seen first, at the read"
  },
  "C.wrapOnlyAs0": {
    spec: "§3.7, patch 2/27: kvm_mmu_invalidate_mmio_sptes tests (gen & MMIO_SPTE_GEN_MASK) == 0 without stripping the address-space bits, so SMM's odd generations never wrap",
    breaks: "GEN-4",
    needs: { addressSpaces: ["2"] },
    note: "the spec names GEN-2, the stale SMM MMIO hit that follows; an SMM vCPU reading the wrapped generation before any zap (GEN-4) comes first"
  },
  "C.cacheDuringFlux": {
    spec: "§3.7, patch 3/27: vcpu_cache_mmio_info fills the per-vCPU MMIO cache while a memslot update is in progress",
    breaks: "GEN-3",
    needs: { mmioCaching: ["on"] }
  },
  "C.lowBitInProgress": {
    spec: "§3.7, patches 4, 7 and 8 of 27: the pre-v5.1 layout, where the MMIO generation an SPTE stores and check_mmio_spte compares does not carry the update-in-progress flag, so a vCPU already on the new memslots hits SPTEs made under the old ones",
    breaks: "GEN-2",
    needs: { mmioCaching: ["on"] }
  },
  "C.zapAllLivelock": {
    spec: "§3.7, d012a06ab1d2 (the v5.2 revert) and 002c5f73c508: memslot deletion through kvm_mmu_zap_all that drops mmu_lock when contended and restarts from the head, while vCPUs fault new pages in",
    breaks: "ZAP-1",
    needs: { zap: ["all"] }
  },
  "C.holdLockWholeZap": {
    spec: "§3.7: kvm_zap_obsolete_pages never drops mmu_lock (no cond_resched_rwlock_write after a batch), as the revert's first version",
    breaks: "LAT-1",
    needs: { zap: ["fast"] }
  },
  "M.deleteSkipsZap": {
    spec: "mutant (no historical bug): kvm_invalidate_memslot publishes the INVALID copy but skips kvm_arch_flush_shadow_memslot, so the deleted slot's SPTEs survive",
    breaks: "DEL-1",
    needs: {},
    mutant: true
  },
  "M.genStepOne": {
    spec: "mutant (no historical bug): kvm_swap_active_memslots adds 1 to the generation instead of the number of address spaces, so address spaces share generations",
    breaks: "GEN-1",
    needs: { addressSpaces: ["2"] },
    mutant: true
  }
} as const satisfies Record<string, Switch>

/**
 * What `kvm_arch_flush_shadow_memslot` does on deletion or move: `fast` — `kvm_mmu_zap_all_fast`
 * (KVM_X86_QUIRK_SLOT_ZAP_ALL on, the default since v5.3); `memslot` — `kvm_mmu_zap_memslot`,
 * only the slot's pages (the quirk off; Sean's v5.1 flow); `all` — `kvm_mmu_zap_all` holding
 * `mmu_lock` for the whole walk (the v5.2 revert as first posted).
 */
export const Zap = Schema.Literal("fast", "memslot", "all")

/** The MMIO generation's width in bits (19 in the kernel); small widths make wraps reachable in short runs. */
export const MmioGenBits = Schema.Literal("19", "8", "4", "3", "2")

/** x86's memslot address spaces: 2 (normal and SMM), or 1 (a VM without SMM). */
export const AddressSpaces = Schema.Literal("2", "1")

/** `BATCH_ZAP_PAGES`: pages the fast zap zaps before it considers dropping `mmu_lock`. */
export const ZapBatch = Schema.Literal("10", "1", "4", "32", "100")

/** `enable_mmio_caching` (kvm module parameter): MMIO SPTEs and the per-vCPU MMIO cache, or neither. */
export const MmioCaching = Schema.Literal("on", "off")

/** Mechanism C's variant settings. */
export const variant = {
  zap: knob(Zap, "fast"),
  mmioGenBits: knob(MmioGenBits, "19"),
  addressSpaces: knob(AddressSpaces, "2"),
  zapBatch: knob(ZapBatch, "10"),
  mmioCaching: knob(MmioCaching, "on")
}
