/**
 * The primary MM of the VMM process (spec §5.2, §10.4): its page table, one PTE per host virtual
 * page (`hva`, in pages), its pages (`page->_refcount`, contents, freed and reused), GUP as KVM
 * uses it (`hva_to_pfn`, which faults a missing page in and takes a reference), and the MM actor:
 * it takes `Munmap`, `Mprotect`, `Migrate` and `Remap` messages from a bounded mailbox and, for
 * each, calls its MMU notifiers' `invalidate_range_start`, changes the PTEs, drops the old pages'
 * mapping references — a page whose count reaches 0 is freed at once and is the next one the
 * allocator hands out — and only then `invalidate_range_end`. `mmu_notifier.h` allows the pages
 * to be gone by `_end`; `mm/memory.c` usually frees them after it (after `tlb_finish_mmu`), but a
 * forced flush frees them inside the window, and that is the case that matters to a secondary
 * MMU, so it is the one modelled.
 *
 * A page's pfn and its kernel mapping (`khva`) are the same number here: `kmap` of a 64-bit
 * kernel is `page_address`, and the model has no highmem.
 */
import { type Memory, Spinlock } from "@kvmlab/memory"
import { Mailbox, Sim } from "@kvmlab/sim"
import { Schema } from "effect"
import type { HostThread } from "../Vm.js"

/**
 * A host virtual page range `[hva, hva + npages)`, and the virtual ns the MM spends between the
 * range start and the range end beyond the PTE changes themselves (a large munmap's page walks).
 */
const range = {
  hva: Schema.Int.pipe(Schema.nonNegative()),
  npages: Schema.Int.pipe(Schema.between(1, 1 << 20)),
  holdNs: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 1_000_000_000)), { default: () => 0 })
}

/** `munmap(hva, npages)`: the pages go; the next touch faults fresh ones in. */
export class Munmap extends Schema.TaggedClass<Munmap>()("Munmap", range) {}
/** `mprotect`: an invalidation that leaves every PTE's page where it is. */
export class Mprotect extends Schema.TaggedClass<Mprotect>()("Mprotect", range) {}
/** Page migration (NUMA balancing, compaction): each page copied to a new one; the old one freed. */
export class Migrate extends Schema.TaggedClass<Migrate>()("Migrate", range) {}
/** `munmap` then `mmap` and touch: new pages at the same addresses. */
export class Remap extends Schema.TaggedClass<Remap>()("Remap", range) {}
/** The VMM process exits: the MM actor ends. */
export class Exit extends Schema.TaggedClass<Exit>()("Exit", {}) {}

/** Every message the MM actor takes. */
export const MmCommand = Schema.Union(Munmap, Mprotect, Migrate, Remap, Exit)
export type MmCommand = typeof MmCommand.Type

/** Messages the MM actor's mailbox holds at most (the sender waits beyond). */
export const MM_MAILBOX_CAPACITY = 4

/** `struct mmu_notifier_ops`: what the MM calls around a change of its page table. */
export interface MmuNotifier {
  readonly invalidate_range_start: (t: HostThread, start: number, end: number) => Sim.Gen<void>
  readonly invalidate_range_end: (t: HostThread, start: number, end: number) => Sim.Gen<void>
}

/** The MM of the VMM process. */
export class Mm {
  /** `mm->page_table_lock` (the split PTE locks of one page-table page, here one lock). */
  readonly page_table_lock: Spinlock.Spinlock
  /** The PTE of each host virtual page: the pfn it maps, or 0. */
  readonly pte: Array<Memory.Loc>
  /** `page->_refcount` of each pfn (index 0 unused). */
  readonly refcount: Array<Memory.Loc> = [undefined as unknown as Memory.Loc]
  /** The contents of each pfn: its first word (a user that writes one word writes this one). */
  readonly data: Array<Memory.Loc> = [undefined as unknown as Memory.Loc]
  /** Each pfn's further words, by index from 1, made when first touched (a pvti is six). */
  private readonly words: Array<Array<Memory.Loc> | undefined> = [undefined]
  /** `mm->notifier_subscriptions`. */
  readonly notifiers: Array<MmuNotifier> = []
  /** Freed pfns, the most recently freed last: the allocator reuses it first. */
  readonly freeList: Array<number> = []
  // ---- ghost
  /** Whether each pfn is free now. */
  readonly freed: Array<boolean> = [false]
  /** The invalidations between their start and their end: their host page ranges, by number (from 1, in start order). */
  readonly inFlight = new Map<number, readonly [number, number]>()
  invalidationsStarted = 0

