/**
 * SPTE values as `arch/x86/kvm/mmu/spte.h` and `spte.c` make them, for the shadow pages'
 * last-level entries: not present (0), a present mapping of a pfn, or an MMIO SPTE — a
 * non-present entry recognised by `(spte & shadow_mmio_mask) == shadow_mmio_value` that carries
 * the gfn and the memslot generation it was made at, masked to the MMIO generation's width.
 *
 * The kernel spreads the generation over SPTE bits 3-10 and 52-62 (19 bits, `MMIO_SPTE_GEN_MASK`);
 * memory locations here hold doubles (53 bits exact), so the model keeps the same fields packed
 * differently: the MMIO marker at bit 51, the masked generation from bit 20, the gfn below. What
 * the protocol reads from an SPTE — is it MMIO, its gfn, its generation — is the kernel's.
 */

/** The marker of an MMIO SPTE (`shadow_mmio_value`, under `shadow_mmio_mask`). */
export const SHADOW_MMIO_VALUE = 2 ** 51
const GEN_SHIFT = 2 ** 20
/** The gfns a model SPTE can carry. */
export const MAX_GFN = GEN_SHIFT - 1

/** `gen & MMIO_SPTE_GEN_MASK` for an MMIO generation of `bits` bits (19 in the kernel); the in-progress flag is above it. */
export const mmio_generation = (gen: number, bits: number): number => gen % 2 ** bits

/**
 * `kvm_mmu_invalidate_mmio_sptes`'s wrap test value: the MMIO generation with the address-space
 * bits stripped (`gen &= ~((u64)nr_as - 1)`), or kept when `stripAs` is false (C.wrapOnlyAs0).
 */
export const mmio_wrap_value = (gen: number, bits: number, nr_as: number, stripAs = true): number => {
  const masked = mmio_generation(gen, bits)
  return stripAs ? masked - (masked % nr_as) : masked
}

/** `is_mmio_spte`. */
export const is_mmio_spte = (spte: number): boolean => spte >= SHADOW_MMIO_VALUE

/** `is_shadow_present_pte`: a mapping of a pfn. */
export const is_shadow_present_pte = (spte: number): boolean => spte > 0 && spte < SHADOW_MMIO_VALUE

/** `make_mmio_spte(vcpu, gfn, access)` with the generation already read and masked by the caller. */
export const make_mmio_spte = (gfn: number, maskedGen: number): number => SHADOW_MMIO_VALUE + maskedGen * GEN_SHIFT + gfn

/** `get_mmio_spte_generation`. */
export const get_mmio_spte_generation = (spte: number): number => Math.floor((spte - SHADOW_MMIO_VALUE) / GEN_SHIFT)

/** `get_mmio_spte_gfn`. */
export const get_mmio_spte_gfn = (spte: number): number => (spte - SHADOW_MMIO_VALUE) % GEN_SHIFT

/** `make_spte` for a present leaf: the pfn (the model keeps no access bits). */
export const make_spte = (pfn: number): number => pfn

/** `spte_to_pfn`. */
export const spte_to_pfn = (spte: number): number => spte
