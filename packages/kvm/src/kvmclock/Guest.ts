/**
 * Mechanism D, the guest's readers (spec §4.6, §10.3; v6.13's `pvclock.c`, `kvmclock.c` and
 * `asm/vdso/gettimeofday.h`, and the 2015 vDSO for `getcpu`), each a guest-mode operation of one
 * vCPU on the shared memory (the pvti is guest memory: the reader reaches the page the MM maps at
 * the pvti's host address, as the EPT would):
 * - `kernel`: `__pvclock_clocksource_read` on this vCPU's pvti (preemption off), with the
 *   `last_value` clamp unless STABLE (`D.noLastValueClamp` drops it);
 * - `vcpu0`: the v4.5+ vDSO's `vread_pvclock` on vCPU0's pvti: STABLE or the syscall;
 * - `getcpu`: the 2013-2015 vDSO (protocol (a)): getcpu, that CPU's pvti, getcpu again, retry if
 *   it moved or the version changed; not STABLE: the syscall;
 * - `migrations`: protocol (b), the March 2015 revert: (a) plus that pvti's `migrate_count`
 *   (bumped by the guest's scheduler whenever a thread leaves the CPU) before and after;
 * - `syscall`: `clock_gettime` as a system call: the kernel reader plus the syscall's cost.
 * The guest writes its own pvti too: `kvm_check_and_clear_guest_paused`, from the watchdog, clears
 * GUEST_STOPPED (CLK-6 at its store).
 * Every accepted pvti is checked: CLK-1 (one publish's tuple), and for a STABLE one CLK-5 (the
 * master clock is on) and CLK-3 (agreement with the master pair); every reading, CLK-4 per thread.
 */
import type { Memory } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import type { Mm } from "../host/Mm.js"
import type { VcpuState } from "../vcpu/State.js"
import * as Inv from "./Invariants.js"
import { PVCLOCK_GUEST_STOPPED, PVCLOCK_TSC_STABLE_BIT, PVTI } from "./Protocol.js"
import type { KvmClock } from "./State.js"
import { pvclock_scale_delta, skewBoundNs } from "./Time.js"
import { guestTsc, pvtiKey } from "./X86.js"

/** The guest's clock state: `last_value`, `valid_flags`, and where each vCPU's pvti is. */
export class GuestClock {
  /** `last_value` (pvclock.c): an atomic64 in guest memory. */
  readonly last_value: Memory.Loc
  /** `valid_flags`: STABLE, as `kvmclock_init` sets it when CPUID has KVM_FEATURE_CLOCKSOURCE_STABLE_BIT. */
  readonly valid_flags = PVCLOCK_TSC_STABLE_BIT
  readonly bound: number
  // ---- statistics (ghost)
  reads = 0
  readNs = 0
  fallbacks = 0
  retries = 0
  constructor(readonly c: KvmClock, readonly mm: Mm, readonly pvtiHva: (vcpu: number) => number) {
    this.last_value = c.vm.memory.alloc("guest.pvclock.last_value", 0)
    this.bound = 2 * skewBoundNs(c.time) + 2
  }
}

/** A guest thread that reads the clock: its name and its last reading (CLK-4). */
export class ClockTask {
  last = -Infinity
  // ---- a getcpu reading spread over several guest steps (`getcpu_phase`), which may run on different vCPUs
  phase = 0
  startedAt = 0
  cpu = -1
  lastCpu = -1
  migrateCount = 0
  snapshot: readonly [Snapshot, boolean] | undefined = undefined
  constructor(readonly name: string) {}
}

/** What a pvti read saw: the time it computed, its flags, its tuple's key. */
export interface Snapshot {
  ret: number
  flags: number
  key: string
  tscAt: number
  /** The VM's master clock as it stood when the TSC was read (what CLK-3 and CLK-5 judge the reading by). */
  readonly at: { readonly ref: KvmClock["ref"]; readonly master: boolean; readonly updating: number }
}

const U64_MAX = -1

/** `rdtsc_ordered()` or `rdtsc()` in the guest (rdtsc=plain): its cost, and the guest TSC now. */
function* guest_rdtsc(g: GuestClock, v: VcpuState): Sim.Gen<number> {
  const costs = g.c.vm.costs
  yield* Sim.point(costs.rdtscNs + (g.c.vm.switches.variant.rdtsc === "ordered" ? costs.rdtscOrderedNs : 0))
  return guestTsc(g.c, v)
}

