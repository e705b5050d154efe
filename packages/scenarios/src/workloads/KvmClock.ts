/**
 * Workloads of mechanism D (spec §4, §6 N3/N4, §7, §10.3). vCPUs enable kvmclock (the MSR write
 * activates each vCPU's `pv_time` cache on gfn `pvGfn` + vCPU id; KVM_REQ_GLOBAL_CLOCK_UPDATE
 * writes the first pvti) and read the clock in a loop with the scenario's `reader`, a VM exit after
 * every `exitEvery` readings (where pending clock requests are processed), until they have made
 * `reads` readings and the host's timeline is done. The timeline sends the clock master its
 * events `eventEvery` readings apart:
 * - `setClocks` KVM_SET_CLOCKs, each `setClockStepNs` ahead of the clock (kvm_clock_test's 180 s);
 * - `clocksourceFlips`: the host's clocksource leaves the TSC (every vCPU updates the master clock
 *   at its next entry, several at once) and comes back, then a TSC write per vCPU resynchronises
 *   them and turns the master clock on again;
 * - `tscWrites`: the last vCPU's TSC written 10 s ahead, then the resynchronisation;
 * - `pauses`: KVM_KVMCLOCK_CTRL to every vCPU, a reading before the round's other events; with
 *   any, each vCPU's watchdog looks for GUEST_STOPPED before half its readings (the seed picks
 *   which), and clears it in the next step.
 * A TSC write is a vCPU ioctl: the vCPU's own thread runs it between two KVM_RUNs. With
 * `migrateEvery`, one guest thread moves between the vCPUs (by protocols (a) and (b), in
 * mid-reading); `tscRatePpm` makes the TSCs unstable and `warmupNs` lets them drift; under
 * era=2015 the host's clock is slewed by `ntpPpm` from the start.
 *
 * Host pages 1..memGfns back slot 0 (gfn g at host page g + 1).
 */
import { Costs, KvmClock, PfnCache, Protocol, Sched, Vcpu, Vm } from "@kvmlab/kvm"
import { Mailbox, Sim } from "@kvmlab/sim"
import { Schema } from "effect"
import { bindSink, type Issue, type Sink } from "../Mechanism.js"
import type { Scenario } from "../Scenario.js"
import { Count } from "../Schemas.js"
import { guestMemory } from "./PfnCache.js"
import { placeVcpus, spawnVcpus, sumStats, switchesOf, teardown } from "./Requests.js"

export const KvmClockWorkload = Schema.Struct({
  kind: Schema.Literal("kvmclock"),
  /** Frames of slot 0 (host pages 1..memGfns). */
  memGfns: Count(1, 255),
  /** vCPU i's pvti is on gfn pvGfn + i. */
  pvGfn: Schema.Int.pipe(Schema.between(0, 254)),
  /** Clock readings each vCPU makes. */
  reads: Count(1, 1_000_000),
  /** Guest steps between two readings. */
  guestSteps: Count(1, 1000),
  /** A VM exit after every this many readings. */
  exitEvery: Count(1, 1_000_000),
  /** KVM_SET_CLOCKs the VMM makes, each `setClockStepNs` ahead of kvmclock as the VMM computes it when it sends the ioctl. */
  setClocks: Schema.Int.pipe(Schema.between(0, 10_000)),
  /** How far ahead each KVM_SET_CLOCK sets the clock (kvm_clock_test jumps 180 s; 0 republishes the same clock, which a timed run reaches a few ns late: a step back). */
  setClockStepNs: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 1_000_000_000_000)), { default: () => 180_000_000_000 }),
  /** Host clocksource changes away from the TSC and back (then a TSC write per vCPU). */
  clocksourceFlips: Schema.Int.pipe(Schema.between(0, 10_000)),
  /** Clock readings (by all vCPUs together) between two host events: the timeline is paced by the guests, so that every strategy interleaves the two. */
  eventEvery: Count(1, 1_000_000),
  /** The TSC's frequency in kHz. */
  tscKhz: Schema.Int.pipe(Schema.between(100_000, 10_000_000)),
  /** The largest TSC skew between physical CPUs, in cycles (each CPU's offset drawn from the seed). */
  tscSkew: Schema.Int.pipe(Schema.between(0, 1_000_000)),
  /** The host clock's NTP slew from the start, in ppm (era=2015 only). */
  ntpPpm: Schema.Int.pipe(Schema.between(-500, 500)),
  /** The largest TSC rate difference between physical CPUs, in ppm (each CPU's drawn from the seed): an unstable TSC. */
  tscRatePpm: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 10_000)), { default: () => 0 }),
  /** A guest thread that moves to the next vCPU after every this many of its readings (0: none; every reader stays on its vCPU). */
  migrateEvery: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 1_000_000)), { default: () => 0 }),
  /** Host-initiated TSC writes to the last vCPU, 10 s ahead (a new TSC generation: the master clock goes off), each followed by a resynchronisation of every vCPU. */
  tscWrites: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 10_000)), { default: () => 0 }),
  /**
   * The VMM's KVM_KVMCLOCK_CTRL rounds (QEMU's, as a VM resumes): one to every vCPU, a reading
   * before the round's other host events; each guest's watchdog then clears GUEST_STOPPED in its pvti.
   */
  pauses: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 10_000)), { default: () => 0 }),
  /**
   * Virtual ns a guest idles (in guest mode) before each reading beyond its `reads`, while the
   * host's timeline still needs readings (0: it reads on without a pause). For `pct`: a reader
   * that never pauses keeps the lower-priority timeline from running, and the run ends at the
   * step bound.
   */
  idleNs: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 1_000_000_000)), { default: () => 0 }),
  /** Virtual ns the guests run before their first reading (passes under every strategy: the TSCs drift apart meanwhile). */
  warmupNs: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 1_000_000_000)), { default: () => 0 })
})
export type KvmClockWorkload = typeof KvmClockWorkload.Type

