/**
 * A VM of the model: its vCPUs, the physical CPUs they are loaded on, the shared memory, the
 * switches of the run, the cost table and the statistics (`kvm->stat`, `vcpu->stat`, plus what
 * the scenarios report). Host threads that are not vCPUs (an MMU zapper, a notifier, a clock
 * worker) are `HostThread`s: a memory thread and the CPU they run on.
 */
import { Cpu, Memory } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import { Effect } from "effect"
import type { Costs } from "./Costs.js"
import { Pcpu } from "./host/Pcpu.js"
import { VcpuState } from "./requests/State.js"
import type { Bug, Switches } from "./Variants.js"

/** A host thread that makes requests: its memory thread and `smp_processor_id()`. */
export interface HostThread {
  readonly name: string
  readonly hw: Cpu.Cpu
  readonly cpu: number
}

/** Counters, by name, summed over the run. */
export type Stats = Record<string, number>

export class Vm {
  readonly vcpus: Array<VcpuState> = []
  /** Ghost (TLB-1): the begin step of the latest `kvm_flush_remote_tlbs` that has returned. */
  completedFlushBegin = -1
  readonly stats: Stats = {}
  /** Samples for percentiles (e.g. shootdown latencies), by name. */
  readonly samples: Record<string, Array<number>> = {}

  constructor(
    readonly id: number,
    readonly name: string,
    readonly memory: Memory.Memory,
    readonly kernel: Sim.Kernel,
    readonly switches: Switches,
    readonly costs: Costs
  ) {}

  bug(b: Bug): boolean {
    return this.switches.bugs.has(b)
  }

  count(stat: string, n = 1): void {
    this.stats[stat] = (this.stats[stat] ?? 0) + n
  }

  sample(name: string, x: number): void {
    ;(this.samples[name] ??= []).push(x)
  }
}

/** The machine: physical CPUs shared by every VM and host thread, and the memory. */
export class Host {
  readonly pcpus: Array<Pcpu> = []
  readonly vms: Array<Vm> = []
  constructor(readonly memory: Memory.Memory, readonly kernel: Sim.Kernel, readonly costs: Costs) {}
}

export interface HostOptions {
  readonly pcpus: number
  readonly costs: Costs
  readonly model?: "tso" | "sc"
}

/** Creates the memory and the physical CPUs, each with its local APIC actor. */
export const makeHost = (o: HostOptions): Effect.Effect<Host, never, Sim.SimKernel> =>
  Effect.gen(function*() {
    const memory = yield* Memory.make({ model: o.model ?? "tso", drainLatencyNs: o.costs.drainNs })
    const kernel = yield* Sim.SimKernel
    const host = new Host(memory, kernel, o.costs)
    for (let i = 0; i < o.pcpus; i++) {
      const p = new Pcpu(i, `pcpu${i}`, o.costs.ipiDeliveryNs)
      host.pcpus.push(p)
      kernel.event("pcpu.online", [i])
      yield* Sim.spawn(`pcpu${i}.apic`, p.apic)
    }
    return host
  })

/** Creates a VM with `vcpus` vCPUs; their `mode` and `requests` live in the host's memory. */
export const makeVm = (host: Host, vcpus: number, switches: Switches): Effect.Effect<Vm> =>
  Effect.gen(function*() {
    const id = host.vms.length
    const vm = new Vm(id, `vm${id}`, host.memory, host.kernel, switches, host.costs)
    for (let i = 0; i < vcpus; i++) {
      const name = host.vms.length === 0 && vcpus > 0 ? `vcpu${i}` : `vm${id}.vcpu${i}`
      const mode = yield* host.memory.alloc(`${name}.mode`)
      const requests = yield* host.memory.alloc(`${name}.requests`)
      vm.vcpus.push(new VcpuState(i, name, mode, requests))
    }
    host.vms.push(vm)
    return vm
  })

/** Attaches a host thread (not a vCPU) running on physical CPU `cpu`. */
export const hostThread = (host: Host, name: string, cpu: number): Effect.Effect<HostThread, never, Sim.SimKernel> =>
  Effect.map(host.memory.attach(name), (hw) => ({ name, hw, cpu }))