  constructor(readonly memory: Memory.Memory, readonly name: string, readonly hvaPages: number) {
    this.page_table_lock = Spinlock.make(memory, `${name}.page_table_lock`)
    this.pte = Array.from({ length: hvaPages }, (_, hva) => memory.alloc(`${name}.pte[hva ${hva}]`, 0))
  }

  /** Whether an invalidation covering `hva` is between its start and its end. */
  invalidating(hva: number): boolean {
    for (const [start, end] of this.inFlight.values()) if (hva >= start && hva < end) return true
    return false
  }

  /** @internal a new pfn's (empty) list of further words. */
  pushPage(): void {
    this.words.push(undefined)
  }

  /** Word `i` of page `pfn` (0 is `data[pfn]`). */
  word(pfn: number, i: number): Memory.Loc {
    if (i === 0) return this.data[pfn]!
    const ws = (this.words[pfn] ??= [])
    return (ws[i] ??= this.memory.alloc(`${this.name}.page[${pfn}].word[${i}]`, 0))
  }

  /** The indexes of page `pfn`'s words made so far, beyond the first. */
  wordsOf(pfn: number): ReadonlyArray<number> {
    const ws = this.words[pfn]
    if (ws === undefined) return []
    const out: Array<number> = []
    for (let i = 1; i < ws.length; i++) if (ws[i] !== undefined) out.push(i)
    return out
  }

  /** The pfn `hva` maps now (a check's look, not a memory operation). */
  mapped(hva: number): number {
    return this.memory.peek(this.pte[hva]!)
  }
}

/** A page for a fault: the last one freed (so a stale user of it is seen writing someone else's page), else a new pfn. */
function* alloc_page(mm: Mm, t: HostThread): Sim.Gen<number> {
  let pfn = mm.freeList.pop()
  if (pfn === undefined) {
    pfn = mm.refcount.length
    mm.refcount.push(mm.memory.alloc(`${mm.name}.page[${pfn}]._refcount`, 0))
    mm.data.push(mm.memory.alloc(`${mm.name}.page[${pfn}].data`, 0))
    mm.freed.push(false)
    mm.pushPage()
  }
  mm.freed[pfn] = false
  yield* t.hw.WRITE_ONCE(mm.refcount[pfn]!, 1) // the mapping's reference
  // A user page is handed out zeroed (clear_page): nothing of its last user's data stays.
  yield* t.hw.WRITE_ONCE(mm.data[pfn]!, 0)
  for (const i of mm.wordsOf(pfn)) yield* t.hw.WRITE_ONCE(mm.word(pfn, i), 0)
  return pfn
}

/** `get_page`. */
export function* get_page(mm: Mm, t: HostThread, pfn: number): Sim.Gen<void> {
  yield* t.hw.atomic_inc(mm.refcount[pfn]!)
}

/** `put_page`: the last reference frees the page. */
export function* put_page(mm: Mm, t: HostThread, pfn: number): Sim.Gen<void> {
  if (!(yield* t.hw.atomic_dec_and_test(mm.refcount[pfn]!))) return
  mm.freed[pfn] = true
  mm.freeList.push(pfn)
  mm.memory.kernel.event("page.free", [pfn])
}

/**
 * `hva_to_pfn` with FOLL_WRITE (GUP): the page `hva` maps, faulted in if missing, with a reference
 * the caller drops (`kvm_release_page_*`). `pageFaultNs` is charged for a fault-in.
 */
export function* hva_to_pfn(mm: Mm, t: HostThread, hva: number, costNs: number, faultNs: number): Sim.Gen<number> {
  yield* Sim.point(costNs)
  yield* Spinlock.spin_lock(t.hw, mm.page_table_lock)
  let pfn = yield* t.hw.READ_ONCE(mm.pte[hva]!)
  if (pfn === 0) {
    yield* Sim.point(faultNs)
    pfn = yield* alloc_page(mm, t)
    yield* t.hw.WRITE_ONCE(mm.pte[hva]!, pfn)
  }
  yield* get_page(mm, t, pfn)
  yield* Spinlock.spin_unlock(t.hw, mm.page_table_lock)
  return pfn
}