/** The shapes that cannot work, each with its field. */
export const check = (s: Scenario, w: KvmClockWorkload): ReadonlyArray<Issue> => [
  ...(w.pvGfn + s.vcpusPerVm > w.memGfns
    ? [{ path: "workload.memGfns", message: `slot 0 needs a pvti page per vCPU from pvGfn ${w.pvGfn}: ${w.pvGfn + s.vcpusPerVm} frames, got ${w.memGfns}` }]
    : []),
  ...(w.tscRatePpm > 0 && s.variant.masterClock === "on"
    ? [{ path: "workload.tscRatePpm", message: "TSCs running at different rates are unstable: the host's clocksource is not the TSC then, so use --variant masterClock=off" }]
    : []),
  ...(w.tscRatePpm > 0 && (w.setClocks > 0 || w.clocksourceFlips > 0 || w.tscWrites > 0)
    ? [{ path: "workload.tscRatePpm", message: "an unstable TSC takes no host events in this workload: set setClocks, clocksourceFlips and tscWrites to 0" }]
    : [])
]

/** Settings that change nothing here. */
export const notes = (s: Scenario, w: KvmClockWorkload): ReadonlyArray<string> => [
  ...(s.variant.flush === "native" ? [] : [`flush=${s.variant.flush} changes nothing in a kvmclock workload: its guest makes no remote TLB flushes`]),
  ...(w.ntpPpm !== 0 && s.variant.era === "v5.5" ? [`workload.ntpPpm changes nothing under era=v5.5: the master clock's base (CLOCK_MONOTONIC_RAW) is not NTP-adjusted`] : [])
]

const { ExitReason } = Protocol

/**
 * kvmclock now, as the VMM reads it (KVM_GET_CLOCK: the master pair extrapolated on its TSC). The
 * KVM_SET_CLOCKs go forward from it (the selftest also sets the clock back to 0, which a guest
 * sees as time going backwards on purpose: CLK-4 is not about that).
 */
const kvmclockNow = (c: KvmClock.State.KvmClock, cpu: number): number =>
  c.ref.ns + c.ref.offset + Math.floor(((c.time.rdtsc(cpu, c.vm.kernel.now) - c.ref.tsc) * 1_000_000) / c.time.tsc_khz)

/** Waits until the guests have made `n` more readings. */
function* gap(guest: Guest, n: number): Sim.Gen<void> {
  const until = guest.readings + n
  while (guest.readings < until) yield* Sim.wait(guest.progress)
}

interface Done {
  n: number
  readonly q: Sim.WaitQueue
}

