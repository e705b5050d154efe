/**
 * Mechanism D, the host (spec §4.3-§4.5, §10.3; `arch/x86/kvm/x86.c` of v6.13.2): the master
 * clock's decision (`pvclock_update_vm_gtod_copy`), the VM-wide update
 * (`kvm_start_pvclock_update` / `kvm_end_pvclock_update` around it), its callers
 * (`kvm_update_masterclock` on a vCPU thread that consumed KVM_REQ_MASTERCLOCK_UPDATE,
 * `kvm_vm_ioctl_set_clock` inline on the VMM's thread), TSC writes and matching
 * (`kvm_synchronize_tsc`, `kvm_track_tsc_matching`), and the per-vCPU update at entry
 * (`kvm_guest_time_update`), which publishes through the vCPU's `pv_time` gfn_to_pfn_cache.
 */
import { Seqcount, Spinlock } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import { guestStoppedRequest, hvClockOf, kvm_setup_guest_pvclock, pvTime, type PvclockVcpuTimeInfo } from "../pfncache/X86.js"
import { KVM_REQ_CLOCK_UPDATE, KVM_REQ_MASTERCLOCK_UPDATE, KVM_REQ_MCLOCK_INPROGRESS } from "../requests/Protocol.js"
import { kvm_clear_request, kvm_make_all_cpus_request, kvm_make_request } from "../requests/Requests.js"
import { alone, type HostCpu } from "../vcpu/Sched.js"
import type { VcpuState } from "../vcpu/State.js"
import type { HostThread, Vm } from "../Vm.js"
import { PVCLOCK_TSC_STABLE_BIT } from "./Protocol.js"
import { clockOf, type KvmClock, vcpuClock } from "./State.js"
import { tscScale } from "./Time.js"

/**
 * `kvm_get_time_and_clockread(&kernel_ns, &tsc_timestamp)`: the base clock and the TSC of the
 * calling CPU at one instant (`do_kvmclock_base` reads both in one seqcount section); false, with
 * the pair written anyway, when the host's clocksource is not the TSC.
 */
const kvm_get_time_and_clockread = (c: KvmClock, t: HostThread): readonly [boolean, number, number] => {
  const now = c.vm.kernel.now
  return [c.time.clocksourceTsc, c.time.kvmclockBaseNs(now), c.time.rdtsc(t.cpu, now)]
}

/**
 * `pvclock_update_vm_gtod_copy`, `tsc_write_lock` held (and, but at VM creation, inside the
 * `pvclock_sc` write section): a new master pair, and `use_master_clock` = the clocksource is the
 * TSC, every vCPU's TSC matched, no backwards TSC seen, vCPU0 not on the old kvmclock MSR.
 */
export function* pvclock_update_vm_gtod_copy(c: KvmClock, t: HostThread): Sim.Gen<void> {
  if (c.tsc_write_lock.holder !== t.hw.id) throw new Error(`${t.name}: pvclock_update_vm_gtod_copy without tsc_write_lock`)
  const vcpus_matched = c.nr_vcpus_matched_tsc + 1 === c.vm.vcpus.length
  const [host_tsc_clocksource, ns, tsc] = kvm_get_time_and_clockread(c, t)
  yield* t.hw.WRITE_ONCE(c.master_kernel_ns, ns)
  yield* t.hw.WRITE_ONCE(c.master_cycle_now, tsc)
  const use = host_tsc_clocksource && vcpus_matched && !c.backwards_tsc_observed && !c.boot_vcpu_runs_old_kvmclock
  yield* t.hw.WRITE_ONCE(c.use_master_clock, use ? 1 : 0)
  c.next = { ...c.next, ns, tsc, master: use }
  c.vm.kernel.event("kvmclock.pair", [use ? 1 : 0, ns, tsc])
}

/**
 * `kvm_start_pvclock_update`: KVM_REQ_MCLOCK_INPROGRESS on every vCPU (WAIT: the vCPUs in guest
 * mode leave it before this returns; from then on every entry is cancelled while the bit is set),
 * then `tsc_write_lock` and the `pvclock_sc` write section. The request comes before the lock, so
 * two updaters' requests and clears interleave (spec §10.3). With updaters=serialised the lock
 * comes first (v4.5's `kvm_gen_update_masterclock` took `pvclock_gtod_sync_lock` around the
 * request, the update and the clear); the pair is still read under the seqcount (the v4.5 reader
 * took the spinlock instead, which waits out the same write section).
 */
