/**
 * Mechanism E's shared state (spec §5.1, §10.4): `struct gfn_to_pfn_cache`, data in memory (not
 * an actor), and the VM's MMU-notifier state (`kvm->mmu_invalidate_*`, `gpc_lock`, `gpc_list`);
 * `mn_invalidate_lock`, `mn_active_invalidate_count` and the memslot updater's rcuwait are the
 * memslots' (`memslots/State.ts`), which mechanism E shares.
 *
 * Memory locations: every field another thread reads or writes — the cache's fields, read by
 * `kvm_gpc_check` under the read lock and by `gfn_to_pfn_cache_invalidate_start` from the MM's
 * thread; `mmu_invalidate_seq` and the rest. Plain fields: `memslot` (only under the lock, and
 * only for dirty logging, which the model does not check) and the ghosts.
 */
import { type Memory, Rwlock, Spinlock } from "@kvmlab/memory"
import type { Mm } from "../host/Mm.js"
import type { Memslot, Memslots } from "../memslots/State.js"
import type { Vm } from "../Vm.js"
import { INVALID_GPA, KVM_HVA_ERR_BAD, KVM_PFN_ERR_FAULT, NULL } from "./Protocol.js"

/** `struct gfn_to_pfn_cache` (`kvm_gpc_init` values). */
export class GfnToPfnCache {
  /** `gpc->lock`: readers use the mapping under it; the notifier takes it for write. */
  readonly lock: Rwlock.Rwlock
  /** `gpc->refresh_lock`, a mutex: activate, refresh and deactivate hold it throughout. */
  readonly refresh_lock: Spinlock.Spinlock
  readonly generation: Memory.Loc
  readonly gpa: Memory.Loc
  readonly uhva: Memory.Loc
  readonly khva: Memory.Loc
  readonly pfn: Memory.Loc
  readonly active: Memory.Loc
  readonly valid: Memory.Loc
  /** `gpc->memslot` (under the lock). */
  memslot: Memslot | undefined = undefined
  /** Ghost: refreshes (activations included) in flight; GPC-2 leaves a cache being refreshed to GPC-1. */
  refreshers = 0
  /** gpcWait=halt-poll: the poll window in ns (only the refresher, under `refresh_lock`, uses it). */
  pollNs = 10_000
  constructor(readonly kvm: KvmMmuNotifier, readonly name: string) {
    const m = kvm.vm.memory
    const loc = (f: string, v: number) => m.alloc(`${name}.${f}`, v)
    this.lock = Rwlock.make(m, `${name}.lock`)
    this.refresh_lock = Spinlock.make(m, `${name}.refresh_lock`)
    this.generation = loc("generation", 0)
    this.gpa = loc("gpa", INVALID_GPA)
    this.uhva = loc("uhva", KVM_HVA_ERR_BAD)
    this.khva = loc("khva", NULL)
    this.pfn = loc("pfn", KVM_PFN_ERR_FAULT)
    this.active = loc("active", 0)
    this.valid = loc("valid", 0)
  }
}

/** The VM's side of the MMU notifier, and its caches (`kvm->gpc_list`). */
export class KvmMmuNotifier {
  /** `kvm->mmu_invalidate_seq`: bumped at each invalidation's end that overlapped a memslot. */
  readonly mmu_invalidate_seq: Memory.Loc
  /** `kvm->mmu_invalidate_in_progress`. */
  readonly mmu_invalidate_in_progress: Memory.Loc
  /** `kvm->mmu_invalidate_range_start`/`_end` (gfns; INVALID_GPA when reset). */
  readonly mmu_invalidate_range_start: Memory.Loc
  readonly mmu_invalidate_range_end: Memory.Loc
  /** gpcSeq=every (kvmlab's proposal): bumped at every invalidation's end, under `mn_invalidate_lock`. */
  readonly mn_invalidate_seq: Memory.Loc
  /** The hva range of the invalidations in flight (Woodhouse's 2/5, Sean's 3/5: `mmu_gpc_invalidate_range_*`), for the range-precise waits. */
  readonly mmu_gpc_invalidate_range_start: Memory.Loc
  readonly mmu_gpc_invalidate_range_end: Memory.Loc
  // ---- statistics (ghost)
  /** Each refresh's virtual ns, from the call to its return. */
  readonly refreshNs: Array<number> = []
  /** Virtual ns refreshers spent busy on passes that were thrown away or in busy-wait loops. */
  waitCpuNs = 0
  /** The most retries one refresh made with no invalidation of its page in flight. */
  maxNeedless = 0
  /** `kvm->gpc_lock`, over `gpc_list`. */
  readonly gpc_lock: Spinlock.Spinlock
  readonly gpc_list: Array<GfnToPfnCache> = []
  constructor(readonly vm: Vm, readonly ms: Memslots, readonly mm: Mm) {
    const m = vm.memory
    this.mmu_invalidate_seq = m.alloc(`${vm.name}.mmu_invalidate_seq`, 0)
    this.mmu_invalidate_in_progress = m.alloc(`${vm.name}.mmu_invalidate_in_progress`, 0)
    this.mmu_invalidate_range_start = m.alloc(`${vm.name}.mmu_invalidate_range_start`, INVALID_GPA)
    this.mmu_invalidate_range_end = m.alloc(`${vm.name}.mmu_invalidate_range_end`, INVALID_GPA)
    this.mn_invalidate_seq = m.alloc(`${vm.name}.mn_invalidate_seq`, 0)
    this.mmu_gpc_invalidate_range_start = m.alloc(`${vm.name}.mmu_gpc_invalidate_range_start`, 0)
    this.mmu_gpc_invalidate_range_end = m.alloc(`${vm.name}.mmu_gpc_invalidate_range_end`, 0)
    this.gpc_lock = Spinlock.make(m, `${vm.name}.gpc_lock`)
  }
}