/** The guest: enable kvmclock (the MSR write), then `reads` readings `guestSteps` steps apart, an exit every `exitEvery`, then HLT. */
class Guest implements Vcpu.Guest {
  private readonly enabled: Array<boolean>
  private readonly steps: Array<number>
  private readonly reads: Array<number>
  readonly tasks: Array<KvmClock.Guest.ClockTask>
  /** The guest thread that moves between vCPUs (migrateEvery), the vCPU it is on, its readings there. */
  readonly wanderer = new KvmClock.Guest.ClockTask("wanderer")
  private wandererOn = 0
  private wandererReads = 0
  private readonly warmedUp: Array<boolean>
  readonly watchdogs: Array<KvmClock.Guest.Watchdog>
  lastNs = 0
  /** The host's timeline has sent its last event: the guests may halt (a halted vCPU processes no clock request, spec §10.3). */
  hostDone = false
  /** Readings made by all vCPUs, and the queue the timeline waits on for them. */
  readings = 0
  readonly progress = Sim.makeWaitQueue("guest clock readings")
  readonly ready: Done = { n: 0, q: Sim.makeWaitQueue("kvmclock enabled everywhere") }
  constructor(private readonly vm: Vm.Vm, private readonly g: KvmClock.Guest.GuestClock, private readonly w: KvmClockWorkload, private readonly done: Done) {
    this.enabled = vm.vcpus.map(() => false)
    this.steps = vm.vcpus.map(() => 0)
    this.reads = vm.vcpus.map(() => 0)
    this.tasks = vm.vcpus.map((v) => new KvmClock.Guest.ClockTask(`reader${v.vcpu_id}`))
    this.warmedUp = vm.vcpus.map(() => w.warmupNs === 0)
    this.watchdogs = vm.vcpus.map(() => new KvmClock.Guest.Watchdog())
  }
  /** Whether the wanderer reads by protocol (a) or (b), one part per step. */
  private phased(): boolean {
    const r = this.vm.switches.variant.reader
    return r === "getcpu" || r === "migrations"
  }
  /** The guest thread that reads on vCPU `id` now: the wanderer when it is there, else the vCPU's own reader. */
  private taskOn(id: number): KvmClock.Guest.ClockTask {
    if (this.w.migrateEvery === 0 || this.wandererOn !== id) return this.tasks[id]!
    // A getcpu reader moves between the parts of a reading instead (step).
    if (this.phased()) return this.wanderer
    if (++this.wandererReads === this.w.migrateEvery) {
      this.wandererReads = 0
      this.wandererOn = (id + 1) % this.vm.vcpus.length // the guest scheduler moves it on after this reading
    }
    return this.wanderer
  }
  *step(v: Vm.Vm["vcpus"][number]): Sim.Gen<Protocol.ExitReason | undefined> {
    const id = v.vcpu_id
    if (!this.enabled[id]) return ExitReason.MsrWrite // wrmsr(MSR_KVM_SYSTEM_TIME_NEW, pvti | 1)
    const wd = this.watchdogs[id]!
    if (wd.phase === 1) {
      yield* KvmClock.Guest.kvm_check_and_clear_guest_paused(this.g, v, wd)
      return undefined
    }
    // D.staleVcpu0Stable: vCPU0 goes idle after its first reading, and nothing wakes it.
    if (id === 0 && this.vm.bug("D.staleVcpu0Stable") && this.reads[0]! >= 1) return this.halt(0)
    if (this.reads[id]! >= this.w.reads && this.hostDone) return this.halt(id)
    if (++this.steps[id]! < this.w.guestSteps) {
      yield* Sim.point(this.vm.costs.guestAccessNs)
      return undefined
    }
    this.steps[id] = 0
    if (!this.warmedUp[id]) {
      this.warmedUp[id] = true
      yield* Sim.sleep(this.w.warmupNs)
    }
    if (this.w.idleNs > 0 && this.reads[id]! >= this.w.reads) yield* Sim.sleep(this.w.idleNs)
    // The watchdog's hrtimer (kvm_check_and_clear_guest_paused) before half the readings, at the
    // seed's choice (it fires every 4 s, at no fixed point of the guest's work); its clear takes the next step.
    if (this.w.pauses > 0 && this.vm.kernel.random(2) === 0 && (yield* KvmClock.Guest.kvm_check_and_clear_guest_paused(this.g, v, wd))) return undefined
    const task = this.taskOn(id)
    if (task === this.wanderer && this.phased()) {
      // The getcpu reading one part per step; the guest's scheduler may move the thread after any
      // (and the 2015 guest's notifier counts the move on the pvti of the CPU it leaves).
      const ns = yield* KvmClock.Guest.getcpu_phase(this.g, v, task)
      if (this.vm.kernel.random(2) === 1) {
        yield* KvmClock.Guest.pvclock_task_migrate(this.g, v)
        this.wandererOn = (id + 1) % this.vm.vcpus.length
      }
      if (ns === undefined) return undefined
    } else yield* KvmClock.Guest.read_clock(this.g, v, task)
    this.readings++
    this.vm.kernel.wakeAll(this.progress)
    return ++this.reads[id]! % this.w.exitEvery === 0 ? ExitReason.IoInstruction : undefined
  }
  /** vCPU `id` halts for good: its work is done. */
  private halt(id: number): Protocol.ExitReason {
    this.done.n++
    this.lastNs = this.vm.kernel.now
    this.vm.kernel.wakeAll(this.done.q)
    this.reads[id] = -Infinity
    return ExitReason.Hlt
  }
  *handleExit(v: Vm.Vm["vcpus"][number], reason: Protocol.ExitReason, host: Sched.HostCpu): Sim.Gen<void> {
    const id = v.vcpu_id
    if (reason === ExitReason.Hlt) return Vcpu.kvm_emulate_halt(this.vm, v)
    if (reason !== ExitReason.MsrWrite) return
    this.enabled[id] = true
    yield* PfnCache.X86.kvm_write_system_time(v, this.w.pvGfn + id, host)
    if (++this.ready.n === this.vm.vcpus.length) this.vm.kernel.wakeAll(this.ready.q)
  }
}

