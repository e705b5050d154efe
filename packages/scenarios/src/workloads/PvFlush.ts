/**
 * `pv-flush-race` (spec §2, thread 1; §10.1): guest initiators (the first `initiators` vCPUs)
 * change page-table entries and shoot down the other vCPUs' TLBs with `flush_tlb_multi`, while
 * each target runs guest code, takes timer-tick and emulation exits, reads its steal clock, is
 * preempted by a host thread sharing its physical CPU — at an instruction boundary (after a timer
 * tick) or in the middle of emulating an instruction — and is called back to userspace by the
 * VMM. With `flush=pv`, a preempted target is skipped through its steal-time byte;
 * `record_steal_time` then flushes before the guest runs again. Two initiators shooting down the
 * same target are what §2.9's shared IPI_PENDING bit cannot tell apart.
 */
import { Costs, Hog, Hypercall, Lapic, Protocol, PvFlush, Sched, Scheduler, State, Thread, Vcpu, VcpuProtocol, Vm } from "@kvmlab/kvm"
import { Sim } from "@kvmlab/sim"
import { Schema } from "effect"
import { bindSink, type Sink } from "../Mechanism.js"
import type { Scenario } from "../Scenario.js"
import { Count, Percent } from "../Schemas.js"
import { spawnVcpus, sumStats, teardown } from "./Requests.js"
import type { Metrics } from "./Requests.js"

/** A guest TLB shootdown against a target that is preempted and resumed (§2.4-2.6, thread 1). */
export const PvFlushRace = Schema.Struct({
  kind: Schema.Literal("pv-flush-race"),
  /** Shootdowns each initiator makes. */
  rounds: Count(1, 10_000),
  /** How many of the VM's vCPUs are initiators (the first ones; default 1); the others are targets. */
  initiators: Schema.optionalWith(Count(1, 255), { default: () => 1 }),
  /** Pages of the guest mm. */
  pages: Count(1, 64),
  /** Each target's guest steps between exits. */
  guestSteps: Count(1, 1000),
  /** Each target's guest steps in all; then it halts. */
  guestWork: Count(1, 1_000_000),
  /** Chance, at each preemption point of a target's thread, that the host preempts it. */
  preemptPercent: Percent,
  /** Most steps a competing host thread (one per target) runs when it gets the CPU. */
  hogSteps: Count(1, 1000),
  /**
   * Commands the VMM's I/O thread sends the targets' vCPU threads, in turn (QEMU's `run_on_cpu`):
   * each signals one out of KVM_RUN to userspace and back, a voluntary `vcpu_put` (default 0).
   */
  vmmCommands: Schema.optionalWith(Count(0, 1000), { default: () => 0 }),
  /**
   * The physical CPU each vCPU thread is pinned to (taskset), by vcpu_id, the same in every VM;
   * default vCPU i of VM j on CPU (j * vcpusPerVm + i) mod pcpus. Threads on one CPU share it
   * through its runqueue.
   */
  pin: Schema.optional(Schema.Array(Count(0, 255)))
})

const { ExitReason } = Protocol
const { Guest, Host, Invariants: Inv } = PvFlush

type Workload = typeof PvFlushRace.Type

/** The physical CPU vCPU `i` of VM `j` runs on: its `pin`, else the next CPU round-robin across the VMs. */
const cpuIdOf = (s: Scenario, w: Workload, j: number, i: number): number => w.pin?.[i] ?? (j * s.vcpusPerVm + i) % s.pcpus

/** Whether some physical CPU has more than one vCPU thread (then they share it through runqueues). */
const sharesCpus = (s: Scenario, w: Workload): boolean => {
  const ids = new Set<number>()
  for (let j = 0; j < s.vms; j++) for (let i = 0; i < s.vcpusPerVm; i++) ids.add(cpuIdOf(s, w, j, i))
  return ids.size < s.vms * s.vcpusPerVm
}

/**
 * Where VM `j`'s vCPU threads run: each target's CPU is shared with a host thread of its own;
 * vCPU threads on one physical CPU (`pin`, or fewer CPUs than vCPUs) share it through `sched`'s
 * runqueues (round-robin, the slice of `sched`).
 */
