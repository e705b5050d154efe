/**
 * `virt/kvm/pfncache.c` (v6.13; spec §5.4, §10.4): the gfn_to_pfn_cache's check, refresh and
 * `hva_to_pfn_retry`, activation and deactivation, and `gfn_to_pfn_cache_invalidate_start`, which
 * the MMU notifier calls. The cache holds no page reference: `hva_to_pfn_retry` drops GUP's at
 * the end (`kvm_release_page_clean`), so a reader is safe only because the notifier write-locks
 * the cache and clears `valid` before the MM frees the page.
 *
 * Switches: `E.validAfterUnlock` (`valid` cleared only after relocking), `E.seqOnly` (the retry
 * test ignores `mn_active_invalidate_count`), `E.noRecheckUnderWrite` (the notifier clears
 * `valid` on its read-locked test alone), `M.refreshWithoutMutex` (mutant: no `refresh_lock`).
 */
import { type Memory, Rwlock, Spinlock } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import { hva_to_pfn, put_page } from "../host/Mm.js"
import { memslotsGeneration, search_memslots } from "../memslots/KvmMain.js"
import { KVM_MEMSLOT_INVALID } from "../memslots/Protocol.js"
import type { Memslot } from "../memslots/State.js"
import { alone, cond_resched, type HostCpu, kvm_sched_in, kvm_sched_out } from "../vcpu/Sched.js"
import type { VcpuState } from "../vcpu/State.js"
import type { HostThread } from "../Vm.js"
import * as Inv from "./Invariants.js"
import {
  EFAULT,
  EINVAL,
  INVALID_GPA,
  is_error_noslot_pfn,
  KVM_HVA_ERR_BAD,
  KVM_PFN_ERR_FAULT,
  kvm_is_error_gpa,
  kvm_is_error_hva,
  NULL
} from "./Protocol.js"
import { GfnToPfnCache, type KvmMmuNotifier } from "./State.js"

const TRUE = 1
const FALSE = 0

/** `kvm_gpc_init`: a cache of `kvm`, inactive, not on the list. */
export const kvm_gpc_init = (kvm: KvmMmuNotifier, name: string): GfnToPfnCache => new GfnToPfnCache(kvm, name)

/** The refresher's CPU: a vCPU thread's (`host` shared with others) or a host thread's own. */
const vcpuOf = (t: HostThread, host: HostCpu): VcpuState | undefined => (host === alone ? undefined : (t as VcpuState))

/**
 * Sleeps until `loc` satisfies `ready`: `prepare_to_wait`, `schedule()` — on a shared CPU, a vCPU
 * thread's CPU passes on (its preempt notifier runs, as a voluntary put) — until the writer of
 * `loc` wakes it (the wait is on the location's changes).
 */
function* sleep_until(gpc: GfnToPfnCache, t: HostThread, host: HostCpu, loc: Memory.Loc, ready: (x: number) => boolean): Sim.Gen<void> {
  const vm = gpc.kvm.vm
  const v = vcpuOf(t, host)
  if (v !== undefined) {
    yield* kvm_sched_out(vm, v, false)
    yield* host.sleep(v)
  }
  yield* t.hw.smp_cond_load_acquire(loc, ready)
  if (v !== undefined) {
    yield* host.wake(v)
    yield* kvm_sched_in(vm, v)
  }
}

/**
 * `mutex_lock(&gpc->refresh_lock)`: a waiter sleeps until the owner unlocks, then tries again (a
 * vCPU on a shared CPU gives it up meanwhile: the owner may be a vCPU of the same CPU, sleeping
 * through an invalidation under range-sleep). `M.refreshWithoutMutex` skips it (and the unlock).
 */