/** The clock master's thread. */
function* masterThread(host: Vm.Host, c: KvmClock.State.KvmClock, box: Mailbox.Mailbox<KvmClock.Protocol.ClockCommand>, cpu: number): Sim.Gen<number> {
  const t = yield* Vm.hostThread(host, "clock-master", cpu)
  return yield* KvmClock.ClockMaster.clock_master(c, box, t)
}

/** vCPU `v`'s guest TSC as the VMM reads it now (KVM_GET_MSRS). */
const guestTscNow = (c: KvmClock.State.KvmClock, v: Vm.Vm["vcpus"][number], cpu: number): number =>
  Math.max(0, c.time.rdtsc(cpu, c.vm.kernel.now) + c.vm.memory.peek(KvmClock.State.vcpuClock.of(v).l1_tsc_offset))

/** The VMM resynchronises the guest TSCs: vCPU0's value now, written to every vCPU (within a second of each other: one generation). */
function* resync(c: KvmClock.State.KvmClock, box: Mailbox.Mailbox<KvmClock.Protocol.ClockCommand>, cpu: number): Sim.Gen<void> {
  const value = guestTscNow(c, c.vm.vcpus[0]!, cpu)
  for (const v of c.vm.vcpus) yield* box.send(new KvmClock.Protocol.TscWrite({ vcpu: v.vcpu_id, value }))
}

/** The VMM's timeline: once every vCPU has kvmclock on, its host events `eventEvery` readings apart, then Stop. */
function* timeline(w: KvmClockWorkload, c: KvmClock.State.KvmClock, guest: Guest, box: Mailbox.Mailbox<KvmClock.Protocol.ClockCommand>, cpu: number): Sim.Gen<void> {
  const vcpus = c.vm.vcpus.length
  while (guest.ready.n < vcpus) yield* Sim.wait(guest.ready.q)
  const { ClocksourceChanged, GuestPaused, SetClock, Stop, TscWrite } = KvmClock.Protocol
  for (let i = 0; i < Math.max(w.setClocks, w.clocksourceFlips, w.tscWrites, w.pauses); i++) {
    yield* gap(guest, w.eventEvery)
    if (i < w.pauses) {
      for (const v of c.vm.vcpus) yield* box.send(new GuestPaused({ vcpu: v.vcpu_id }))
      yield* gap(guest, 1)
    }
    if (i < w.setClocks) yield* box.send(new SetClock({ ns: Math.max(0, kvmclockNow(c, cpu) + w.setClockStepNs) }))
    if (i < w.clocksourceFlips) {
      yield* box.send(new ClocksourceChanged({ stable: false }))
      yield* gap(guest, w.eventEvery)
      yield* box.send(new ClocksourceChanged({ stable: true }))
      yield* resync(c, box, cpu)
    }
    if (i < w.tscWrites) {
      const v = c.vm.vcpus[vcpus - 1]!
      yield* box.send(new TscWrite({ vcpu: v.vcpu_id, value: guestTscNow(c, v, cpu) + 10 * c.time.tsc_khz * 1000 }))
      yield* gap(guest, w.eventEvery)
      yield* resync(c, box, cpu)
    }
  }
  yield* box.send(new Stop())
  guest.hostDone = true
}