function* placeVcpus(s: Scenario, w: Workload, host: Vm.Host, vm: Vm.Vm, j: number, sched: Scheduler.Scheduler | undefined) {
  const k = host.kernel
  const targets = vm.vcpus.slice(w.initiators)
  const cpus = new Map<State.VcpuState, Sched.HostCpu>()
  for (const v of vm.vcpus.slice(0, w.initiators)) if (sched !== undefined) cpus.set(v, sched.cpu)
  const prefix = s.vms === 1 ? "" : `${vm.name}.`
  for (const [n, t] of targets.entries()) {
    const hog = new Hog.Hog(targets.length === 1 ? `${prefix}hog` : `${prefix}hog${n}`, w.hogSteps)
    yield* Sim.spawn(hog.name, () => hog.body())
    const cpu = hog.cpu(k, w.preemptPercent)
    cpus.set(t, sched === undefined ? cpu : Sched.sharedWith(sched.cpu, cpu))
  }
  const cpuOf = (v: State.VcpuState) => cpus.get(v) ?? Sched.alone
  return { cpuOf, placement: { cpu: (i: number) => cpuIdOf(s, w, j, i), host: cpuOf, ...(sched !== undefined ? { sched } : {}) } }
}

/** The guest of `pv-flush-race`: initiators' and targets' steps, and the host's exit handling. */
class Race implements Vcpu.Guest {
  readonly initiators: ReadonlyArray<State.VcpuState>
  readonly targets: ReadonlyArray<State.VcpuState>
  readonly finished = Sim.makeWaitQueue("initiators done")
  done = 0
  // Per vCPU, by vcpu_id: an initiator's round and shootdown in progress; a target's work.
  private readonly round: Array<number>
  private readonly shootdown: Array<PvFlush.Guest.Shootdown | undefined>
  private readonly worked: Array<number>
  private readonly burst: Array<number>
  private readonly k: Sim.Kernel

  constructor(
    readonly w: Workload,
    readonly vm: Vm.Vm,
    readonly mm: PvFlush.Guest.GuestMm,
    readonly cpuOf: (v: State.VcpuState) => Sched.HostCpu
  ) {
    this.k = vm.kernel
    this.initiators = vm.vcpus.slice(0, w.initiators)
    this.targets = vm.vcpus.slice(w.initiators)
    this.round = vm.vcpus.map(() => 0)
    this.shootdown = vm.vcpus.map(() => undefined)
    this.worked = vm.vcpus.map(() => 0)
    this.burst = vm.vcpus.map(() => 0)
  }

  *step(v: State.VcpuState): Sim.Gen<Protocol.ExitReason | undefined> {
    return v.vcpu_id < this.w.initiators ? yield* this.initiatorStep(v) : yield* this.targetStep(v)
  }

  private *initiatorStep(v: State.VcpuState): Sim.Gen<Protocol.ExitReason | undefined> {
    const { w, k, mm } = this
    const sd = this.shootdown[v.vcpu_id]
    if (sd !== undefined) {
      const wait = yield* Guest.waitShootdown(mm, v, sd, this.cpuOf(v))
      if (wait === "pause-loop-exit") return ExitReason.PauseInstruction
      if (wait === "spinning") return undefined
      this.shootdown[v.vcpu_id] = undefined
      if (++this.round[v.vcpu_id]! === w.rounds && ++this.done === this.initiators.length) k.wakeAll(this.finished)
      // Other work before the next unmap, 0 to guestSteps - 1 steps, so that initiators are
      // not in lockstep with each other. It does not touch the mm (the initiators are not in
      // each other's flush masks); it reads a target's steal clock, as the guest scheduler's
      // update_rq_clock of another CPU's runqueue does (paravirt_steal_clock), racing with
      // that target's record_steal_time.
      this.burst[v.vcpu_id] = k.randomBetween(0, w.guestSteps)
      return undefined
    }
    if (this.burst[v.vcpu_id]! > 0) {
      this.burst[v.vcpu_id]!--
      yield* Guest.kvm_steal_clock(this.vm, v, this.targets[k.randomBetween(0, this.targets.length)]!)
      return undefined
    }
    if (this.round[v.vcpu_id]! >= w.rounds) {
      yield* Sim.point()
      return ExitReason.Hlt
    }
    // Unmap and remap a page (ptep_clear_flush-like), flush locally, then shoot down.
    const page = (v.vcpu_id + this.round[v.vcpu_id]!) % w.pages
    yield* v.hw.WRITE_ONCE(mm.pte[page]!, mm.frame())
    v.tlb.delete(page)
    const next = yield* Guest.flush_tlb_multi(mm, v, page, this.targets)
    this.shootdown[v.vcpu_id] = next
    if (next.schedYieldTo !== undefined) return Hypercall.hypercall(v, Hypercall.KVM_HC_SCHED_YIELD, next.schedYieldTo.vcpu_id)
    return undefined
  }

