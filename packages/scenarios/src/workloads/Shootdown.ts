/**
 * `tlb-shootdown`, after ebizzy -M (spec §6 N1): V VMs of M vCPUs on P physical CPUs, every vCPU
 * a guest thread of one process that processes records (`workNs` of guest work each) and now
 * and then unmaps a page — a page-table change and a `flush_tlb_multi` to every other vCPU of its
 * VM. The host scheduler round-robins the vCPU threads pinned to each physical CPU with the cost
 * model's time slice, so V > P/M overcommits. Reports guest work per virtual second, shootdown
 * latency, IPIs sent and avoided, flushes and time spent waiting. Runs under `timed`.
 */
import { Costs, Hypercall, Lapic, Protocol, PvFlush, Scheduler, State, Vcpu, Vm } from "@kvmlab/kvm"
import { Sim } from "@kvmlab/sim"
import { Schema } from "effect"
import { bindSink, type Sink } from "../Mechanism.js"
import type { Scenario } from "../Scenario.js"
import { percentile } from "../Metrics.js"
import { Count } from "../Schemas.js"
import type { Metrics } from "./Requests.js"

/** ebizzy -M-like guest threads that unmap memory, on an overcommitted host (§6 N1, thread 1). */
export const TlbShootdown = Schema.Struct({
  kind: Schema.Literal("tlb-shootdown"),
  /** Pages of each guest process. */
  pages: Count(1, 4096),
  /** Guest work per record, in virtual ns. */
  workNs: Count(100, 100_000_000),
  /** Chance per record, in 1/10,000, that the thread unmaps a page (a shootdown). */
  shootdownPerTenThousand: Count(0, 10_000)
})

const { Guest, Host } = PvFlush
const { ExitReason } = Protocol

/** The run's metrics, summed over the VMs. */
const metricsOf = (vms: ReadonlyArray<Vm.Vm>, nowNs: number): Metrics => {
  const sum: Metrics = {}
  for (const vm of vms) for (const [k, x] of Object.entries(vm.stats)) sum[k] = (sum[k] ?? 0) + x
  const waits = vms.flatMap((vm) => vm.samples["shootdown_wait_ns"] ?? [])
  const shootdowns = sum["shootdowns"] ?? 0
  const seconds = nowNs / 1e9
  return {
    ...sum,
    records_per_second: seconds > 0 ? Math.round((sum["records"] ?? 0) / seconds) : 0,
    shootdown_wait_p50_ns: percentile(waits, 50),
    shootdown_wait_p99_ns: percentile(waits, 99),
    shootdown_wait_max_ns: waits.length === 0 ? 0 : Math.max(...waits),
    ipis_per_shootdown: shootdowns > 0 ? Number(((sum["guest_ipis_sent"] ?? 0) / shootdowns).toFixed(2)) : 0,
    vm_exits_per_shootdown: shootdowns > 0 ? Number(((sum["exits_ipi"] ?? 0) / shootdowns).toFixed(2)) : 0
  }
}

type Workload = typeof TlbShootdown.Type

/**
 * Where the vCPU threads run: pinned round-robin to the physical CPUs, counting on from `first`
 * across the VMs; returns where the next VM's vCPUs start.
 */
const pinVcpus = (s: Scenario, host: Vm.Host, vm: Vm.Vm, first: number): number => {
  let next = first
  for (const v of vm.vcpus) {
    v.cpu = next++ % s.pcpus
    v.pcpu = host.pcpus[v.cpu]!
  }
  return next
}

/** The guest of `tlb-shootdown`: one ebizzy process per VM, a thread on each vCPU. */
class Ebizzy implements Vcpu.Guest {
  // Per vCPU, by vcpu_id: the shootdown its munmap waits for.
  private readonly pending = new Map<number, PvFlush.Guest.Shootdown>()
  // Per vCPU: the other vCPUs of its VM, the targets of its shootdowns.
  private readonly others: Map<State.VcpuState, Array<State.VcpuState>>

  constructor(
    readonly w: Workload,
    readonly vm: Vm.Vm,
    readonly mm: PvFlush.Guest.GuestMm,
    readonly k: Sim.Kernel,
    readonly sched: Scheduler.Scheduler
  ) {
    this.others = new Map(vm.vcpus.map((v) => [v, vm.vcpus.filter((o) => o !== v)]))
  }