function* refresh_lock(gpc: GfnToPfnCache, t: HostThread, host: HostCpu): Sim.Gen<void> {
  if (!gpc.kvm.vm.bug("M.refreshWithoutMutex")) {
    while (!(yield* Spinlock.spin_trylock(t.hw, gpc.refresh_lock))) yield* sleep_until(gpc, t, host, gpc.refresh_lock.locked, (x) => x === 0)
  }
  gpc.refreshers++
}
function* refresh_unlock(gpc: GfnToPfnCache, t: HostThread): Sim.Gen<void> {
  gpc.refreshers--
  if (!gpc.kvm.vm.bug("M.refreshWithoutMutex")) yield* Spinlock.spin_unlock(t.hw, gpc.refresh_lock)
}

/** `gfn_to_hva_memslot`: an invalid or missing slot gives KVM_HVA_ERR_BAD. */
const gfn_to_hva_memslot = (slot: Memslot | undefined, gfn: number): number =>
  slot === undefined || (slot.flags & KVM_MEMSLOT_INVALID) !== 0 ? KVM_HVA_ERR_BAD : slot.userspace_addr + (gfn - slot.base_gfn)

/**
 * `kvm_gpc_check`, read lock held: active, (GPA caches) the generation of address space 0's
 * memslots including the in-progress bit, a good uhva, and `valid`.
 */
export function* kvm_gpc_check(gpc: GfnToPfnCache, t: HostThread): Sim.Gen<boolean> {
  if (!(yield* t.hw.READ_ONCE(gpc.active))) return false
  const gpa = yield* t.hw.READ_ONCE(gpc.gpa)
  if (!kvm_is_error_gpa(gpa)) {
    const [, gen] = yield* memslotsGeneration(gpc.kvm.ms, t, 0)
    if ((yield* t.hw.READ_ONCE(gpc.generation)) !== gen) return false
  }
  if (kvm_is_error_hva(yield* t.hw.READ_ONCE(gpc.uhva))) return false
  return (yield* t.hw.READ_ONCE(gpc.valid)) === TRUE
}

/**
 * `mmu_notifier_retry_cache`: retry while an invalidation is between its start and its end
 * (`mn_active_invalidate_count`: raised before the notifier takes `gpc->lock`, dropped only after
 * `mmu_invalidate_seq` moved), else, after `smp_rmb` (pairs with the `smp_wmb` of
 * `kvm_mmu_invalidate_end`), if `mmu_invalidate_seq` moved. Both VM-wide. `E.seqOnly` tests `seq` alone.
 */
function* mmu_notifier_retry_cache(kvm: KvmMmuNotifier, t: HostThread, seq: SeqSnapshot): Sim.Gen<boolean> {
  if (!kvm.vm.bug("E.seqOnly") && (yield* t.hw.READ_ONCE(kvm.ms.mn_active_invalidate_count)) !== 0) return true
  yield* t.hw.smp_rmb()
  return yield* seq_moved(kvm, t, seq)
}

/** What a refresher snapshots before `hva_to_pfn`: `mmu_invalidate_seq`, and with gpcSeq=every `mn_invalidate_seq`. */
interface SeqSnapshot {
  mmu_seq: number
  mn_seq: number
}

/** Takes the snapshot, then `smp_rmb` (E3: the snapshot before the pfn lookup). */
function* seq_snapshot(kvm: KvmMmuNotifier, t: HostThread, seq: SeqSnapshot): Sim.Gen<void> {
  seq.mmu_seq = yield* t.hw.READ_ONCE(kvm.mmu_invalidate_seq)
  if (kvm.vm.switches.variant.gpcSeq === "every") seq.mn_seq = yield* t.hw.READ_ONCE(kvm.mn_invalidate_seq)
  yield* t.hw.smp_rmb()
}

/** Whether an invalidation ended since the snapshot: `mmu_invalidate_seq` moved (or, gpcSeq=every, `mn_invalidate_seq`). */
function* seq_moved(kvm: KvmMmuNotifier, t: HostThread, seq: SeqSnapshot): Sim.Gen<boolean> {
  if ((yield* t.hw.READ_ONCE(kvm.mmu_invalidate_seq)) !== seq.mmu_seq) return true
  return kvm.vm.switches.variant.gpcSeq === "every" && (yield* t.hw.READ_ONCE(kvm.mn_invalidate_seq)) !== seq.mn_seq
}

