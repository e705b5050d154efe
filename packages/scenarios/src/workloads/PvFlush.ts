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
import type { Scenario } from "../Scenario.js"
import { Count, Percent } from "../Schemas.js"
import { spawnVcpus, teardown } from "./Requests.js"
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
   * The physical CPU each vCPU thread is pinned to (taskset), by vcpu_id; default vCPU i on CPU
   * i mod pcpus. Threads pinned to one CPU share it through its runqueue.
   */
  pin: Schema.optional(Schema.Array(Count(0, 255)))
})

const { ExitReason } = Protocol
const { Guest, Host, Invariants: Inv } = PvFlush

export const program = (s: Scenario, sink?: { metrics: () => Metrics }): Sim.Program<Metrics> =>
  function*() {
    const w = s.workload
    if (w.kind !== "pv-flush-race") throw new Error(`not a pv-flush-race scenario: ${w.kind}`)
    const costs = Costs.resolve(s.costs)
    const host = yield* Vm.makeHost({ pcpus: s.pcpus, costs })
    const k = host.kernel
    const vm = Vm.makeVm(host, s.vcpusPerVm, { variant: s.variant, bugs: new Set(s.bugs) })
    if (sink !== undefined) sink.metrics = () => ({ ...vm.stats })
    Host.attach(vm)
    const mm = Guest.makeMm(vm, w.pages)
    const initiators = vm.vcpus.slice(0, w.initiators)
    const targets = vm.vcpus.slice(w.initiators)
    // Each target's CPU is shared with a host thread of its own. vCPU threads pinned to one
    // physical CPU (`pin`, or fewer CPUs than vCPUs) share it through a runqueue (round-robin,
    // the cost model's slice).
    const cpuIds = vm.vcpus.map((_, i) => w.pin?.[i] ?? i % s.pcpus)
    const sched = new Set(cpuIds).size < s.vcpusPerVm ? new Scheduler.Scheduler(s.pcpus, Scheduler.slicePolicy(s.variant.sched, costs), k, k.randomBetween(0, 0x7fffffff)) : undefined
    const cpus = new Map<State.VcpuState, Sched.HostCpu>()
    for (const v of initiators) if (sched !== undefined) cpus.set(v, sched.cpu)
    for (const [j, t] of targets.entries()) {
      const hog = new Hog.Hog(targets.length === 1 ? "hog" : `hog${j}`, w.hogSteps)
      yield* Sim.spawn(hog.name, () => hog.body())
      const cpu = hog.cpu(k, w.preemptPercent)
      cpus.set(t, sched === undefined ? cpu : Sched.sharedWith(sched.cpu, cpu))
    }
    const cpuOf = (v: State.VcpuState) => cpus.get(v) ?? Sched.alone
    const finished = Sim.makeWaitQueue("initiators done")
    let done = 0
    // Per vCPU, by vcpu_id: an initiator's round and shootdown in progress; a target's work.
    const round = vm.vcpus.map(() => 0)
    const shootdown: Array<PvFlush.Guest.Shootdown | undefined> = vm.vcpus.map(() => undefined)
    const worked = vm.vcpus.map(() => 0)
    const burst = vm.vcpus.map(() => 0)

    const initiatorStep = function*(v: State.VcpuState): Sim.Gen<Protocol.ExitReason | undefined> {
      const sd = shootdown[v.vcpu_id]
      if (sd !== undefined) {
        const wait = yield* Guest.waitShootdown(mm, v, sd, cpuOf(v))
        if (wait === "pause-loop-exit") return ExitReason.PauseInstruction
        if (wait === "spinning") return undefined
        shootdown[v.vcpu_id] = undefined
        if (++round[v.vcpu_id]! === w.rounds && ++done === initiators.length) k.wakeAll(finished)
        // Other work before the next unmap, 0 to guestSteps - 1 steps, so that initiators are
        // not in lockstep with each other. It does not touch the mm (the initiators are not in
        // each other's flush masks); it reads a target's steal clock, as the guest scheduler's
        // update_rq_clock of another CPU's runqueue does (paravirt_steal_clock), racing with
        // that target's record_steal_time.
        burst[v.vcpu_id] = k.randomBetween(0, w.guestSteps)
        return undefined
      }
      if (burst[v.vcpu_id]! > 0) {
        burst[v.vcpu_id]!--
        yield* Guest.kvm_steal_clock(vm, v, targets[k.randomBetween(0, targets.length)]!)
        return undefined
      }
      if (round[v.vcpu_id]! >= w.rounds) {
        yield* Sim.point()
        return ExitReason.Hlt
      }
      // Unmap and remap a page (ptep_clear_flush-like), flush locally, then shoot down.
      const page = (v.vcpu_id + round[v.vcpu_id]!) % w.pages
      yield* v.hw.WRITE_ONCE(mm.pte[page]!, mm.frame())
      v.tlb.delete(page)
      const next = yield* Guest.flush_tlb_multi(mm, v, page, targets)
      shootdown[v.vcpu_id] = next
      if (next.schedYieldTo !== undefined) return Hypercall.hypercall(v, Hypercall.KVM_HC_SCHED_YIELD, next.schedYieldTo.vcpu_id)
      return undefined
    }

    const targetStep = function*(v: State.VcpuState): Sim.Gen<Protocol.ExitReason | undefined> {
      if (Lapic.pending(v)) {
        yield* Guest.flush_tlb_func(mm, v)
        return undefined
      }
      if (++worked[v.vcpu_id]! > w.guestWork) {
        yield* Sim.point()
        return ExitReason.Hlt
      }
      yield* Guest.access(mm, v, k.randomBetween(0, w.pages))
      if (++burst[v.vcpu_id]! < w.guestSteps) return undefined
      burst[v.vcpu_id] = 0
      yield* Guest.kvm_steal_clock(vm, v, v)
      // A host timer tick (an external-interrupt exit, at an instruction boundary) or an
      // instruction KVM emulates (port I/O).
      return k.randomBetween(0, 2) === 0 ? ExitReason.ExternalInterrupt : ExitReason.IoInstruction
    }

    const guest: Vcpu.Guest = {
      *step(v) {
        return v.vcpu_id < w.initiators ? yield* initiatorStep(v) : yield* targetStep(v)
      },
      *handleExit(v, reason) {
        if (reason === ExitReason.Hlt) return Vcpu.kvm_emulate_halt(vm, v)
        if (reason !== ExitReason.IoInstruction) return
        // Emulation: translate the guest address, possibly be preempted (not at an
        // instruction boundary), then complete the access with the translation held.
        const page = k.randomBetween(0, w.pages)
        const [, walkedAt] = yield* Guest.emulatorTranslate(mm, v, page)
        yield* Sched.cond_resched(vm, v, cpuOf(v))
        const stale = Inv.pv1Held(k, PvFlush.State.steal.of(v), walkedAt)
        if (stale !== undefined) yield* Sim.fail("PV-1", stale)
        vm.count("emulated")
      }
    }
    const actors = yield* spawnVcpus(host, vm, guest, {
      cpu: (i) => cpuIds[i]!,
      host: cpuOf,
      ...(sched !== undefined ? { sched } : {})
    })
    // The VMM's I/O thread: now and then it needs a target's thread in userspace (run_on_cpu).
    if (w.vmmCommands > 0) {
      yield* Sim.spawn("vmm", function*() {
        const io = yield* Vm.hostThread(host, "vmm", s.vcpusPerVm)
        for (let i = 0; i < w.vmmCommands; i++) {
          yield* Sim.point(200_000)
          yield* Thread.command(vm, targets[i % targets.length]!, new VcpuProtocol.RunOnCpu({ workNs: 1_000 }), io)
        }
      })
    }
    while (done < initiators.length) yield* Sim.wait(finished)
    const user = yield* Vm.hostThread(host, "userspace", s.vcpusPerVm)
    yield* teardown(vm, user, actors)
    return sink === undefined ? {} : sink.metrics()
  }
