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
 * - `syscall`: `clock_gettime` as a system call: the kernel reader plus the syscall's cost.
 * Every accepted pvti is checked: CLK-1 (one publish's tuple), and for a STABLE one CLK-5 (the
 * master clock is on) and CLK-3 (agreement with the master pair); every reading, CLK-4 per thread.
 */
import type { Memory } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import type { Mm } from "../host/Mm.js"
import type { VcpuState } from "../vcpu/State.js"
import * as Inv from "./Invariants.js"
import { PVCLOCK_TSC_STABLE_BIT, PVTI } from "./Protocol.js"
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
  constructor(readonly name: string) {}
}

/** What a pvti read saw: the time it computed, its flags, its tuple's key. */
interface Snapshot {
  ret: number
  flags: number
  key: string
  tscAt: number
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
  return [{ ret, flags, key, tscAt }, again === version]
}

/** The checks of an accepted pvti: CLK-1; if STABLE, CLK-5 and CLK-3. */
function* accepted(g: GuestClock, who: string, owner: number, s: Snapshot): Sim.Gen<void> {
  const c = g.c
  const k = c.vm.kernel
  const torn = Inv.clk1(k, c, who, owner, s.key)
  if (torn !== undefined) yield* Sim.fail("CLK-1", torn)
  if ((s.flags & PVCLOCK_TSC_STABLE_BIT) === 0 || s.key === "0/0/0/0/0/0") return
  const master = c.next.master
  const stale = Inv.clk5(k, who, owner, master || c.updating > 0)
  if (stale !== undefined) yield* Sim.fail("CLK-5", stale)
  if (c.updating > 0 || !c.ref.master) return
  const line = Math.floor((s.tscAt * c.time.tsc_khz) / 1_000_000)
  const reference = c.ref.ns + c.ref.offset + Math.round(((line - c.ref.tsc) * 1_000_000) / c.time.tsc_khz)
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
    ns = reader === "vcpu0" ? yield* vread_pvclock(g, v, who) : yield* vread_pvclock_getcpu(g, v, who)
    if (ns === U64_MAX) {
      g.fallbacks++
      ns = yield* sys_clock_gettime(g, v, who)
    }
  }
  g.reads++
  g.readNs += k.now - t0
  const back = Inv.clk4(k, task.name, ns, task.last)
  if (back !== undefined) yield* Sim.fail("CLK-4", back)
  task.last = ns
  return ns
}