/** One pass of a busy-wait loop: `cond_resched()` (a vCPU thread on a shared CPU may be preempted), `cpu_relax()`. */
function* relax(gpc: GfnToPfnCache, t: HostThread, host: HostCpu): Sim.Gen<void> {
  const v = vcpuOf(t, host)
  if (v !== undefined) yield* cond_resched(gpc.kvm.vm, v, host)
  yield* Sim.point(gpc.kvm.vm.costs.cpuRelaxNs)
}

/**
 * `gpc_invalidate_in_progress_hva` (Sean's 3/5): an invalidation is in flight and the hva range of
 * those in flight covers the cache's uhva.
 */
function* gpc_invalidate_in_progress_hva(gpc: GfnToPfnCache, t: HostThread, uhva: number): Sim.Gen<boolean> {
  const kvm = gpc.kvm
  if ((yield* t.hw.READ_ONCE(kvm.ms.mn_active_invalidate_count)) === 0) return false
  return (yield* t.hw.READ_ONCE(kvm.mmu_gpc_invalidate_range_start)) <= uhva && (yield* t.hw.READ_ONCE(kvm.mmu_gpc_invalidate_range_end)) > uhva
}

/**
 * The sleep of `gpc_wait_for_invalidations` (Woodhouse's 3/5): `prepare_to_wait` on
 * `gpc_invalidate_wq`, `schedule()` — the CPU passes on — until the range end that drops the count
 * to 0 wakes it (the wait is on the count's location, which that end writes).
 */
function* sleep_until_no_invalidation(gpc: GfnToPfnCache, t: HostThread, host: HostCpu): Sim.Gen<void> {
  gpc.kvm.vm.count("gpc_sleeps")
  yield* sleep_until(gpc, t, host, gpc.kvm.ms.mn_active_invalidate_count, (n) => n === 0)
}

/** Halt-polling's window bounds (`halt_poll_ns` grows from 10 µs and is capped here at 200 µs, spec §6 N8). */
const POLL_MIN_NS = 10_000
const POLL_MAX_NS = 200_000

/**
 * The range-precise waits before `hva_to_pfn` (gpcWait other than mainline): busy (range-busy,
 * sean), asleep (range-sleep), or busy up to the poll window and then asleep (halt-poll, the window
 * fixed or adapted as halt-polling adapts its own). Busy time counts as CPU burned.
 */
function* gpc_wait_for_invalidations(gpc: GfnToPfnCache, t: HostThread, host: HostCpu, uhva: number): Sim.Gen<void> {
  const kvm = gpc.kvm
  const vm = kvm.vm
  const k = vm.kernel
  const wait = vm.switches.variant.gpcWait
  if (!(yield* gpc_invalidate_in_progress_hva(gpc, t, uhva))) return
  vm.count("gpc_waits")
  const t0 = k.now
  if (wait === "range-sleep") {
    while (yield* gpc_invalidate_in_progress_hva(gpc, t, uhva)) yield* sleep_until_no_invalidation(gpc, t, host)
    return
  }
  const poll = wait === "halt-poll" ? (vm.switches.variant.gpcPoll === "adaptive" ? gpc.pollNs : Number(vm.switches.variant.gpcPoll)) : Infinity
  while ((yield* gpc_invalidate_in_progress_hva(gpc, t, uhva)) && k.now - t0 < poll) yield* relax(gpc, t, host)
  const spun = k.now - t0
  kvm.waitCpuNs += spun
  if (!(yield* gpc_invalidate_in_progress_hva(gpc, t, uhva))) return
  while (yield* gpc_invalidate_in_progress_hva(gpc, t, uhva)) yield* sleep_until_no_invalidation(gpc, t, host)
  if (vm.switches.variant.gpcPoll !== "adaptive") return
  // grow_halt_poll_ns / shrink_halt_poll_ns: a wait a longer poll would have caught grows the
  // window; one longer than the cap shrinks it.
  const waited = k.now - t0
  if (waited <= POLL_MAX_NS) gpc.pollNs = Math.min(POLL_MAX_NS, gpc.pollNs * 2)
  else gpc.pollNs = Math.max(POLL_MIN_NS, gpc.pollNs / 2)
}