  private *targetStep(v: State.VcpuState): Sim.Gen<Protocol.ExitReason | undefined> {
    const { w, k } = this
    if (Lapic.pending(v)) {
      yield* Guest.flush_tlb_func(this.mm, v)
      return undefined
    }
    if (++this.worked[v.vcpu_id]! > w.guestWork) {
      yield* Sim.point()
      return ExitReason.Hlt
    }
    yield* Guest.access(this.mm, v, k.randomBetween(0, w.pages))
    if (++this.burst[v.vcpu_id]! < w.guestSteps) return undefined
    this.burst[v.vcpu_id] = 0
    yield* Guest.kvm_steal_clock(this.vm, v, v)
    // A host timer tick (an external-interrupt exit, at an instruction boundary) or an
    // instruction KVM emulates (port I/O).
    return k.randomBetween(0, 2) === 0 ? ExitReason.ExternalInterrupt : ExitReason.IoInstruction
  }

  *handleExit(v: State.VcpuState, reason: Protocol.ExitReason): Sim.Gen<void> {
    const { vm, k } = this
    if (reason === ExitReason.Hlt) return Vcpu.kvm_emulate_halt(vm, v)
    if (reason !== ExitReason.IoInstruction) return
    // Emulation: translate the guest address, possibly be preempted (not at an instruction
    // boundary), then complete the access with the translation held.
    const page = k.randomBetween(0, this.w.pages)
    const [, walkedAt] = yield* Guest.emulatorTranslate(this.mm, v, page)
    yield* Sched.cond_resched(vm, v, this.cpuOf(v))
    const stale = Inv.pv1Held(k, PvFlush.State.steal.of(v), walkedAt)
    if (stale !== undefined) yield* Sim.fail("PV-1", stale)
    vm.count("emulated")
  }
}

/** VM `j`'s VMM I/O thread: now and then it needs a target's thread in userspace (run_on_cpu). */
function* vmmThread(s: Scenario, w: Workload, host: Vm.Host, vm: Vm.Vm, j: number, targets: ReadonlyArray<State.VcpuState>): Sim.Gen<void> {
  const io = yield* Vm.hostThread(host, s.vms === 1 ? "vmm" : `${vm.name}.vmm`, s.vms * s.vcpusPerVm + j)
  for (let i = 0; i < w.vmmCommands; i++) {
    yield* Sim.point(200_000)
    yield* Thread.command(vm, targets[i % targets.length]!, new VcpuProtocol.RunOnCpu({ workNs: 1_000 }), io)
  }
}

/**
 * `vms` VMs, each with its initiators, targets, host threads and VMM thread; their vCPU threads
 * share the physical CPUs through one scheduler when some CPU has more than one. The run ends
 * when every initiator has made its shootdowns; then userspace tears the VMs down.
 */
export const program = (s: Scenario, sink?: Sink): Sim.Program<Metrics> =>
  function*() {
    const w = s.workload
    if (w.kind !== "pv-flush-race") throw new Error(`not a pv-flush-race scenario: ${w.kind}`)
    const host = yield* Vm.makeHost({ pcpus: s.pcpus, costs: Costs.resolve(s.costs) })
    const k = host.kernel
    const vms: Array<Vm.Vm> = []
    bindSink(sink, host.memory, () => sumStats(vms))
    const races: Array<Race> = []
    const actors: Array<ReadonlyArray<Sim.ActorHandle<number>>> = []
    let sched: Scheduler.Scheduler | undefined
    for (let j = 0; j < s.vms; j++) {
      const vm = Vm.makeVm(host, s.vcpusPerVm, { variant: s.variant, bugs: new Set(s.bugs) })
      vms.push(vm)
      Host.attach(vm)
      const mm = Guest.makeMm(vm, w.pages)
      if (j === 0 && sharesCpus(s, w)) {
        sched = Scheduler.forScenario(k, s.pcpus, s.variant.sched, host.costs)
      }
      const { cpuOf, placement } = yield* placeVcpus(s, w, host, vm, j, sched)
      const race = new Race(w, vm, mm, cpuOf)
      races.push(race)
      actors.push(yield* spawnVcpus(host, vm, race, placement))
      if (w.vmmCommands > 0) yield* Sim.spawn(s.vms === 1 ? "vmm" : `${vm.name}.vmm`, () => vmmThread(s, w, host, vm, j, race.targets))
    }
    for (const race of races) while (race.done < race.initiators.length) yield* Sim.wait(race.finished)
    const user = yield* Vm.hostThread(host, "userspace", s.vms * s.vcpusPerVm)
    for (const [j, vm] of vms.entries()) yield* teardown(vm, user, actors[j]!)
    return sink === undefined ? {} : sink.metrics()
  }
