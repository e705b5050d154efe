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
  "C.slowZapAllAtWrap": {
    spec: "§3.7, thread 2's v2 (patches 14 and 27 of 27; 92f58b5c0181 went back to the fast zap): kvm_mmu_invalidate_mmio_sptes handles the wrap with kvm_mmu_zap_all, from the head, dropping mmu_lock when contended, with no root switch",
    breaks: "ZAP-1",
    needs: {},
    note: "the livelock 92f58b5c0181 gives as its reason (\"theoretically susceptible to the livelock bug\"): faulting vCPUs add pages at the head faster than the restarting zap removes them. The spec expected GEN-2, a stale hit while the lock is dropped; check_mmio_spte misses while the update is in progress, so there is none"
  },
  "C.flushOrZapPriority": {
    spec: "§3.5, §3.7: kvm_mmu_remote_flush_or_zap as merged in v5.1-rc (a21136345cb6f), with the list_empty() check inverted: with no flush pending, a non-empty invalid_list is neither committed before the lock drop nor ever (fixed by \"KVM: x86/mmu: Fix an inverted list_empty() check when zapping sptes\")",
    breaks: "ZAP-1",
    needs: { zap: ["memslot"] },
    note: "the leaked shadow pages are never freed (the slab BUG at module exit in the fix's log); ZAP-1's monitor stays hot"
  },
  "C.reloadOutsideLock": {
    spec: "§3.7: kvm_mmu_zap_all_fast makes the KVM_REQ_MMU_FREE_OBSOLETE_ROOTS request after dropping mmu_lock, not in the flip's critical section",
    clean:
      "on the shadow MMU every page is made under mmu_lock with the generation read there, so none is tagged with the old one after the flip; a vCPU still on its obsolete root takes RET_PF_RETRY from is_page_fault_stale (a955cad84cdaf) until the late request, and kvm_mmu_commit_zap_page flushes before it frees. The kernel's comment is about the TDP MMU's roots, which this model does not have",
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

/**
 * What the full fault does for a gfn with no slot while a memslot update is in progress: `make`
 * an MMIO SPTE with the in-progress array's generation masked (the kernel), or `skip` it and
 * emulate (kvmlab's proposal, as `vcpu_cache_mmio_info` skips the cache): an SPTE made after the
 * wrap's zap otherwise carries the generation just before the wrap, and aliases it a cycle later.
 */
export const MmioSpteInFlux = Schema.Literal("make", "skip")

/** Mechanism C's variant settings. */
export const variant = {
  zap: knob(Zap, "fast"),
  mmioGenBits: knob(MmioGenBits, "19"),
  addressSpaces: knob(AddressSpaces, "2"),
  zapBatch: knob(ZapBatch, "10"),
  mmioCaching: knob(MmioCaching, "on"),
  mmioSpteInFlux: knob(MmioSpteInFlux, "make")
}
