/**
 * The users of a gfn_to_pfn_cache (spec §5.4, §10.4): `kvm_setup_guest_pvclock` (`x86.c`: the
 * kvmclock pvti written through `vcpu->arch.pv_time` at KVM_REQ_CLOCK_UPDATE; it refreshes while
 * the check fails and silently skips when the refresh fails), `kvm_write_system_time` (the
 * guest's MSR write that activates that cache), and `kvm_xen_set_evtchn` (`xen.c`: the fast path
 * under the read lock, refreshed by the slow path on -EWOULDBLOCK; the shared-info cache may be
 * HVA-based, outside every memslot). Each write through `khva` is where GPC-1 is checked.
 */
import { Rwlock } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import { alone, type HostCpu } from "../vcpu/Sched.js"
import { clockOf } from "../kvmclock/State.js"
import { KVM_REQ_GLOBAL_CLOCK_UPDATE } from "../requests/Protocol.js"
import { kvm_make_request } from "../requests/Requests.js"
import { Slot } from "../vcpu/State.js"
import type { VcpuState } from "../vcpu/State.js"
import type { HostThread } from "../Vm.js"
import * as Inv from "./Invariants.js"
import { kvm_gpc_activate, kvm_gpc_check, kvm_gpc_refresh } from "./PfnCache.js"
import { KVM_HVA_ERR_BAD } from "./Protocol.js"
import type { GfnToPfnCache } from "./State.js"

/** `vcpu->arch.pv_time`: the vCPU's kvmclock cache. */
export const pvTime = new Slot<GfnToPfnCache>("kvmclock pv_time cache")

/** Writes word `word` of the page through `khva` (read lock held, check passed): GPC-1 at the store. */
function* write_through(gpc: GfnToPfnCache, t: HostThread, khva: number, word: number, value: number): Sim.Gen<void> {
  const mm = gpc.kvm.mm
  const bad = Inv.gpc1(gpc.kvm.vm.kernel, t.name, gpc, khva, gpc.kvm.vm.memory.peek(gpc.uhva), mm)
  if (bad !== undefined) yield* Sim.fail("GPC-1", bad)
  yield* t.hw.WRITE_ONCE(mm.word(khva, word), value)
}

/** `struct pvclock_vcpu_time_info` as the host keeps it (`vcpu->arch.hv_clock`): the values the next publish writes. */
export interface PvclockVcpuTimeInfo {
  version: number
  tsc_timestamp: number
  system_time: number
  tsc_to_system_mul: number
  tsc_shift: number
  flags: number
}

/** `vcpu->arch.hv_clock`: zeros until `kvm_guest_time_update` fills it (mechanism D). */
export const hvClock = new Slot<PvclockVcpuTimeInfo>("kvmclock hv_clock")
/** `v`'s `hv_clock`, zeros the first time. */
export const hvClockOf = (v: VcpuState): PvclockVcpuTimeInfo => {
  if (!hvClock.has(v)) hvClock.set(v, { version: 0, tsc_timestamp: 0, system_time: 0, tsc_to_system_mul: 0, tsc_shift: 0, flags: 0 })
  return hvClock.of(v)
}

/**
 * `vcpu->arch.pvclock_set_guest_stopped_request`: KVM_KVMCLOCK_CTRL asked for GUEST_STOPPED in the
 * vCPU's next pvti (`kvm_set_guest_paused`); the publish consumes it.
 */
export const guestStoppedRequest = new WeakSet<VcpuState>()

/** The pvti's words (`kvmclock/Protocol.ts`'s PVTI: the version, then the body from word 1), here to keep this file free of mechanism D's imports. */
const VERSION = 0
const BODY = ["tsc_timestamp", "system_time", "tsc_to_system_mul", "tsc_shift", "flags"] as const
const FLAGS = 5
const GUEST_STOPPED = 2