/**
 * One pass over pvti `owner`: version (`pvclock_read_begin`: `& ~1`, `virt_rmb`), the TSC, the
 * body, the flags, and `pvclock_read_retry` (`virt_rmb`, the version again). Returns the snapshot
 * and whether the version held. `stableFirst`: the vDSO's check of STABLE inside the window.
 */
function* read_pvti(g: GuestClock, v: VcpuState, owner: number): Sim.Gen<readonly [Snapshot, boolean] | undefined> {
  const mm = g.mm
  const pfn = mm.mapped(g.pvtiHva(owner))
  if (pfn === 0) return undefined
  const w = (f: keyof typeof PVTI) => mm.word(pfn, PVTI[f])
  yield* Sim.point(g.c.vm.costs.pvtiReadNs)
  const raw = yield* v.hw.READ_ONCE(w("version"))
  const version = raw & ~1
  yield* v.hw.smp_rmb() // virt_rmb: pairs with the host's smp_wmb after the odd version
  const tsc = yield* guest_rdtsc(g, v)
  const tscAt = g.c.vm.kernel.now
  const at = { ref: g.c.ref, master: g.c.next.master, updating: g.c.updating }
  const tsc_timestamp = yield* v.hw.READ_ONCE(w("tsc_timestamp"))
  const system_time = yield* v.hw.READ_ONCE(w("system_time"))
  const mul = yield* v.hw.READ_ONCE(w("tsc_to_system_mul"))
  const shift = yield* v.hw.READ_ONCE(w("tsc_shift"))
  const flags = yield* v.hw.READ_ONCE(w("flags"))
  yield* v.hw.smp_rmb() // virt_rmb: pairs with the host's smp_wmb before the even version
  const again = yield* v.hw.READ_ONCE(w("version"))
  // u64 delta: a TSC behind tsc_timestamp wraps to a huge delta (kept as the far future here).
  const delta = tsc - tsc_timestamp
  const ret = delta < 0 ? Number.MAX_SAFE_INTEGER : system_time + pvclock_scale_delta(delta, mul, shift)
  const key = pvtiKey({ version: raw, tsc_timestamp, system_time, tsc_to_system_mul: mul, tsc_shift: shift, flags })
  return [{ ret, flags, key, tscAt, at }, again === version]
}

/** The checks of an accepted pvti: CLK-1; if STABLE, CLK-5 and CLK-3. */
function* accepted(g: GuestClock, who: string, owner: number, s: Snapshot): Sim.Gen<void> {
  const c = g.c
  const k = c.vm.kernel
  const torn = Inv.clk1(k, c, who, owner, s.key)
  if (torn !== undefined) yield* Sim.fail("CLK-1", torn)
  if ((s.flags & PVCLOCK_TSC_STABLE_BIT) === 0 || s.key === "0/0/0/0/0/0") return
  // Judged as of the TSC read: a reading taken while a pair was valid stays right for that instant,
  // however late the thread (moved between vCPUs in mid-reading) gets to return it.
  const { ref, master, updating } = s.at
  const stale = Inv.clk5(k, who, owner, master || updating > 0)
  if (stale !== undefined) yield* Sim.fail("CLK-5", stale)
  if (updating > 0 || !ref.master) return
  const line = Math.floor((s.tscAt * c.time.tsc_khz) / 1_000_000)
  const reference = ref.ns + ref.offset + Math.round(((line - ref.tsc) * 1_000_000) / c.time.tsc_khz)
  const off = Inv.clk3(k, who, s.ret, reference, g.bound)
  if (off !== undefined) yield* Sim.fail("CLK-3", off)
}

/** `__pvclock_clocksource_read(this vCPU's pvti)`: retry until the version holds; the clamp unless STABLE. */
function* pvclock_clocksource_read(g: GuestClock, v: VcpuState, who: string): Sim.Gen<number> {
  const owner = v.vcpu_id
  let s: Snapshot
  for (;;) {
    const r = yield* read_pvti(g, v, owner)
    if (r === undefined) return 0
    if (r[1]) {
      s = r[0]
      break
    }
    g.retries++
  }
  yield* accepted(g, who, owner, s)
  if ((g.valid_flags & s.flags & PVCLOCK_TSC_STABLE_BIT) !== 0) return s.ret
  if (g.c.vm.bug("D.noLastValueClamp")) return s.ret
  // The clamp: raw_atomic64_read, then try_cmpxchg up to ret (a LOCK'd cmpxchg: a full barrier).
  yield* Sim.point(g.c.vm.costs.atomicNs)
  let last = yield* v.hw.READ_ONCE(g.last_value)
  for (;;) {
    if (s.ret <= last) return last
    const old = yield* v.hw.cmpxchg(g.last_value, last, s.ret)
    if (old === last) return s.ret
    last = old
  }
}

