/**
 * `pv-flush-race` (spec §2, thread 1): a guest initiator (vcpu0) changes page-table entries and
 * shoots down the other vCPU's TLB with `flush_tlb_multi`, while the target (vcpu1) runs guest
 * code, takes timer-tick and emulation exits, reads its steal clock, and is preempted by a host
 * thread sharing its physical CPU — at an instruction boundary (after a timer tick) or in the
 * middle of emulating an instruction. With `flush=pv`, a preempted target is skipped through its
 * steal-time byte; `record_steal_time` then flushes before the guest runs again.
 */
import { Costs, Hog, Protocol, PvFlush, Sched, Thread, Vcpu, VcpuProtocol, Vm } from "@kvmlab/kvm"
import { Sim } from "@kvmlab/sim"
import { Schema } from "effect"
import type { Scenario } from "../Scenario.js"
import { Count, Percent } from "../Schemas.js"
import { spawnVcpus, teardown } from "./Requests.js"
import type { Metrics } from "./Requests.js"

/** A guest TLB shootdown against a target that is preempted and resumed (§2.4-2.6, thread 1). */
export const PvFlushRace = Schema.Struct({
  kind: Schema.Literal("pv-flush-race"),
  /** Shootdowns the initiator makes. */
  rounds: Count(1, 10_000),
  /** Pages of the guest mm. */
  pages: Count(1, 64),
  /** Target guest steps between exits. */
  guestSteps: Count(1, 1000),
  /** Target guest steps in all; then it halts. */
  guestWork: Count(1, 1_000_000),
  /** Chance, at each preemption point of the target's thread, that the host preempts it. */
  preemptPercent: Percent,
  /** Most steps the competing host thread runs when it gets the CPU. */
  hogSteps: Count(1, 1000),
  /**
   * Commands the VMM's I/O thread sends the target's vCPU thread (QEMU's `run_on_cpu`): each
   * signals it out of KVM_RUN to userspace and back, a voluntary `vcpu_put` (default 0).
   */
  vmmCommands: Schema.optionalWith(Count(0, 1000), { default: () => 0 })
})

const { ExitReason } = Protocol
const { Guest, Host, Invariants: Inv } = PvFlush

export const program = (s: Scenario, sink?: { metrics: () => Metrics }): Sim.Program<Metrics> =>
  function*() {
    const w = s.workload
    if (w.kind !== "pv-flush-race") throw new Error(`not a pv-flush-race scenario: ${w.kind}`)
    const host = yield* Vm.makeHost({ pcpus: 2, costs: Costs.resolve(s.costs) })
    const k = host.kernel
    const vm = Vm.makeVm(host, 2, { variant: s.variant, bugs: new Set(s.bugs) })
    if (sink !== undefined) sink.metrics = () => ({ ...vm.stats })
    Host.attach(vm)
    const mm = Guest.makeMm(vm, w.pages)
    const [initiator, target] = [vm.vcpus[0]!, vm.vcpus[1]!]
    const hog = new Hog.Hog("hog", w.hogSteps)
    yield* Sim.spawn("hog", () => hog.body())
    // The target's CPU is shared with the hog; the initiator's is its own.
    const targetCpu = hog.cpu(k, w.preemptPercent)
    const finished = Sim.makeWaitQueue("initiator done")
    let round = 0
    let shootdown: PvFlush.Guest.Shootdown | undefined
    let worked = 0
    let burst = 0

    const initiatorStep = function*(v: typeof initiator): Sim.Gen<Protocol.ExitReason | undefined> {
      if (shootdown !== undefined) {
        if (!(yield* Guest.waitShootdown(mm, v, shootdown))) return undefined
        shootdown = undefined
        round++
        if (round === w.rounds) k.wakeAll(finished)
        return undefined
      }
      if (round >= w.rounds) {
        yield* Sim.point()
        return ExitReason.Hlt
      }
      // Unmap and remap a page (ptep_clear_flush-like), flush locally, then shoot down.
      const page = round % w.pages
      yield* v.hw.WRITE_ONCE(mm.pte[page]!, mm.frame())
      v.tlb.delete(page)
      shootdown = yield* Guest.flush_tlb_multi(mm, v, page, [target])
      return undefined
    }

    const targetStep = function*(v: typeof target): Sim.Gen<Protocol.ExitReason | undefined> {
      if (PvFlush.State.steal.of(v).injected.length > 0) {
        yield* Guest.flush_tlb_func(vm, v)
        return undefined
      }
      if (++worked > w.guestWork) {
        yield* Sim.point()
        return ExitReason.Hlt
      }
      yield* Guest.access(mm, v, k.randomBetween(0, w.pages))
      if (++burst < w.guestSteps) return undefined
      burst = 0
      yield* Guest.kvm_steal_clock(vm, v, v)
      // A host timer tick (an external-interrupt exit, at an instruction boundary) or an
      // instruction KVM emulates (port I/O).
      return k.randomBetween(0, 2) === 0 ? ExitReason.ExternalInterrupt : ExitReason.IoInstruction
    }

    const guest: Vcpu.Guest = {
      *step(v) {
        return v === initiator ? yield* initiatorStep(v) : yield* targetStep(v)
      },
      *handleExit(v, reason) {
        if (reason === ExitReason.Hlt) return Vcpu.kvm_emulate_halt(vm, v)
        if (reason !== ExitReason.IoInstruction) return
        // Emulation: translate the guest address, possibly be preempted (not at an
        // instruction boundary), then complete the access with the translation held.
        const page = k.randomBetween(0, w.pages)
        const [, walkedAt] = yield* Guest.emulatorTranslate(mm, v, page)
        if (v === target) yield* Sched.cond_resched(vm, v, targetCpu)
        const stale = Inv.pv1Held(k, PvFlush.State.steal.of(v), walkedAt)
        if (stale !== undefined) yield* Sim.fail("PV-1", stale)
        vm.count("emulated")
      }
    }
    const actors = yield* spawnVcpus(host, vm, guest, 0, (v) => (v === target ? targetCpu : Sched.alone))
    // The VMM's I/O thread: now and then it needs the target's thread in userspace (run_on_cpu).
    if (w.vmmCommands > 0) {
      yield* Sim.spawn("vmm", function*() {
        const io = yield* Vm.hostThread(host, "vmm", 2)
        for (let i = 0; i < w.vmmCommands; i++) {
          yield* Sim.point(200_000)
          yield* Thread.command(vm, target, new VcpuProtocol.RunOnCpu({ workNs: 1_000 }), io)
        }
      })
    }
    while (round < w.rounds) yield* Sim.wait(finished)
    const user = yield* Vm.hostThread(host, "userspace", 2)
    yield* teardown(vm, user, actors)
    return sink === undefined ? {} : sink.metrics()
  }