export function* kvm_start_pvclock_update(c: KvmClock, t: HostThread): Sim.Gen<void> {
  const vm = c.vm
  const serialised = vm.switches.variant.updaters === "serialised"
  if (serialised) yield* Spinlock.spin_lock(t.hw, c.tsc_write_lock)
  c.updating++
  if (!vm.bug("D.noMclockInprogress")) yield* kvm_make_all_cpus_request(vm, KVM_REQ_MCLOCK_INPROGRESS, t)
  if (!serialised) yield* Spinlock.spin_lock(t.hw, c.tsc_write_lock)
  yield* Seqcount.write_seqcount_begin(t.hw, c.pvclock_sc) // pairs with kvm_guest_time_update's read_seqcount_begin
  c.pairGen++
  c.pendingSince.set(c.pairGen, vm.kernel.now)
}

/**
 * `kvm_end_pvclock_update`: end the write section, unlock, KVM_REQ_CLOCK_UPDATE on every vCPU (no
 * kick, no wake), then clear KVM_REQ_MCLOCK_INPROGRESS on every vCPU — in that order, so that no
 * vCPU enters between the two without a clock update pending (`D.clearInprogressBeforeClockUpdate`
 * swaps them). Both are LOCK'd bit operations of one CPU: x86 keeps their order without a barrier.
 */
export function* kvm_end_pvclock_update(c: KvmClock, t: HostThread): Sim.Gen<void> {
  const vm = c.vm
  const serialised = vm.switches.variant.updaters === "serialised"
  yield* Seqcount.write_seqcount_end(t.hw, c.pvclock_sc) // pairs with kvm_guest_time_update's read_seqcount_retry
  if (!serialised) yield* Spinlock.spin_unlock(t.hw, c.tsc_write_lock)
  c.ref = { ...c.next }
  const swap = vm.bug("D.clearInprogressBeforeClockUpdate")
  if (swap) yield* clearInprogress(vm, t)
  if (vm.switches.variant.clockUpdate === "all-at-once") yield* update_all_pvti(c, t)
  else for (const v of vm.vcpus) yield* kvm_make_request(vm, KVM_REQ_CLOCK_UPDATE, v, t)
  if (!swap) yield* clearInprogress(vm, t)
  c.updating--
  if (serialised) yield* Spinlock.spin_unlock(t.hw, c.tsc_write_lock)
}

/** `kvm_clear_request(KVM_REQ_MCLOCK_INPROGRESS, vcpu)` for every vCPU: a plain `clear_bit` (guest entries allowed). */
function* clearInprogress(vm: Vm, t: HostThread): Sim.Gen<void> {
  if (vm.bug("D.noMclockInprogress")) return
  for (const v of vm.vcpus) yield* kvm_clear_request(vm, KVM_REQ_MCLOCK_INPROGRESS, v, t)
}

/** `kvm_update_masterclock`, on the vCPU thread that consumed KVM_REQ_MASTERCLOCK_UPDATE (several may run at once). */
export function* kvm_update_masterclock(c: KvmClock, t: HostThread): Sim.Gen<void> {
  c.vm.count("masterclock_updates")
  yield* kvm_start_pvclock_update(c, t)
  yield* pvclock_update_vm_gtod_copy(c, t)
  yield* kvm_end_pvclock_update(c, t)
}

/**
 * `kvm_vm_ioctl_set_clock` (KVM_SET_CLOCK, no REALTIME flag), inline on the VMM's thread: a new
 * master pair, and `kvmclock_offset` so that kvmclock reads `ns` now — all inside the write
 * section. It makes no KVM_REQ_MASTERCLOCK_UPDATE.
 */