/** `vread_pvclock`: vCPU0's pvti; not STABLE (inside the version window): U64_MAX, the syscall. */
function* vread_pvclock(g: GuestClock, v: VcpuState, who: string): Sim.Gen<number> {
  for (;;) {
    const r = yield* read_pvti(g, v, 0)
    if (r === undefined) return U64_MAX
    const [s, held] = r
    if (!held) {
      g.retries++
      continue
    }
    if ((s.flags & PVCLOCK_TSC_STABLE_BIT) === 0) return U64_MAX
    yield* accepted(g, who, 0, s)
    return s.ret
  }
}

/** Protocol (a): getcpu, pvti[cpu], the read, getcpu again; retry on a move or a version change; then STABLE or the syscall. */
function* vread_pvclock_getcpu(g: GuestClock, v: VcpuState, who: string): Sim.Gen<number> {
  const costs = g.c.vm.costs
  for (;;) {
    yield* Sim.point(costs.getcpuNs)
    const cpu = v.vcpu_id // __getcpu(): the vCPU this thread runs on
    const r = yield* read_pvti(g, v, cpu)
    yield* Sim.point(costs.getcpuNs)
    const cpu1 = v.vcpu_id
    if (r === undefined) return U64_MAX
    const [s, held] = r
    if (cpu !== cpu1 || !held) {
      g.retries++
      continue
    }
    if ((s.flags & PVCLOCK_TSC_STABLE_BIT) === 0) return U64_MAX
    yield* accepted(g, who, cpu, s)
    return s.ret
  }
}

/** `clock_gettime(CLOCK_MONOTONIC_RAW-like kvmclock)` as a system call: its cost, then the kernel's read. */
function* sys_clock_gettime(g: GuestClock, v: VcpuState, who: string): Sim.Gen<number> {
  yield* Sim.point(g.c.vm.costs.syscallNs)
  return yield* pvclock_clocksource_read(g, v, who)
}

/** A reading is done: the statistics, and CLK-4 for its thread. */
function* finish(g: GuestClock, task: ClockTask, ns: number, t0: number): Sim.Gen<number> {
  const k = g.c.vm.kernel
  g.reads++
  g.readNs += k.now - t0
  const back = Inv.clk4(k, task.name, ns, task.last)
  if (back !== undefined) yield* Sim.fail("CLK-4", back)
  task.last = ns
  return ns
}

/** pvti[`cpu`]'s `migrate_count`, as the guest reads it. */
function* read_migrate_count(g: GuestClock, v: VcpuState, cpu: number): Sim.Gen<number> {
  const pfn = g.mm.mapped(g.pvtiHva(cpu))
  return pfn === 0 ? 0 : yield* v.hw.READ_ONCE(g.mm.word(pfn, PVTI.migrate_count))
}

/**
 * `pvclock_task_migrate` (the 2015 guest's scheduler notifier), on the CPU a thread leaves:
 * `pvti->migrate_count++` on that CPU's pvti, a plain increment.
 */
export function* pvclock_task_migrate(g: GuestClock, v: VcpuState): Sim.Gen<void> {
  const pfn = g.mm.mapped(g.pvtiHva(v.vcpu_id))
  if (pfn === 0) return
  const w = g.mm.word(pfn, PVTI.migrate_count)
  yield* v.hw.WRITE_ONCE(w, (yield* v.hw.READ_ONCE(w)) + 1)
}

/**
 * Protocol (a) — or (b), with `migrate_count` — one part at a time, for a thread the guest's scheduler may move between any two
 * (the vDSO runs with preemption on): `getcpu` and the choice of that CPU's pvti; the read of it
 * with the TSC of the vCPU the thread is on by then; `getcpu` again and the checks. Returns the
 * reading when it is done, undefined after an earlier part. `D.getcpuAfterOnly` picks the pvti
 * by the CPU the thread's last reading ended on, with no getcpu before, and so no CPU to compare
 * with after.
 */