  *step(v: State.VcpuState): Sim.Gen<Protocol.ExitReason | undefined> {
    const { w, vm, mm, k, pending } = this
    if (Lapic.pending(v)) {
      // The interrupt handler runs in guest kernel mode, then returns to where it was.
      const cpl = v.cpl
      v.cpl = 0
      yield* Guest.flush_tlb_func(mm, v)
      v.cpl = cpl
      return undefined
    }
    const sd = pending.get(v.vcpu_id)
    if (sd !== undefined) {
      const wait = yield* Guest.waitShootdown(mm, v, sd, this.sched.cpu)
      if (wait === "pause-loop-exit") return ExitReason.PauseInstruction
      if (wait === "done") {
        pending.delete(v.vcpu_id)
        v.cpl = 3 // munmap returns to the process
      }
      return undefined
    }
    // One ebizzy record: guest work in user mode touching the process's memory.
    v.cpl = 3
    yield* Sim.point(w.workNs)
    yield* Guest.access(mm, v, k.randomBetween(0, w.pages))
    vm.count("records")
    if (k.randomBetween(0, 10_000) < w.shootdownPerTenThousand) {
      // munmap (in the guest kernel): clear the PTE (a new frame stands for the next
      // mapping), flush locally, then every other CPU running the mm.
      v.cpl = 0
      const page = k.randomBetween(0, w.pages)
      yield* v.hw.WRITE_ONCE(mm.pte[page]!, mm.frame())
      v.tlb.delete(page)
      const sd = yield* Guest.flush_tlb_multi(mm, v, page, this.others.get(v)!)
      pending.set(v.vcpu_id, sd)
      if (sd.schedYieldTo !== undefined) return Hypercall.hypercall(v, Hypercall.KVM_HC_SCHED_YIELD, sd.schedYieldTo.vcpu_id)
    }
    return undefined
  }

  *handleExit(): Sim.Gen<void> {}
}

/** The vCPU threads of a VM: each attaches to memory, waits its turn on its physical CPU, then runs KVM_RUN. */
function* spawnVcpuThreads(host: Vm.Host, vm: Vm.Vm, guest: Vcpu.Guest, sched: Scheduler.Scheduler) {
  for (const v of vm.vcpus) yield* Sim.spawn(v.name, () => vcpuThread(host, vm, v, guest, sched))
}

/** One vCPU thread (module-level, not a closure per run: see `Requests.ts`'s `Guest`). */
function* vcpuThread(host: Vm.Host, vm: Vm.Vm, v: Vm.Vm["vcpus"][number], guest: Vcpu.Guest, sched: Scheduler.Scheduler): Sim.Gen<number> {
  v.hw = yield* host.memory.attach(v.name)
  yield* sched.acquire(v)
  return yield* Vcpu.vcpu_run(vm, v, guest, sched.cpu)
}

/** The host and its scheduler, then each VM: its vCPUs pinned, its ebizzy guest, its vCPU threads; run to durationNs. */
export const program = (s: Scenario, sink?: Sink): Sim.Program<Metrics> =>
  function*() {
    const w = s.workload
    if (w.kind !== "tlb-shootdown") throw new Error(`not a tlb-shootdown scenario: ${w.kind}`)
    const costs = Costs.resolve(s.costs)
    const host = yield* Vm.makeHost({ pcpus: s.pcpus, costs })
    const k = host.kernel
    const sched = Scheduler.forScenario(k, s.pcpus, s.variant.sched, costs)
    const vms: Array<Vm.Vm> = []
    bindSink(sink, host.memory, () => metricsOf(vms, k.now))
    let next = 0
    for (let i = 0; i < s.vms; i++) {
      const vm = Vm.makeVm(host, s.vcpusPerVm, { variant: s.variant, bugs: new Set(s.bugs) })
      vms.push(vm)
      Host.attach(vm)
      next = pinVcpus(s, host, vm, next)
      const guest = new Ebizzy(w, vm, Guest.makeMm(vm, w.pages), k, sched)
      yield* spawnVcpuThreads(host, vm, guest, sched)
    }
    // The run ends at durationNs (a time bound), with the metrics read through the sink.
    yield* Sim.wait(Sim.makeWaitQueue("until durationNs"))
    return sink === undefined ? {} : sink.metrics()
  }