/**
 * `hva_to_pfn_retry`, with `refresh_lock` and the write lock held: `valid = false` before the
 * lock is dropped; then snapshot `mmu_invalidate_seq` (`smp_rmb`), unlock, drop a rejected
 * pass's page, GUP the uhva (a reference), map it, relock; repeat while
 * `mmu_notifier_retry_cache`; publish `valid`, `pfn`, `khva`; drop GUP's reference. Returns 0 or
 * -EFAULT, with the write lock held.
 *
 * With a range-precise `gpcWait` (Sean's series): the wait for invalidations covering the uhva
 * comes after the unlock, the snapshot right before `hva_to_pfn`, and the retry test is the range
 * or the seq; `sean` also sets `valid` before that test, with `smp_mb` (pairs with the
 * invalidation's `smp_mb__before_atomic` and lockless pre-check). GPC-3 counts the invalidations
 * of other pages behind the retries made while none of the uhva is in flight.
 */
function* hva_to_pfn_retry(gpc: GfnToPfnCache, t: HostThread, host: HostCpu): Sim.Gen<number> {
  const kvm = gpc.kvm
  const vm = kvm.vm
  const k = vm.kernel
  const mm = kvm.mm
  const wait = vm.switches.variant.gpcWait
  const range = wait !== "mainline"
  const old_khva = yield* t.hw.READ_ONCE(gpc.khva)
  const uhva = yield* t.hw.READ_ONCE(gpc.uhva)
  let new_pfn = KVM_PFN_ERR_FAULT
  let new_khva = NULL
  const late = vm.bug("E.validAfterUnlock")
  // Invalidate before the lock is dropped: the gpa and uhva are new already, so a check() from
  // another task would pass against the old pfn.
  if (!late) yield* t.hw.WRITE_ONCE(gpc.valid, FALSE)
  const seq: SeqSnapshot = { mmu_seq: 0, mn_seq: 0 }
  let needless = 0
  const causes = new Set<number>()
  let retry = false
  do {
    const pass = k.now
    if (wait === "sean") yield* t.hw.WRITE_ONCE(gpc.valid, FALSE) // each pass must see valid == false
    if (!range) yield* seq_snapshot(kvm, t, seq)
    yield* Rwlock.write_unlock(t.hw, gpc.lock)
    if (new_pfn !== KVM_PFN_ERR_FAULT) {
      // The previous pass was rejected: kvm_release_page_unused, cond_resched.
      yield* put_page(mm, t, new_pfn)
      vm.count("gpc_retries")
    }
    if (uhva >= mm.hvaPages) {
      yield* Rwlock.write_lock(t.hw, gpc.lock)
      return EFAULT
    }
    if (range) {
      yield* gpc_wait_for_invalidations(gpc, t, host, uhva)
      yield* seq_snapshot(kvm, t, seq) // right before hva_to_pfn (Sean's 1/5)
    }
    new_pfn = yield* hva_to_pfn(mm, t, uhva, vm.costs.hvaToPfnNs, vm.costs.pageFaultNs)
    new_khva = new_pfn === (yield* t.hw.READ_ONCE(gpc.pfn)) ? old_khva : new_pfn // gpc_map
    yield* Rwlock.write_lock(t.hw, gpc.lock)
    if (late) yield* t.hw.WRITE_ONCE(gpc.valid, FALSE)
    // WARN_ON_ONCE(gpc->valid): another refresher published (GPC-5).
    const bad = Inv.gpc5(k, gpc, (yield* t.hw.READ_ONCE(gpc.valid)) === TRUE)
    if (bad !== undefined) yield* Sim.fail("GPC-5", bad)
    if (wait === "sean") {
      yield* t.hw.WRITE_ONCE(gpc.valid, TRUE)
      yield* t.hw.smp_mb() // pairs with the smp_mb__before_atomic() of the invalidation
    }
    retry = range ? yield* gpc_invalidate_retry_hva(gpc, t, uhva, seq) : yield* mmu_notifier_retry_cache(kvm, t, seq)
    if (retry) {
      kvm.waitCpuNs += k.now - pass
      // GPC-3: a retry with no invalidation of this page in flight is caused by the rest of the VM.
      if (!mm.invalidating(uhva)) {
        needless++
        for (const id of mm.inFlight.keys()) causes.add(id)
        const starved = Inv.gpc3(k, gpc, uhva, causes.size, needless)
        if (starved !== undefined) yield* Sim.fail("GPC-3", starved)
      }
    }
  } while (retry)
  if (needless > kvm.maxNeedless) kvm.maxNeedless = needless
  yield* t.hw.WRITE_ONCE(gpc.valid, TRUE)
  yield* t.hw.WRITE_ONCE(gpc.pfn, new_pfn)
  yield* t.hw.WRITE_ONCE(gpc.khva, new_khva)
  vm.count("gpc_refreshes")
  // kvm_release_page_clean: from here the cache holds no reference; the notifier protects it.
  yield* put_page(mm, t, new_pfn)
  return 0
}