/**
 * `kvm_setup_guest_pvclock(v, gpc, offset)` (x86.c, v6.13): read-lock; while the check fails,
 * unlock, refresh (any error: return, the pvti stays stale, nothing retries), lock again. Then the
 * publish, odd version first (spec §4.5 step 7):
 * 1. `guest->version = hv_clock.version = (guest->version + 1) | 1`, then `smp_wmb()`;
 * 2. keep a GUEST_STOPPED the guest has not cleared yet (`hv_clock.flags |= guest->flags & STOPPED`),
 *    and set it if KVM_KVMCLOCK_CTRL asked (`pvclock_set_guest_stopped_request`, consumed here);
 * 3. `memcpy(guest, &hv_clock)`: the version again, then the body, then `smp_wmb()`;
 * 4. `guest->version = ++hv_clock.version` (even).
 * The `smp_wmb()`s pair with the guest reader's `virt_rmb()`s in `pvclock_read_begin`/`_retry`.
 * `singleCopy` is the pre-2015 host (`D.versionPlus2SingleCopy`): `hv_clock.version += 2` and one
 * copy of the whole struct, the version first, never odd. `published(khva)` runs at the last
 * store (the ghost of CLK-1). `t` is the writing thread: the vCPU's own, or (clockUpdate=all-at-once)
 * the VM-wide updater's. Returns whether it wrote.
 */
export function* kvm_setup_guest_pvclock(
  v: VcpuState,
  gpc: GfnToPfnCache,
  host: HostCpu = alone,
  singleCopy = false,
  published?: (khva: number, hv: PvclockVcpuTimeInfo) => void,
  t: HostThread = v
): Sim.Gen<boolean> {
  const hv = hvClockOf(v)
  yield* Rwlock.read_lock(t.hw, gpc.lock)
  while (!(yield* kvm_gpc_check(gpc, t))) {
    yield* Rwlock.read_unlock(t.hw, gpc.lock)
    if ((yield* kvm_gpc_refresh(gpc, t, host)) !== 0) {
      gpc.kvm.vm.count("pvclock_skipped")
      return false
    }
    yield* Rwlock.read_lock(t.hw, gpc.lock)
  }
  const mm = gpc.kvm.mm
  const khva = yield* t.hw.READ_ONCE(gpc.khva)
  if (singleCopy) {
    hv.flags |= (yield* t.hw.READ_ONCE(mm.word(khva, FLAGS))) & GUEST_STOPPED // kvm_read_guest_cached first
    if (guestStoppedRequest.delete(v)) hv.flags |= GUEST_STOPPED
    hv.version += 2
    yield* write_through(gpc, t, khva, VERSION, hv.version)
    for (let i = 0; i < BODY.length; i++) yield* write_through(gpc, t, khva, 1 + i, hv[BODY[i]!])
  } else {
    hv.version = ((yield* t.hw.READ_ONCE(mm.word(khva, VERSION))) + 1) | 1
    yield* write_through(gpc, t, khva, VERSION, hv.version)
    yield* t.hw.smp_wmb() // pairs with pvclock_read_begin's virt_rmb: odd before the body
    hv.flags |= (yield* t.hw.READ_ONCE(mm.word(khva, FLAGS))) & GUEST_STOPPED
    if (guestStoppedRequest.delete(v)) hv.flags |= GUEST_STOPPED
    yield* write_through(gpc, t, khva, VERSION, hv.version) // memcpy copies the version too
    for (let i = 0; i < BODY.length; i++) yield* write_through(gpc, t, khva, 1 + i, hv[BODY[i]!])
    yield* t.hw.smp_wmb() // pairs with pvclock_read_retry's virt_rmb: the body before the even version
    hv.version++
    yield* write_through(gpc, t, khva, VERSION, hv.version)
  }
  published?.(khva, hv)
  gpc.kvm.vm.count("gpc_writes")
  yield* Rwlock.read_unlock(t.hw, gpc.lock)
  return true
}