export function* kvm_vm_ioctl_set_clock(c: KvmClock, t: HostThread, ns: number): Sim.Gen<void> {
  c.vm.count("set_clocks")
  yield* kvm_start_pvclock_update(c, t)
  yield* pvclock_update_vm_gtod_copy(c, t)
  const now_raw_ns = (yield* t.hw.READ_ONCE(c.use_master_clock)) === 1 ? yield* t.hw.READ_ONCE(c.master_kernel_ns) : c.time.kvmclockBaseNs(c.vm.kernel.now)
  yield* t.hw.WRITE_ONCE(c.kvmclock_offset, ns - now_raw_ns)
  c.next = { ...c.next, offset: ns - now_raw_ns }
  yield* kvm_end_pvclock_update(c, t)
}

/**
 * `kvm_track_tsc_matching` (`tsc_write_lock` held): KVM_REQ_MASTERCLOCK_UPDATE on this vCPU (no
 * kick) when the master clock should toggle, or when a new TSC generation starts while it is on.
 */
function* kvm_track_tsc_matching(c: KvmClock, v: VcpuState, new_generation: boolean, t: HostThread): Sim.Gen<void> {
  const use = c.nr_vcpus_matched_tsc + 1 === c.vm.vcpus.length && c.time.clocksourceTsc
  const now = (yield* t.hw.READ_ONCE(c.use_master_clock)) === 1
  if ((now && new_generation) || now !== use) yield* kvm_make_request(c.vm, KVM_REQ_MASTERCLOCK_UPDATE, v, t)
}

/**
 * `kvm_synchronize_tsc(vcpu, &data)` (a host-initiated MSR_IA32_TSC write, a vCPU ioctl run on the
 * vCPU's own thread `t`; or `value` 0 at vCPU creation, before it runs), under `tsc_write_lock`: the L1 offset that makes the guest TSC read `value` now; a
 * write within a second of the last one's extrapolation (or 0) joins the current generation with
 * its offset (matched), any other starts a new generation; then `kvm_track_tsc_matching`.
 */
export function* kvm_synchronize_tsc(c: KvmClock, v: VcpuState, value: number, user: boolean, t: HostThread): Sim.Gen<void> {
  const time = c.time
  yield* Spinlock.spin_lock(t.hw, c.tsc_write_lock)
  const now = c.vm.kernel.now
  let offset = value - time.rdtsc(t.cpu, now)
  const ns = time.kvmclockBaseNs(now)
  const elapsed = ns - c.last_tsc_nsec
  let synchronizing = value === 0 && !user
  if (user) {
    const tsc_exp = c.last_tsc_write + Math.floor((elapsed * time.tsc_khz) / 1_000_000)
    const tsc_hz = time.tsc_khz * 1000
    synchronizing = value < tsc_exp + tsc_hz && value + tsc_hz > tsc_exp
  }
  const matched = synchronizing && c.cur_tsc_generation > 0
  if (matched) offset = c.cur_tsc_offset
  // __kvm_synchronize_tsc
  c.last_tsc_nsec = ns
  c.last_tsc_write = value
  const vc = vcpuClock.of(v)
  vc.last_guest_tsc = value
  yield* t.hw.WRITE_ONCE(vc.l1_tsc_offset, offset) // kvm_vcpu_write_tsc_offset
  vc.tsc_offset = offset // ... and the VMCS's TSC_OFFSET: the vCPU is loaded, out of the guest
  if (!matched) {
    c.cur_tsc_generation++
    c.cur_tsc_nsec = ns
    c.cur_tsc_write = value
    c.cur_tsc_offset = offset
    c.nr_vcpus_matched_tsc = 0
  } else if (vc.this_tsc_generation !== c.cur_tsc_generation) {
    c.nr_vcpus_matched_tsc++
  }
  vc.this_tsc_generation = c.cur_tsc_generation
  vc.this_tsc_write = value
  vc.this_tsc_nsec = ns
  yield* kvm_track_tsc_matching(c, v, !matched, t)
  yield* Spinlock.spin_unlock(t.hw, c.tsc_write_lock)
  if (user && c.vm.switches.variant.hostTscWrite === "clock-update") yield* kvm_make_request(c.vm, KVM_REQ_CLOCK_UPDATE, v, t)
}

/**
 * `kvm_set_guest_paused` (KVM_KVMCLOCK_CTRL, on the vCPU's thread): -EINVAL without kvmclock on;
 * else `pvclock_set_guest_stopped_request` and KVM_REQ_CLOCK_UPDATE on this vCPU (its next entry
 * publishes GUEST_STOPPED; `kvm_setup_guest_pvclock` consumes the request).
 */
