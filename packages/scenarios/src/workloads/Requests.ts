/**
 * Workloads of mechanism A (spec §1): `request-race` — requester threads zap a gfn, flush
 * remote TLBs and kick vCPUs with events while the vCPUs enter and leave the guest, access
 * memory through their TLBs and halt; `lockless-walk` — a zapper against vCPUs whose MMIO exits
 * walk the shadow page tables locklessly. The vCPU threads run on `pcpus` physical CPUs, round-robin
 * across the VMs; with fewer CPUs than vCPUs, the threads pinned to one CPU share it through its
 * runqueue. The host threads (requesters, the zapper, userspace) each have a CPU of their own,
 * numbered after the vCPUs' CPUs and not counted in `pcpus`.
 */
import { Costs, Protocol, Requests, Sched, Scheduler, ShadowMmu, Thread, Variants, Vcpu, VcpuProtocol, Vm } from "@kvmlab/kvm"
import { Sim } from "@kvmlab/sim"
import { Schema } from "effect"
import { bindSink, type Sink } from "../Mechanism.js"
import type { Scenario } from "../Scenario.js"
import { Count, Percent } from "../Schemas.js"

export const RequestRace = Schema.Struct({
  kind: Schema.Literal("request-race"),
  /** Host threads each zapping a gfn and flushing remote TLBs, then kicking a vCPU with an event. */
  requesters: Count(1, 16),
  rounds: Count(1, 10_000),
  /** Guest-mapped gfns, each through its own shadow page. */
  gfns: Count(1, 64),
  /** Guest accesses per guest-mode interval before a voluntary exit. */
  guestSteps: Count(1, 1000),
  /** Guest steps each vCPU executes in all; then it halts for good (runs end, and PCT's run length is bounded). */
  guestWork: Count(1, 1_000_000),
  /** Share of voluntary exits that are HLT (the rest are port I/O). */
  haltPercent: Percent,
  /** Whether requesters follow each flush with KVM_REQ_EVENT and kvm_vcpu_kick. */
  kicks: Schema.Boolean
})

export const LocklessWalk = Schema.Struct({
  kind: Schema.Literal("lockless-walk"),
  rounds: Count(1, 10_000),
  gfns: Count(1, 64),
  guestSteps: Count(1, 1000),
  guestWork: Count(1, 1_000_000),
  /** Share of guest steps that exit for an MMIO lookup (a lockless walk). */
  mmioPercent: Percent
})

/** What a run of a workload reports: counters by name. */
export type Metrics = Record<string, number>

const { ExitReason } = Protocol

/**
 * The guest of both workloads: accesses through the TLB, voluntary exits, MMIO exits.
 *
 * A class, not an object literal of generator methods: V8 gives every generator function object
 * a map of its own when it is first called, and that map (old space, collected only by a full GC)
 * keeps the function and what it closes over alive. A generator closure made per run so kept
 * every run's VM, memory and actors alive through the minor GCs; methods on a prototype are made
 * once. The same holds for the actors' programs below: module-level generators behind an arrow.
 */
class Guest implements Vcpu.Guest {
  private readonly k: Sim.Kernel
  // Per vCPU, by vcpu_id: steps since the last voluntary exit, steps in all, the gfn of an MMIO exit.
  private readonly steps: Array<number>
  private readonly work: Array<number>
  private readonly mmioGfn: Array<number>
  constructor(
    private readonly vm: Vm.Vm,
    private readonly mmu: ShadowMmu.ShadowMmu,
    private readonly o: { readonly guestSteps: number; readonly guestWork: number; readonly haltPercent: number; readonly mmioPercent: number }
  ) {
    this.k = vm.kernel
    this.steps = vm.vcpus.map(() => 0)
    this.work = vm.vcpus.map(() => 0)
    this.mmioGfn = vm.vcpus.map(() => 0)
  }
  *step(v: Vm.Vm["vcpus"][number]): Sim.Gen<Protocol.ExitReason | undefined> {
    const { k, vm, mmu, o } = this
    const worked = ++this.work[v.vcpu_id]!
    if (worked > o.guestWork) {
      // The guest's work is done: it idles in HLT until teardown.
      yield* Sim.point(vm.costs.guestAccessNs)
      return ExitReason.Hlt
    }
    const done = ++this.steps[v.vcpu_id]!
    const gfn = k.randomBetween(0, mmu.root.length)
    if (o.mmioPercent > 0 && k.randomBetween(0, 100) < o.mmioPercent) {
      this.mmioGfn[v.vcpu_id] = gfn
      yield* Sim.point(vm.costs.guestAccessNs)
      return ExitReason.EptMisconfig
    }
    if (!(yield* ShadowMmu.guestAccess(mmu, v, gfn))) return ExitReason.EptViolation
    if (done < o.guestSteps) return undefined
    this.steps[v.vcpu_id] = 0
    return k.randomBetween(0, 100) < o.haltPercent ? ExitReason.Hlt : ExitReason.IoInstruction
  }
  *handleExit(v: Vm.Vm["vcpus"][number], reason: Protocol.ExitReason): Sim.Gen<void> {
    if (reason === ExitReason.Hlt) Vcpu.kvm_emulate_halt(this.vm, v)
    else if (reason === ExitReason.EptMisconfig) {
      // handle_mmio_page_fault -> get_mmio_spte: a lockless walk.
      yield* ShadowMmu.walkLockless(this.mmu, v, this.mmioGfn[v.vcpu_id]!)
    }
  }
}