/** Clears `hva`'s PTE under the page-table lock; returns the pfn it mapped (0 if none). */
function* zap_pte(mm: Mm, t: HostThread, hva: number): Sim.Gen<number> {
  yield* Spinlock.spin_lock(t.hw, mm.page_table_lock)
  const pfn = yield* t.hw.READ_ONCE(mm.pte[hva]!)
  if (pfn !== 0) yield* t.hw.WRITE_ONCE(mm.pte[hva]!, 0)
  yield* Spinlock.spin_unlock(t.hw, mm.page_table_lock)
  return pfn
}

/** Maps a fresh (zeroed) page at `hva`, under the page-table lock, with a copy of page `from`'s words unless `from` is 0 (a migration copies; a remap does not). */
function* map_new(mm: Mm, t: HostThread, hva: number, from: number): Sim.Gen<void> {
  yield* Spinlock.spin_lock(t.hw, mm.page_table_lock)
  const pfn = yield* alloc_page(mm, t)
  if (from !== 0) {
    yield* t.hw.WRITE_ONCE(mm.data[pfn]!, yield* t.hw.READ_ONCE(mm.data[from]!))
    for (const i of mm.wordsOf(from)) yield* t.hw.WRITE_ONCE(mm.word(pfn, i), yield* t.hw.READ_ONCE(mm.word(from, i)))
  }
  yield* t.hw.WRITE_ONCE(mm.pte[hva]!, pfn)
  yield* Spinlock.spin_unlock(t.hw, mm.page_table_lock)
}

/**
 * MN-1 (kvmlab's; spec §5.6 has no id for it), an invalidation ends: `invalidate_range_end`
 * comes at most `MN1_SLACK_NS` of virtual time after the command's own `holdNs` past its
 * `invalidate_range_start`, and before the run ends. A notifier may make the MM wait (a lock, a
 * remote TLB flush) for microseconds; one that keeps it waiting for a millisecond, or for ever,
 * is a notifier bug. The bound is in virtual time, not steps: the model's spinlock is
 * test-and-set (`Spinlock.ts`), and under PCT a refresher that takes and drops `page_table_lock`
 * in a loop can win it every time, with no notifier at fault: such a run ends at the step bound.
 */
export const MN1_SLACK_NS = 1_000_000

/**
 * Runs one command: notifiers' start, the page-table change with the old pages put, notifiers'
 * end. MN-1's monitor is hot from before the start until after the end.
 */
export function* apply(mm: Mm, t: HostThread, cmd: Exclude<MmCommand, Exit>): Sim.Gen<void> {
  const start = cmd.hva
  const end = Math.min(cmd.hva + cmd.npages, mm.hvaPages)
  const id = ++mm.invalidationsStarted
  mm.inFlight.set(id, [start, end])
  const monitor = mm.memory.kernel.monitor("MN-1", { maxHotNs: cmd.holdNs + MN1_SLACK_NS })
  monitor.hot(`${t.name}'s ${cmd._tag} of host pages [${start}, ${end}) started its MMU-notifier invalidation and has not reached invalidate_range_end`)
  for (const n of mm.notifiers) yield* n.invalidate_range_start(t, start, end)
  if (cmd._tag !== "Mprotect") {
    for (let hva = start; hva < end; hva++) {
      const old = yield* zap_pte(mm, t, hva)
      if (old === 0) continue
      // migrate_pages copies into the new page before the old one goes; a remap starts from zero.
      if (cmd._tag === "Migrate") yield* map_new(mm, t, hva, old)
      if (cmd._tag === "Remap") yield* map_new(mm, t, hva, 0)
      yield* put_page(mm, t, old) // the mapping's reference: freed here unless GUP holds one
    }
  }
  // The MM's own work in the window (a cost: it is busy, not asleep; under the search
  // strategies a scheduling point, so a refresher spinning meanwhile cannot stall the clock).
  if (cmd.holdNs > 0) yield* Sim.point(cmd.holdNs)
  for (const n of mm.notifiers) yield* n.invalidate_range_end(t, start, end)
  mm.inFlight.delete(id)
  monitor.cold()
}

/** The MM actor: runs each command from its mailbox until `Exit`. Returns the commands run. */
export const mm_actor = (mm: Mm, box: Mailbox.Mailbox<MmCommand>, t: HostThread): Sim.Gen<number> =>
  Mailbox.serve(box, "Exit", (cmd) => apply(mm, t, cmd))
