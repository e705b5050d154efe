/**
 * Mechanism E's invariants (spec §5.6, §10.4), with the spec's ids. Each counts itself
 * (`k.check`) and returns the violation's message, or undefined when it holds.
 */
import type { Sim } from "@kvmlab/sim"
import type { Mm } from "../host/Mm.js"
import type { GfnToPfnCache } from "./State.js"

export const ids = ["GPC-1", "GPC-2", "GPC-3", "GPC-4", "GPC-5"] as const

/**
 * GPC-3, progress: a refresh is not held up by a stream of invalidations of other pages. The
 * model's bound: the retries a refresh makes while no invalidation of its own page is in flight
 * are caused by at most this many distinct invalidations (one slow invalidation of another page
 * may cost many retries; a stream of them, unboundedly many, is the livelock of §5.7).
 */
export const GPC3_MAX_INVALIDATIONS = 50

export const gpc3 = (k: Sim.Kernel, gpc: GfnToPfnCache, uhva: number, causes: number, retries: number): string | undefined =>
  k.check("GPC-3", causes <= GPC3_MAX_INVALIDATIONS)
    ? undefined
    : `the refresh of ${gpc.name} retried ${retries} times with no invalidation of its page (uhva ${uhva}) in flight, held up by ${causes} invalidations of other pages: a refresher starved by unrelated invalidations`

const pageState = (mm: Mm, pfn: number): string => (pfn <= 0 || pfn >= mm.freed.length ? "no page" : mm.freed[pfn] ? "freed" : "in use elsewhere")

/**
 * GPC-1, no stale use: a user that passed `kvm_gpc_check` under the read lock writes through
 * `khva` only while the MM still maps that page at the cache's `uhva` (the strict form of §5.6:
 * not after the MM has freed or reused it).
 */
export const gpc1 = (k: Sim.Kernel, who: string, gpc: GfnToPfnCache, khva: number, uhva: number, mm: Mm): string | undefined => {
  const now = mm.mapped(uhva)
  return k.check("GPC-1", now === khva && !mm.freed[khva]!)
    ? undefined
    : `${who} wrote through ${gpc.name} to pfn ${khva} (${pageState(mm, khva)}), but the MM maps ${now === 0 ? "nothing" : `pfn ${now}`} at uhva ${uhva}: a use of a stale page`
}

/**
 * GPC-2, no lost invalidation: when an invalidation of `[start, end)` ends, no cache whose uhva it
 * covers is valid with a pfn the MM no longer maps there.
 */
export const gpc2 = (k: Sim.Kernel, gpc: GfnToPfnCache, valid: boolean, pfn: number, uhva: number, start: number, end: number, mm: Mm): string | undefined => {
  const stale = valid && uhva >= start && uhva < end && pfn !== mm.mapped(uhva)
  return k.check("GPC-2", !stale)
    ? undefined
    : `the invalidation of host pages [${start}, ${end}) ended with ${gpc.name} valid on pfn ${pfn} (${pageState(mm, pfn)}), which the MM no longer maps at uhva ${uhva}`
}

/** GPC-4, memslot interlock: a memslot array is published only while no invalidation is between its start and its end. */
export const gpc4 = (k: Sim.Kernel, as: number, count: number): string | undefined =>
  k.check("GPC-4", count === 0)
    ? undefined
    : `address space ${as}'s new memslots were published while ${count} MMU-notifier invalidations were in flight (mn_active_invalidate_count)`

/**
 * GPC-5, single refresher: when a refresher takes the write lock back in `hva_to_pfn_retry`, no
 * one else has made the cache valid (the kernel's `WARN_ON_ONCE(gpc->valid)`).
 */
export const gpc5 = (k: Sim.Kernel, gpc: GfnToPfnCache, validNow: boolean): string | undefined =>
  k.check("GPC-5", !validNow) ? undefined : `another refresher made ${gpc.name} valid while this one was outside the lock (refresh_lock not held)`