/** `kvm_write_system_time` (MSR_KVM_SYSTEM_TIME_NEW with the enable bit): activate `pv_time` at `gpa`. */
export function* kvm_write_system_time(v: VcpuState, gpa: number, host: HostCpu = alone): Sim.Gen<number> {
  const vm = pvTime.of(v).kvm.vm
  // KVM_REQ_GLOBAL_CLOCK_UPDATE at every write, when mechanism D models the clock (without it the
  // request would have no handler: the caller asks for the first pvti itself).
  if (clockOf(vm) !== undefined) yield* kvm_make_request(vm, KVM_REQ_GLOBAL_CLOCK_UPDATE, v, v)
  return yield* kvm_gpc_activate(pvTime.of(v), gpa, KVM_HVA_ERR_BAD, v, host)
}

/**
 * `kvm_xen_set_evtchn` over `kvm_xen_set_evtchn_fast`: under the read lock, if the shared-info
 * cache checks, set the event's pending bit through it; else -EWOULDBLOCK, and the slow path
 * refreshes (an error ends it) and tries again. Returns whether it delivered.
 */
export function* kvm_xen_set_evtchn(gpc: GfnToPfnCache, t: HostThread, port: number, host: HostCpu = alone): Sim.Gen<boolean> {
  for (;;) {
    yield* Rwlock.read_lock(t.hw, gpc.lock)
    if (yield* kvm_gpc_check(gpc, t)) {
      yield* write_through(gpc, t, yield* t.hw.READ_ONCE(gpc.khva), 0, port)
      gpc.kvm.vm.count("gpc_writes")
      yield* Rwlock.read_unlock(t.hw, gpc.lock)
      return true
    }
    yield* Rwlock.read_unlock(t.hw, gpc.lock)
    if ((yield* kvm_gpc_refresh(gpc, t, host)) !== 0) {
      gpc.kvm.vm.count("evtchn_dropped")
      return false
    }
  }
}

/** `vcpu->arch.xen.runstate_cache`: the vCPU's Xen runstate area. */
export const xenRunstate = new Slot<GfnToPfnCache>("Xen runstate cache")

/** `RUNSTATE_running`, `RUNSTATE_runnable` (`xen/interface/vcpu.h`). */
export const RUNSTATE_running = 0
export const RUNSTATE_runnable = 1

/**
 * `kvm_xen_update_runstate_guest(v, atomic)` (xen.c, v6.13; one page, no split): the user that
 * cannot sleep. `atomic` — from the preempt notifier (`kvm_arch_vcpu_put` of a preempted vCPU,
 * `kvm_xen_runstate_set_preempted`): `read_trylock`, and if the lock is taken or the check fails,
 * give up ("When invoked from kvm_sched_out() we cannot sleep"); otherwise (`RUNSTATE_running`,
 * from `record_steal_time` at KVM_REQ_STEAL_UPDATE) the usual lock, check, refresh loop. Returns
 * whether it wrote.
 */
export function* kvm_xen_update_runstate_guest(v: VcpuState, state: number, host: HostCpu = alone): Sim.Gen<boolean> {
  const gpc = xenRunstate.of(v)
  const vm = gpc.kvm.vm
  const atomic = state === RUNSTATE_runnable
  if (atomic) {
    if (!(yield* Rwlock.read_trylock(v.hw, gpc.lock))) {
      vm.count("runstate_trylock_skipped")
      return false
    }
  } else yield* Rwlock.read_lock(v.hw, gpc.lock)
  while (!(yield* kvm_gpc_check(gpc, v))) {
    yield* Rwlock.read_unlock(v.hw, gpc.lock)
    if (atomic) {
      vm.count("runstate_check_skipped")
      return false
    }
    if ((yield* kvm_gpc_refresh(gpc, v, host)) !== 0) return false
    yield* Rwlock.read_lock(v.hw, gpc.lock)
  }
  yield* write_through(gpc, v, yield* v.hw.READ_ONCE(gpc.khva), 0, state + 1)
  vm.count("gpc_writes")
  yield* Rwlock.read_unlock(v.hw, gpc.lock)
  return true
}
