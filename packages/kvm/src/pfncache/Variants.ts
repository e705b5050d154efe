/**
 * Mechanism E's bug switches (spec §5.7, §10.4), with the spec's names. Every switch off is the
 * merged kernel (v6.13's `pfncache.c` and MMU-notifier glue).
 */
import { Schema } from "effect"
import { knob, type Switch } from "../vcpu/Switch.js"

export const switches = {
  "E.seqOnly": {
    spec: "§5.7, the race 58cd407ca4c6 (\"KVM: Fix multiple races in gfn=>pfn cache refresh\") closed: hva_to_pfn_retry's retry test reads mmu_invalidate_seq but not mn_active_invalidate_count, so an invalidation that started while the refresher was outside the lock and has not ended yet goes unnoticed",
    breaks: "GPC-1",
    needs: {},
    note: "the refresher publishes the page the MM is freeing: the next user writes to it (GPC-1), and the invalidation's end can find the cache valid on it (GPC-2); the use comes first here"
  },
  "E.validAfterUnlock": {
    spec: "§5.7, race 2 of 58cd407ca4c6: hva_to_pfn_retry clears valid only after taking the lock back, so while it is out, another user of a shared cache (Xen's) passes kvm_gpc_check with the new uhva and the old pfn",
    breaks: "GPC-1",
    needs: {}
  },
  "E.invalidateAtEnd": {
    spec: "§5.7, §10.4, Woodhouse's v3 4/5 (not merged): gfn_to_pfn_cache_invalidate_start runs in invalidate_range_end instead of invalidate_range_start, so a valid cache stays usable while the MM frees the page",
    breaks: "GPC-1",
    needs: {},
    note: "the model lets the MM free the old page before range_end, which mmu_notifier.h allows; only the move of the invalidation is modelled, not 4/5's needs_invalidation loop (1/5, 2/5)"
  },
  "E.noRecheckUnderWrite": {
    spec: "§5.7: gfn_to_pfn_cache_invalidate_start clears valid on its read-locked test alone, without testing again under the write lock",
    clean:
      "benign, as the spec says: between the read unlock and the write lock only a refresher can change the cache, and it leaves it either invalid or valid on a page the MM maps now, so the extra clear costs a refresh and nothing else",
    needs: {}
  },
  "E.livelock": {
    spec: "§5.7, thread 5: invalidations of unrelated pages, back to back from two MM threads or more, keep the VM-wide mn_active_invalidate_count above 0; mainline's refresher retries (fault in, map, unmap) until the storm ends",
    breaks: "GPC-3",
    needs: { gpcWait: ["mainline"] },
    note: "a workload condition more than a code defect: the storm's invalidators run without gaps; the range-precise waits (gpcWait) are immune"
  },
  "M.refreshWithoutMutex": {
    spec: "mutant (no historical bug; 93984f19e7bc made refresh_lock a mutex over every refresh): kvm_gpc_refresh and activation skip refresh_lock, so two refreshers run hva_to_pfn_retry at once",
    breaks: "GPC-5",
    needs: {},
    mutant: true
  },
  "M.swapIgnoresInvalidations": {
    spec: "mutant (no historical bug): kvm_swap_active_memslots publishes without waiting for mn_active_invalidate_count to reach 0",
    breaks: "GPC-4",
    needs: {},
    mutant: true
  }
} as const satisfies Record<string, Switch>

/**
 * What tells a refresher that an invalidation came and went while it was outside the lock:
 * `memslot` — `mmu_invalidate_seq`, which moves only when the range overlapped a memslot (the
 * kernel); `every` — kvmlab's proposal: also a sequence count bumped at every range end, under
 * `mn_invalidate_lock` before the count drops, which `mmu_notifier_retry_cache` compares too. An
 * HVA-based cache outside every memslot is unprotected under `memslot` (spec §10.4).
 */
export const GpcSeq = Schema.Literal("memslot", "every")

/**
 * How a refresher waits out invalidations (spec §5.8, thread 5): `mainline` — retry while the
 * VM-wide `mn_active_invalidate_count` is raised or `mmu_invalidate_seq` moved, each pass a full
 * fault-in, busy with `cond_resched`; `range-busy` — Sean's series (1/5-3/5): busy-wait
 * (`cond_resched`, `cpu_relax`) while an invalidation in flight covers the uhva, snapshot the seq
 * right before `hva_to_pfn`, retry on the range or the seq; `range-sleep` — Woodhouse's 3/5 (5/5
 * of Sean's series): sleep on a waitqueue woken when the count reaches 0 instead; `halt-poll` —
 * busy up to a window (`gpcPoll`), then sleep; `sean` — range-busy plus Sean's lockless check
 * (4/5): `valid` set before the retry test with `smp_mb`, and the invalidation's lockless
 * pre-check after `smp_mb__before_atomic`.
 */
export const GpcWait = Schema.Literal("mainline", "range-busy", "range-sleep", "halt-poll", "sean")

/**
 * The halt-poll window: `adaptive` (halt-polling's: from 10 µs, ×2 after a sleep that ended within
 * 200 µs, ÷2 after a wait longer than that, spec §6 N8) or a fixed window in ns.
 */
export const GpcPoll = Schema.Literal("adaptive", "10000", "50000", "200000")

/** Mechanism E's variant settings. */
export const variant = {
  gpcSeq: knob(GpcSeq, "memslot"),
  gpcWait: knob(GpcWait, "mainline"),
  gpcPoll: knob(GpcPoll, "adaptive")
}