/**
 * The program: one VM with memslots, the MMU notifier and kvmclock; the vCPUs on their CPUs (or
 * overcommitted), the clock master and the VMM each on a CPU of its own.
 */
export const program = (s: Scenario, sink?: Sink): Sim.Program<Record<string, number>> =>
  function*() {
    const w = s.workload as KvmClockWorkload
    const vcpus = s.vcpusPerVm
    const k = yield* Sim.kernel()
    const host = yield* Vm.makeHost({ pcpus: s.pcpus, costs: Costs.resolve(s.costs) })
    const vm = Vm.makeVm(host, vcpus, switchesOf(s))
    bindSink(sink, host.memory, () => sumStats([vm]))
    const { mm } = guestMemory(vm, w.memGfns, w.memGfns, w.memGfns + 1)
    const skew = Array.from({ length: s.pcpus + 3 }, () => (w.tscSkew === 0 ? 0 : k.random(w.tscSkew + 1)))
    const rates = Array.from({ length: s.pcpus + 3 }, () => (w.tscRatePpm === 0 ? 0 : k.random(w.tscRatePpm + 1)))
    const time = new KvmClock.Time.HostTime(s.variant.era, w.tscKhz, skew, 0, rates)
    time.clocksourceTsc = s.variant.masterClock === "on"
    if (s.variant.era === "2015" && w.ntpPpm !== 0) time.adjust(0, w.ntpPpm, undefined)
    const c = KvmClock.Extension.attach(vm, time)
    const vmm = yield* Vm.hostThread(host, "vmm", s.pcpus)
    yield* KvmClock.X86.kvm_arch_init_vm(c, vmm)
    for (const v of vm.vcpus) yield* KvmClock.X86.kvm_arch_vcpu_postcreate(c, v, vmm)
    const g = new KvmClock.Guest.GuestClock(c, mm, (i) => 1 + w.pvGfn + i)
    const done: Done = { n: 0, q: Sim.makeWaitQueue("guests done") }
    const guest = new Guest(vm, g, w, done)
    const actors = yield* spawnVcpus(host, vm, guest, placeVcpus(s, host)(0))
    const box = Mailbox.make<KvmClock.Protocol.ClockCommand>(k, "clock-master commands", KvmClock.Protocol.CLOCK_MAILBOX_CAPACITY)
    const master = yield* Sim.spawn("clock-master", () => masterThread(host, c, box, s.pcpus + 1))
    const feeder = yield* Sim.spawn("vmm-timeline", () => timeline(w, c, guest, box, s.pcpus))
    yield* Sim.join(feeder)
    yield* Sim.join(master)
    while (done.n < vcpus) yield* Sim.wait(done.q)
    yield* teardown(vm, vmm, actors)
    vm.count("reads", g.reads)
    vm.count("readCostNs", g.reads === 0 ? 0 : Math.round((g.readNs / g.reads) * 10) / 10)
    vm.count("read_retries", g.retries)
    vm.count("syscall_fallbacks", g.fallbacks)
    vm.count("workloadNs", guest.lastNs)
    if (w.pauses > 0) vm.count("watchdog_touches", guest.watchdogs.reduce((n, wd) => n + wd.touched, 0))
    const updates = vm.samples["pvclockUpdateNs"] ?? []
    vm.count("pvclockUpdateMeanNs", updates.length === 0 ? 0 : Math.round(updates.reduce((a, b) => a + b, 0) / updates.length))
    vm.count("pvclockUpdateMaxNs", updates.length === 0 ? 0 : Math.max(...updates))
    return sink === undefined ? {} : sink.metrics()
  }