export function* kvm_set_guest_paused(c: KvmClock, v: VcpuState, t: HostThread): Sim.Gen<number> {
  if ((yield* t.hw.READ_ONCE(pvTime.of(v).active)) !== 1) return -22 // -EINVAL
  guestStoppedRequest.add(v)
  c.vm.count("guest_paused")
  yield* kvm_make_request(c.vm, KVM_REQ_CLOCK_UPDATE, v, t)
  return 0
}

/** The guest's TSC on `v` now: its CPU's TSC plus its L1 offset (a ghost's look: `rdtsc` in the guest is no memory access). */
export const guestTsc = (c: KvmClock, v: VcpuState): number => c.time.rdtsc(v.cpu, c.vm.kernel.now) + vcpuClock.of(v).tsc_offset

/** The key of a pvti tuple (CLK-1): every field but the guest-writable GUEST_STOPPED bit. */
export const pvtiKey = (hv: Readonly<PvclockVcpuTimeInfo>): string =>
  `${hv.version}/${hv.tsc_timestamp}/${hv.system_time}/${hv.tsc_to_system_mul}/${hv.tsc_shift}/${hv.flags & PVCLOCK_TSC_STABLE_BIT}`

/**
 * `kvm_guest_time_update` (x86.c, v6.13), on the vCPU's own thread at KVM_REQ_CLOCK_UPDATE:
 * 1. the master pair under a `pvclock_sc` read loop (pairs with the update's write section);
 * 2. without the master clock, this CPU's TSC and the base clock now;
 * 3. `tsc_timestamp` = the guest's TSC at that host TSC (`kvm_read_l1_tsc`); mul/shift once;
 * 4. `system_time` = kernel_ns + `kvmclock_offset` — read outside the read loop, as the kernel does;
 * 5. `flags` = STABLE iff the master clock is in use;
 * 6. publish through `pv_time` (`kvm_setup_guest_pvclock`).
 * Without mechanism D (a pfncache scenario) the shadow stays as it is and is published as it is.
 * (The kernel's non-zero return, for a TSC frequency not known yet, has no counterpart: the model's
 * `tsc_khz` is always known.)
 */
export function* kvm_guest_time_update(v: VcpuState, host: HostCpu = alone): Sim.Gen<void> {
  const gpc = pvTime.of(v)
  const c = clockOf(gpc.kvm.vm)
  if (c === undefined) {
    if ((yield* v.hw.READ_ONCE(gpc.active)) === 1) yield* kvm_setup_guest_pvclock(v, gpc, host)
    return
  }
  const allAtOnce = c.vm.switches.variant.clockUpdate === "all-at-once"
  // clockUpdate=all-at-once: every pvti has one writer at a time (the updaters write them too).
  if (allAtOnce) yield* Spinlock.spin_lock(v.hw, c.pvclock_write_lock)
  yield* compute_and_publish(c, v, v, host)
  if (allAtOnce) yield* Spinlock.spin_unlock(v.hw, c.pvclock_write_lock)
}

