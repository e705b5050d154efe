/**
 * Mechanism C's invariants (spec §3.6, §10.2), with the spec's ids. Each counts itself
 * (`k.check`) and returns the violation's message, or undefined when it holds. ZAP-1 is a
 * liveness monitor (`zap1`), hot from a zap's start (the generation flip) until the pages
 * present then are gone.
 */
import type { Sim } from "@kvmlab/sim"
import type { VcpuState } from "../vcpu/State.js"
import { KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS } from "./Protocol.js"
import type { Memslot } from "./State.js"

export const ids = ["GEN-1", "GEN-2", "GEN-3", "GEN-4", "DEL-1", "ZAP-1", "LAT-1"] as const

const inProgress = (gen: number): boolean => gen >= KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS
const completed = (gen: number): number => (inProgress(gen) ? gen - KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS : gen)
/** A generation as a kernel engineer reads it: `g` or `g|IN_PROGRESS`. */
export const genName = (gen: number): string => (inProgress(gen) ? `${completed(gen)}|IN_PROGRESS` : String(gen))

/**
 * GEN-1, uniqueness: no generation is stored into a memslot array twice, in the same address
 * space or another (each update publishes one in-progress value, then one completed value).
 */
export const gen1 = (k: Sim.Kernel, published: Map<number, number>, as: number, gen: number): string | undefined => {
  const owner = published.get(gen)
  return k.check("GEN-1", owner === undefined)
    ? undefined
    : `address space ${as} published generation ${genName(gen)}, which address space ${owner} had published before`
}

/**
 * GEN-2, no stale MMIO hit: `check_mmio_spte` reports a hit only for an SPTE made under the
 * generation of the array the vCPU dereferenced (an SPTE made while that update was in
 * progress counts as made under it: §10.2). A hit on an SPTE from an earlier generation is a
 * stale "no slot" answer (19-bit aliasing after a wrap, or the in-progress flag lost).
 */
export const gen2 = (k: Sim.Kernel, v: VcpuState, gfn: number, madeAt: number, seen: number, slot: Memslot | undefined): string | undefined =>
  k.check("GEN-2", completed(madeAt) === seen)
    ? undefined
    : `${v.name} hit the MMIO SPTE of gfn ${gfn} made at generation ${genName(madeAt)} while its memslots are at generation ${genName(seen)}: a stale MMIO answer` +
      (slot === undefined
        ? ` (gfn ${gfn} has no slot at ${genName(seen)} either, so this answer happens to be right)`
        : `, and wrong: gfn ${gfn} is in slot ${slot.id} at ${genName(seen)}, so a guest access to its memory becomes an MMIO exit`)

/** GEN-3, no cache during flux: `vcpu_cache_mmio_info` never fills the cache while an update is in progress. */
export const gen3 = (k: Sim.Kernel, v: VcpuState, gfn: number, gen: number): string | undefined =>
  k.check("GEN-3", !inProgress(gen))
    ? undefined
    : `${v.name} cached gfn ${gfn} as MMIO at generation ${genName(gen)}, while a memslot update is in progress`

/**
 * GEN-4, wrap safety: when a completed generation wraps the MMIO generation (masked and with the
 * address-space bits stripped, it is 0), every shadow page is obsolete or zapped before any vCPU
 * reads that generation. `pendingWrap` is the wrapping generation whose fast zap has not flipped
 * `mmu_valid_gen` yet.
 */
export const gen4 = (k: Sim.Kernel, v: VcpuState, as: number, seen: number, pendingWrap: number): string | undefined =>
  k.check("GEN-4", seen !== pendingWrap)
    ? undefined
    : `${v.name} read address space ${as}'s generation ${seen}, which wraps the MMIO generation, before kvm_mmu_zap_all_fast made the old shadow pages obsolete`

/** DEL-1, deletion completeness, after a DELETE or MOVE returns: no SPTE and no TLB entry maps an old gfn of the slot to its old pfn. */
export const del1 = (k: Sim.Kernel, what: string | undefined): string | undefined =>
  k.check("DEL-1", what === undefined) ? undefined : what

/**
 * LAT-1, bounded lock hold: the zapper holding `mmu_lock` zaps at most `BATCH_ZAP_PAGES` pages
 * (plus the one in hand) after a waiter has started waiting.
 */
export const lat1 = (k: Sim.Kernel, who: string, zapped: number, batch: number): string | undefined =>
  k.check("LAT-1", zapped <= batch + 1)
    ? undefined
    : `${who} zapped ${zapped} shadow pages holding mmu_lock while another thread waited for it (BATCH_ZAP_PAGES is ${batch})`

/**
 * ZAP-1's bound, in the zapper's own steps, from what was on the list at the start: a few steps
 * per entry to clear, a lock hand-off per page, and slack.
 */
export const zap1Bound = (pages: number, entries: number): number => 500 + 40 * pages + 8 * entries