/** Where a VM's vCPU threads run. */
export interface Placement {
  /** The physical CPU vCPU `i` is pinned to. */
  readonly cpu: (i: number) => number
  /** Who else wants the vCPU thread's CPU. */
  readonly host: (v: Vm.Vm["vcpus"][number]) => Sched.HostCpu
  /** The runqueues, when vCPU threads share CPUs: each thread waits for its turn to start. */
  readonly sched?: Scheduler.Scheduler
}

/** Each vCPU thread on a CPU of its own, from `firstCpu` on, with nobody else wanting it. */
export const ownCpus = (firstCpu: number): Placement => ({ cpu: (i) => firstCpu + i, host: () => Sched.alone })

/** Spawns a VM's vCPU threads (each with its VMM command mailbox) where `placement` says. */
export function* spawnVcpus(host: Vm.Host, vm: Vm.Vm, guest: Vcpu.Guest, placement: Placement): Sim.Gen<Array<Sim.ActorHandle<number>>> {
  const actors: Array<Sim.ActorHandle<number>> = []
  for (const [i, v] of vm.vcpus.entries()) {
    Thread.makeMailbox(host.kernel, v, VcpuProtocol.VCPU_MAILBOX_CAPACITY)
    actors.push(yield* Sim.spawn(v.name, () => vcpuThread(host, vm, v, i, guest, placement)))
  }
  return actors
}

/** The vCPU thread `i` of `vm`: its hardware thread, its CPU, then `vcpu_thread` until it exits. */
function* vcpuThread(host: Vm.Host, vm: Vm.Vm, v: Vm.Vm["vcpus"][number], i: number, guest: Vcpu.Guest, placement: Placement): Sim.Gen<number> {
  v.hw = yield* host.memory.attach(v.name)
  v.cpu = placement.cpu(i)
  v.pcpu = host.pcpus[v.cpu]!
  const cpu = placement.host(v)
  if (placement.sched !== undefined) yield* placement.sched.acquire(v)
  const r = yield* Thread.vcpu_thread(vm, v, guest, cpu)
  yield* Sched.exit_thread(v, cpu)
  return r
}

/** VM teardown from userspace: each vCPU thread is told to stop (a command, then a signal), and joined. */
export function* teardown(vm: Vm.Vm, t: Vm.HostThread, actors: ReadonlyArray<Sim.ActorHandle<number>>): Sim.Gen<void> {
  for (const v of vm.vcpus) yield* Thread.command(vm, v, VcpuProtocol.stop, t)
  for (const a of actors) yield* Sim.join(a)
}

export const switchesOf = (s: Scenario): Variants.Switches => ({ variant: s.variant, bugs: new Set(s.bugs) })

/**
 * Where VM j's vCPU threads run: vCPU i on CPU (j*vcpusPerVm + i) % pcpus. With a CPU for each
 * vCPU nobody else wants it (no scheduler, and no draw for its seed: the run is the one of a shape
 * with exactly as many CPUs); with fewer, the threads pinned to a CPU share it through one
 * scheduler's runqueues (round-robin, the slice of `sched`).
 */