/** `kvm_guest_time_update`'s body for vCPU `v`, run by thread `t` (the vCPU's own, or an all-at-once updater). */
function* compute_and_publish(c: KvmClock, v: VcpuState, t: HostThread, host: HostCpu): Sim.Gen<void> {
  const vm = c.vm
  const gpc = pvTime.of(v)
  const vc = vcpuClock.of(v)
  yield* Sim.point(vm.costs.clockUpdateNs)
  let use = 0
  let host_tsc = 0
  let kernel_ns = 0
  let gen = 0
  for (;;) {
    const seq = yield* Seqcount.read_seqcount_begin(t.hw, c.pvclock_sc)
    gen = c.pairGen
    use = yield* t.hw.READ_ONCE(c.use_master_clock)
    if (use === 1) {
      host_tsc = yield* t.hw.READ_ONCE(c.master_cycle_now)
      kernel_ns = yield* t.hw.READ_ONCE(c.master_kernel_ns)
    }
    if (!(yield* Seqcount.read_seqcount_retry(t.hw, c.pvclock_sc, seq))) break
  }
  // local_irq_save: the sampling below is not torn by an interrupt.
  const now = vm.kernel.now
  if (use !== 1) {
    host_tsc = c.time.rdtsc(t.cpu, now)
    kernel_ns = c.time.kvmclockBaseNs(now)
  }
  const tsc_timestamp = host_tsc + (yield* t.hw.READ_ONCE(vc.l1_tsc_offset)) // kvm_read_l1_tsc
  const hv = hvClockOf(v)
  if (vc.hw_tsc_khz !== c.time.tsc_khz) {
    const { shift, mul } = tscScale(c.time.tsc_khz)
    hv.tsc_shift = shift
    hv.tsc_to_system_mul = mul
    vc.hw_tsc_khz = c.time.tsc_khz
  }
  hv.tsc_timestamp = tsc_timestamp
  hv.system_time = kernel_ns + (yield* t.hw.READ_ONCE(c.kvmclock_offset))
  vc.last_guest_tsc = tsc_timestamp
  hv.flags = use === 1 ? PVCLOCK_TSC_STABLE_BIT : 0
  if ((yield* t.hw.READ_ONCE(gpc.active)) === 1) {
    const single = vm.bug("D.versionPlus2SingleCopy")
    yield* kvm_setup_guest_pvclock(v, gpc, host, single, (_khva, h) => {
      c.published[v.vcpu_id]!.set(pvtiKey(h), gen)
      vc.pairSeen = gen
      fresh(c, gen)
    }, t)
  }
  vm.count(t === v ? "kvmclock_updates" : "kvmclock_updates_by_updater")
}

/** The latency ghost: once every vCPU with kvmclock on has published from pair `gen`, the update that made it is complete. */
const fresh = (c: KvmClock, gen: number): void => {
  const p = c.pendingSince.get(gen)
  if (p === undefined) return
  for (const v of c.vm.vcpus) if (vcpuClock.of(v).pairSeen >= 0 && vcpuClock.of(v).pairSeen < gen) return
  c.vm.sample("pvclockUpdateNs", c.vm.kernel.now - p)
  c.pendingSince.delete(gen)
}

/**
 * clockUpdate=all-at-once (Andy's question in thread 3, "why doesn't KVM just update all of the
 * kvmclock data at once?"): the updater writes every vCPU's pvti itself, under
 * `pvclock_write_lock` (one writer per pvti), while KVM_REQ_MCLOCK_INPROGRESS still keeps every
 * vCPU out of the guest; the vCPUs get no KVM_REQ_CLOCK_UPDATE for it.
 */
function* update_all_pvti(c: KvmClock, t: HostThread): Sim.Gen<void> {
  yield* Spinlock.spin_lock(t.hw, c.pvclock_write_lock)
  for (const v of c.vm.vcpus) yield* compute_and_publish(c, v, t, alone)
  yield* Spinlock.spin_unlock(t.hw, c.pvclock_write_lock)
}

/**
 * `kvm_arch_init_vm`'s clock part, on the VMM's thread: `kvmclock_offset = -get_kvmclock_base_ns()`
 * (kvmclock starts near 0), then the first master pair under `tsc_write_lock` (outside any write
 * section: no vCPU exists yet).
 */
export function* kvm_arch_init_vm(c: KvmClock, t: HostThread): Sim.Gen<void> {
  const offset = -c.time.kvmclockBaseNs(c.vm.kernel.now)
  yield* t.hw.WRITE_ONCE(c.kvmclock_offset, offset)
  c.next = { ...c.next, offset }
  yield* Spinlock.spin_lock(t.hw, c.tsc_write_lock)
  yield* pvclock_update_vm_gtod_copy(c, t)
  yield* Spinlock.spin_unlock(t.hw, c.tsc_write_lock)
  c.ref = { ...c.next }
}

/** `kvm_arch_vcpu_postcreate`'s clock part: `kvm_synchronize_tsc(vcpu, NULL)` (the guest TSC starts at 0). */
export const kvm_arch_vcpu_postcreate = (c: KvmClock, v: VcpuState, t: HostThread): Sim.Gen<void> => kvm_synchronize_tsc(c, v, 0, false, t)