export function* getcpu_phase(g: GuestClock, v: VcpuState, task: ClockTask): Sim.Gen<number | undefined> {
  const vm = g.c.vm
  const costs = vm.costs
  const noFirstGetcpu = vm.bug("D.getcpuAfterOnly")
  const migrations = vm.switches.variant.reader === "migrations"
  const who = `${task.name} on ${v.name}`
  switch (task.phase) {
    case 0:
      task.startedAt = vm.kernel.now
      yield* Sim.point(costs.vdsoNs + (noFirstGetcpu ? 0 : costs.getcpuNs))
      task.cpu = noFirstGetcpu && task.lastCpu >= 0 ? task.lastCpu : v.vcpu_id
      if (migrations) task.migrateCount = yield* read_migrate_count(g, v, task.cpu)
      task.phase = 1
      return undefined
    case 1:
      task.snapshot = yield* read_pvti(g, v, task.cpu)
      task.phase = 2
      return undefined
    default: {
      task.phase = 0
      yield* Sim.point(costs.getcpuNs)
      const cpu1 = v.vcpu_id
      task.lastCpu = cpu1
      const r = task.snapshot
      if (r === undefined) return yield* finish(g, task, yield* sys_clock_gettime(g, v, who), task.startedAt)
      const [s, held] = r
      const moved = migrations && (yield* read_migrate_count(g, v, task.cpu)) !== task.migrateCount
      if ((!noFirstGetcpu && task.cpu !== cpu1) || moved || !held) {
        g.retries++
        return undefined
      }
      if ((s.flags & PVCLOCK_TSC_STABLE_BIT) === 0) {
        g.fallbacks++
        return yield* finish(g, task, yield* sys_clock_gettime(g, v, who), task.startedAt)
      }
      yield* accepted(g, who, task.cpu, s)
      return yield* finish(g, task, s.ret, task.startedAt)
    }
  }
}

/**
 * One clock reading by `task` on `v`, by the scenario's `reader`, with the vDSO's own cost;
 * CLK-4 on the result. Returns the reading (ns of kvmclock).
 */
export function* read_clock(g: GuestClock, v: VcpuState, task: ClockTask): Sim.Gen<number> {
  const vm = g.c.vm
  const k = vm.kernel
  const t0 = k.now
  const who = `${task.name} on ${v.name}`
  const reader = vm.switches.variant.reader
  let ns: number
  if (reader === "kernel") ns = yield* pvclock_clocksource_read(g, v, who)
  else if (reader === "syscall") ns = yield* sys_clock_gettime(g, v, who)
  else {
    yield* Sim.point(vm.costs.vdsoNs)
    // A thread that stays on its vCPU: protocols (a) and (b) read the same (nothing migrates).
    ns = reader === "vcpu0" ? yield* vread_pvclock(g, v, who) : yield* vread_pvclock_getcpu(g, v, who)
    if (ns === U64_MAX) {
      g.fallbacks++
      ns = yield* sys_clock_gettime(g, v, who)
    }
  }
  return yield* finish(g, task, ns, t0)
}

/** One vCPU's softlockup watchdog: where it is in `kvm_check_and_clear_guest_paused`, and the flags its test read. */
export class Watchdog {
  phase = 0
  loaded = 0
  /** GUEST_STOPPED found and cleared (`pvclock_touch_watchdogs`). */
  touched = 0
}

/**
 * `kvm_check_and_clear_guest_paused` (kvmclock.c), from the watchdog's hrtimer on `v`: interrupts
 * are off, but a VM exit can land between any two instructions. One guest step tests GUEST_STOPPED
 * in this vCPU's pvti (`testb`); if it is set, the next clears it — `andb` on memory, one
 * instruction that reads the flags again (the merged kernel's code), or with
 * `M.guestStoppedSplitRMW` a store of the flags the test read — then `pvclock_touch_watchdogs`.
 * CLK-6 at the store. Returns whether the clear is still to come.
 */
export function* kvm_check_and_clear_guest_paused(g: GuestClock, v: VcpuState, wd: Watchdog): Sim.Gen<boolean> {
  const pfn = g.mm.mapped(g.pvtiHva(v.vcpu_id))
  if (pfn === 0) return false
  const w = g.mm.word(pfn, PVTI.flags)
  if (wd.phase === 0) {
    const flags = yield* v.hw.READ_ONCE(w)
    if ((flags & PVCLOCK_GUEST_STOPPED) === 0) return false
    wd.loaded = flags
    wd.phase = 1
    return true
  }
  wd.phase = 0
  const vm = g.c.vm
  const split = vm.bug("M.guestStoppedSplitRMW")
  // The host's last publish reached memory before this vCPU entered (VM entry serialises).
  const current = vm.memory.peek(w)
  const stored = (split ? wd.loaded : yield* v.hw.READ_ONCE(w)) & ~PVCLOCK_GUEST_STOPPED
  const bad = Inv.clk6(vm.kernel, `${v.name}'s watchdog`, stored, current, PVCLOCK_GUEST_STOPPED)
  if (bad !== undefined) yield* Sim.fail("CLK-6", bad)
  yield* v.hw.WRITE_ONCE(w, stored)
  wd.touched++
  return false
}