/** `gpc_invalidate_retry_hva` (Sean's 3/5): an invalidation covering the uhva in flight, or (`smp_rmb`) the seq moved. */
function* gpc_invalidate_retry_hva(gpc: GfnToPfnCache, t: HostThread, uhva: number, seq: SeqSnapshot): Sim.Gen<boolean> {
  if (yield* gpc_invalidate_in_progress_hva(gpc, t, uhva)) return true
  yield* t.hw.smp_rmb()
  return yield* seq_moved(gpc.kvm, t, seq)
}

/**
 * `__kvm_gpc_refresh(gpc, gpa, uhva)`, `refresh_lock` held: under the write lock, recompute the
 * uhva from the memslots if the gpa or address space 0's generation changed (an error uhva is
 * -EFAULT), then `hva_to_pfn_retry` if not valid or the uhva changed; on error clear
 * `valid`/`pfn`/`khva`; unlock; unmap the old pfn if it changed.
 */
function* __kvm_gpc_refresh(gpc: GfnToPfnCache, gpa: number, uhva: number, t: HostThread, host: HostCpu): Sim.Gen<number> {
  const kvm = gpc.kvm
  yield* Rwlock.write_lock(t.hw, gpc.lock)
  let ret = 0
  if (!(yield* t.hw.READ_ONCE(gpc.active))) {
    yield* Rwlock.write_unlock(t.hw, gpc.lock)
    return EINVAL
  }
  const old_pfn = yield* t.hw.READ_ONCE(gpc.pfn)
  const old_uhva = yield* t.hw.READ_ONCE(gpc.uhva)
  let hva_change = false
  let fail = false
  if (kvm_is_error_gpa(gpa)) {
    yield* t.hw.WRITE_ONCE(gpc.gpa, INVALID_GPA)
    gpc.memslot = undefined
    yield* t.hw.WRITE_ONCE(gpc.uhva, uhva)
    hva_change = uhva !== old_uhva
  } else {
    const [slots, gen] = yield* memslotsGeneration(kvm.ms, t, 0)
    if ((yield* t.hw.READ_ONCE(gpc.gpa)) !== gpa || (yield* t.hw.READ_ONCE(gpc.generation)) !== gen || kvm_is_error_hva(old_uhva)) {
      yield* t.hw.WRITE_ONCE(gpc.gpa, gpa)
      yield* t.hw.WRITE_ONCE(gpc.generation, gen)
      gpc.memslot = search_memslots(slots, gpa)
      const new_uhva = gfn_to_hva_memslot(gpc.memslot, gpa)
      yield* t.hw.WRITE_ONCE(gpc.uhva, new_uhva)
      if (kvm_is_error_hva(new_uhva)) {
        ret = EFAULT
        fail = true
      }
      hva_change = new_uhva !== old_uhva
    }
  }
  if (!fail) {
    if ((yield* t.hw.READ_ONCE(gpc.valid)) !== TRUE || hva_change) ret = yield* hva_to_pfn_retry(gpc, t, host)
    else {
      // The mapping is reused as it is.
      yield* Rwlock.write_unlock(t.hw, gpc.lock)
      return 0
    }
  }
  if (ret !== 0) {
    yield* t.hw.WRITE_ONCE(gpc.valid, FALSE)
    yield* t.hw.WRITE_ONCE(gpc.pfn, KVM_PFN_ERR_FAULT)
    yield* t.hw.WRITE_ONCE(gpc.khva, NULL)
  }
  // Detect a pfn change before dropping the lock; gpc_unmap of the old one after (kunmap: nothing here).
  const unmap_old = old_pfn !== (yield* t.hw.READ_ONCE(gpc.pfn))
  yield* Rwlock.write_unlock(t.hw, gpc.lock)
  if (unmap_old) kvm.vm.count("gpc_unmaps")
  return ret
}

