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
import { Slot } from "../vcpu/State.js"
import type { VcpuState } from "../vcpu/State.js"
import type { HostThread } from "../Vm.js"
import * as Inv from "./Invariants.js"
import { kvm_gpc_activate, kvm_gpc_check, kvm_gpc_refresh } from "./PfnCache.js"
import { KVM_HVA_ERR_BAD } from "./Protocol.js"
import type { GfnToPfnCache } from "./State.js"

/** `vcpu->arch.pv_time`: the vCPU's kvmclock cache. */
export const pvTime = new Slot<GfnToPfnCache>("kvmclock pv_time cache")

/** Writes one word through `khva` (read lock held, check passed): GPC-1 at the store. */
function* write_through(gpc: GfnToPfnCache, t: HostThread, value: number): Sim.Gen<void> {
  const mm = gpc.kvm.mm
  const khva = yield* t.hw.READ_ONCE(gpc.khva)
  const bad = Inv.gpc1(gpc.kvm.vm.kernel, t.name, gpc, khva, gpc.kvm.vm.memory.peek(gpc.uhva), mm)
  if (bad !== undefined) yield* Sim.fail("GPC-1", bad)
  yield* t.hw.WRITE_ONCE(mm.data[khva]!, value)
  gpc.kvm.vm.count("gpc_writes")
}

/**
 * `kvm_setup_guest_pvclock(v, gpc, offset)`: read-lock; while the check fails, unlock, refresh
 * (any error: return, the pvti stays stale), lock again; write the pvti (odd version, fields,
 * even version: one store here), mark the page dirty; unlock. Returns whether it wrote.
 */
export function* kvm_setup_guest_pvclock(v: VcpuState, gpc: GfnToPfnCache, host: HostCpu = alone): Sim.Gen<boolean> {
  yield* Rwlock.read_lock(v.hw, gpc.lock)
  while (!(yield* kvm_gpc_check(gpc, v))) {
    yield* Rwlock.read_unlock(v.hw, gpc.lock)
    if ((yield* kvm_gpc_refresh(gpc, v, host)) !== 0) {
      gpc.kvm.vm.count("pvclock_skipped")
      return false
    }
    yield* Rwlock.read_lock(v.hw, gpc.lock)
  }
  yield* write_through(gpc, v, v.vcpu_id + 1)
  yield* Rwlock.read_unlock(v.hw, gpc.lock)
  return true
}

/** `kvm_write_system_time` (MSR_KVM_SYSTEM_TIME_NEW with the enable bit): activate `pv_time` at `gpa`. */
export function* kvm_write_system_time(v: VcpuState, gpa: number, host: HostCpu = alone): Sim.Gen<number> {
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
      yield* write_through(gpc, t, port)
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