export const placeVcpus = (s: Scenario, host: Vm.Host): (j: number) => Placement => {
  if (s.pcpus >= s.vms * s.vcpusPerVm) return (j) => ownCpus(j * s.vcpusPerVm)
  const k = host.kernel
  const sched = Scheduler.forScenario(k, s.pcpus, s.variant.sched, host.costs)
  return (j) => ({ cpu: (i) => (j * s.vcpusPerVm + i) % s.pcpus, host: () => sched.cpu, sched })
}

/**
 * Builds the program of a `request-race` or `lockless-walk` scenario: `vms` VMs, each with its
 * vCPUs and its requester threads (or zapper). The vCPU threads run on the first physical CPUs
 * (`placeVcpus`: VM j's vCPUs from CPU j*vcpusPerVm on, wrapping around at `pcpus`); every VM's
 * host threads follow, each on a CPU of its own, then userspace's.
 */
export const program = (s: Scenario, sink?: Sink): Sim.Program<Metrics> =>
  function*() {
    const w = s.workload
    if (w.kind !== "request-race" && w.kind !== "lockless-walk") throw new Error(`${w.kind} is not a mechanism A workload`)
    const requesters = w.kind === "request-race" ? w.requesters : 1
    const vcpus = s.vcpusPerVm
    // The vCPU threads' CPUs; the host threads' CPUs are numbered after them.
    const cpus = Math.min(s.pcpus, s.vms * vcpus)
    const host = yield* Vm.makeHost({ pcpus: cpus, costs: Costs.resolve(s.costs) })
    const placement = placeVcpus(s, host)
    const vms: Array<Vm.Vm> = []
    bindSink(sink, host.memory, () => sumStats(vms))
    const actors: Array<Sim.ActorHandle<number>> = []
    const threads: Array<Sim.ActorHandle<void>> = []
    for (let j = 0; j < s.vms; j++) {
      const vm = Vm.makeVm(host, vcpus, switchesOf(s))
      vms.push(vm)
      const mmu = ShadowMmu.make(vm, w.gfns)
      const guest = new Guest(vm, mmu, {
        guestSteps: w.guestSteps,
        guestWork: w.guestWork,
        haltPercent: w.kind === "request-race" ? w.haltPercent : 0,
        mmioPercent: w.kind === "lockless-walk" ? w.mmioPercent : 0
      })
      actors.push(...yield* spawnVcpus(host, vm, guest, placement(j)))
      for (let r = 0; r < requesters; r++) {
        const base = w.kind === "request-race" ? `requester${r}` : "zapper"
        const name = s.vms === 1 ? base : `${vm.name}.${base}`
        const cpu = cpus + j * requesters + r
        threads.push(yield* Sim.spawn(name, () => requester(host, vm, mmu, w, name, cpu, r)))
      }
    }
    for (const a of threads) yield* Sim.join(a)
    const user = yield* Vm.hostThread(host, "userspace", cpus + s.vms * requesters)
    for (const vm of vms) yield* teardown(vm, user, actors.splice(0, vcpus))
    return sink === undefined ? {} : sink.metrics()
  }

/** A requester (request-race) or the zapper (lockless-walk) of `vm`, on CPU `cpu`. */
function* requester(host: Vm.Host, vm: Vm.Vm, mmu: ShadowMmu.ShadowMmu, w: typeof RequestRace.Type | typeof LocklessWalk.Type, name: string, cpu: number, r: number): Sim.Gen<void> {
  const k = host.kernel
  const t = yield* Vm.hostThread(host, name, cpu)
  for (let round = 0; round < w.rounds; round++) {
    yield* ShadowMmu.zapAndRemap(mmu, t, (r + round) % w.gfns)
    if (w.kind === "request-race" && w.kicks) {
      const target = vm.vcpus[k.randomBetween(0, vm.vcpus.length)]!
      yield* Requests.kvm_make_request_and_kick(vm, Protocol.KVM_REQ_EVENT, target, t)
    }
  }
}

/** The counters of several VMs, summed by name (one VM: its own). */
export const sumStats = (vms: ReadonlyArray<Vm.Vm>): Metrics => {
  const out: Record<string, number> = {}
  for (const vm of vms) for (const [name, n] of Object.entries(vm.stats)) out[name] = (out[name] ?? 0) + n
  return out
}