/**
 * `kvm_gpc_refresh(gpc, len)`: under `refresh_lock`, refresh at the cache's own gpa (or uhva,
 * HVA-based). `host` is the refresher's CPU (a vCPU thread's may be shared). Its latency is recorded.
 */
export function* kvm_gpc_refresh(gpc: GfnToPfnCache, t: HostThread, host: HostCpu = alone): Sim.Gen<number> {
  const k = gpc.kvm.vm.kernel
  const t0 = k.now
  yield* refresh_lock(gpc, t, host)
  const gpa = yield* t.hw.READ_ONCE(gpc.gpa)
  const uhva = kvm_is_error_gpa(gpa) ? yield* t.hw.READ_ONCE(gpc.uhva) : KVM_HVA_ERR_BAD
  const r = yield* __kvm_gpc_refresh(gpc, gpa, uhva, t, host)
  yield* refresh_unlock(gpc, t)
  gpc.kvm.refreshNs.push(k.now - t0)
  return r
}

/**
 * `__kvm_gpc_activate`, under `refresh_lock`: if inactive, add the cache to `gpc_list` (under
 * `gpc_lock`), then set `active` under the write lock — in that order, so that no refresh maps a
 * page before the notifier can see the cache — then refresh. `kvm_gpc_activate(gpc, gpa)` passes
 * an error uhva, `kvm_gpc_activate_hva(gpc, uhva)` INVALID_GPA.
 */
export function* kvm_gpc_activate(gpc: GfnToPfnCache, gpa: number, uhva: number, t: HostThread, host: HostCpu = alone): Sim.Gen<number> {
  const kvm = gpc.kvm
  yield* refresh_lock(gpc, t, host)
  if (!(yield* t.hw.READ_ONCE(gpc.active))) {
    yield* Spinlock.spin_lock(t.hw, kvm.gpc_lock)
    kvm.gpc_list.push(gpc)
    yield* Spinlock.spin_unlock(t.hw, kvm.gpc_lock)
    yield* Rwlock.write_lock(t.hw, gpc.lock)
    yield* t.hw.WRITE_ONCE(gpc.active, TRUE)
    yield* Rwlock.write_unlock(t.hw, gpc.lock)
  }
  const r = yield* __kvm_gpc_refresh(gpc, gpa, uhva, t, host)
  yield* refresh_unlock(gpc, t)
  return r
}

/**
 * `kvm_gpc_deactivate`, under `refresh_lock`: under the write lock clear `active` and `valid` and
 * forget the pfn and mapping (gpa, uhva and generation stay), then leave `gpc_list`, then unmap.
 */
export function* kvm_gpc_deactivate(gpc: GfnToPfnCache, t: HostThread, host: HostCpu = alone): Sim.Gen<void> {
  const kvm = gpc.kvm
  yield* refresh_lock(gpc, t, host)
  if (yield* t.hw.READ_ONCE(gpc.active)) {
    yield* Rwlock.write_lock(t.hw, gpc.lock)
    yield* t.hw.WRITE_ONCE(gpc.active, FALSE)
    yield* t.hw.WRITE_ONCE(gpc.valid, FALSE)
    yield* t.hw.WRITE_ONCE(gpc.khva, NULL)
    yield* t.hw.WRITE_ONCE(gpc.pfn, KVM_PFN_ERR_FAULT)
    yield* Rwlock.write_unlock(t.hw, gpc.lock)
    yield* Spinlock.spin_lock(t.hw, kvm.gpc_lock)
    kvm.gpc_list.splice(kvm.gpc_list.indexOf(gpc), 1)
    yield* Spinlock.spin_unlock(t.hw, kvm.gpc_lock)
  }
  yield* refresh_unlock(gpc, t)
}

/** The test both halves of `gfn_to_pfn_cache_invalidate_start` make: valid, a real pfn, uhva in `[start, end)`. */
function* covered(gpc: GfnToPfnCache, t: HostThread, start: number, end: number): Sim.Gen<boolean> {
  if ((yield* t.hw.READ_ONCE(gpc.valid)) !== TRUE) return false
  if (is_error_noslot_pfn(yield* t.hw.READ_ONCE(gpc.pfn))) return false
  const uhva = yield* t.hw.READ_ONCE(gpc.uhva)
  return uhva >= start && uhva < end
}

/**
 * `gfn_to_pfn_cache_invalidate_start`, from the notifier's range start (before `mmu_lock`): under
 * `gpc_lock`, each cache is tested under its read lock and, if it covers the range, tested again
 * under its write lock (which drains the readers that passed `kvm_gpc_check`) and made invalid.
 * Only `valid` changes; `pfn` and `khva` stay.
 */
export function* gfn_to_pfn_cache_invalidate_start(kvm: KvmMmuNotifier, t: HostThread, start: number, end: number): Sim.Gen<void> {
  const sean = kvm.vm.switches.variant.gpcWait === "sean"
  // sean: either each cache sees the range and retries, or this task sees its valid flag;
  // smp_mb__before_atomic(), made a full barrier by the LOCK-prefixed spin_lock that follows on x86.
  if (sean) yield* t.hw.smp_mb__before_atomic()
  yield* Spinlock.spin_lock(t.hw, kvm.gpc_lock)
  for (const gpc of kvm.gpc_list) {
    if (sean) {
      // The lockless pre-check (Sean's 4/5).
      if ((yield* t.hw.READ_ONCE(gpc.valid)) !== TRUE) continue
      const u = yield* t.hw.READ_ONCE(gpc.uhva)
      if (u < start || u >= end) continue
    }
    yield* Rwlock.read_lock(t.hw, gpc.lock)
    const hit = yield* covered(gpc, t, start, end)
    yield* Rwlock.read_unlock(t.hw, gpc.lock)
    if (!hit) continue
    // A small window: the cache may have changed before the write lock; test again.
    yield* Rwlock.write_lock(t.hw, gpc.lock)
    if (kvm.vm.bug("E.noRecheckUnderWrite") || (yield* covered(gpc, t, start, end))) {
      yield* t.hw.WRITE_ONCE(gpc.valid, FALSE)
      kvm.vm.count("gpc_invalidations")
    }
    yield* Rwlock.write_unlock(t.hw, gpc.lock)
  }
  yield* Spinlock.spin_unlock(t.hw, kvm.gpc_lock)
}
