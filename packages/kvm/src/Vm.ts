/**
 * A VM of the model: its vCPUs, the physical CPUs they are loaded on, the shared memory, the
 * switches of the run, the cost table and the statistics (`kvm->stat`, `vcpu->stat`, plus what
 * the scenarios report). Host threads that are not vCPUs (an MMU zapper, a notifier, a clock
 * worker) are `HostThread`s: a memory thread and the CPU they run on.
 */
import { Cpu, Memory } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import type { Costs } from "./Costs.js"
import { Pcpu } from "./host/Pcpu.js"
import { requests } from "./requests/Extension.js"
import type { Bug, Switches } from "./Variants.js"
import { type Extension, type Hooks, hooksOf, type RequestHandler } from "./vcpu/Extension.js"
import type { Srcu } from "./vcpu/Srcu.js"
import { VcpuState, vcpuPath } from "./vcpu/State.js"
import { requestHandlers } from "./vcpu/Vcpu.js"

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
  /** The mechanisms attached to the vCPU thread, in order (mechanism A's first). */
  readonly extensions: Array<Extension> = []
  private handlers: ReadonlyArray<RequestHandler> | undefined = undefined
  private hookLists: Hooks | undefined = undefined
  /** `kvm->srcu`, when the VM publishes data under SRCU (memslots); the spine then takes it as the kernel does. */
  srcu: Srcu | undefined = undefined
  /** `kvm->last_boosted_vcpu`: where `kvm_vcpu_on_spin` starts its round-robin. */
  last_boosted_vcpu = -1
  /** Ghost (TLB-1): the begin step of the latest `kvm_flush_remote_tlbs` that has returned. */
  completedFlushBegin = -1
  /** The counters, in the order they were first counted (a Map: cheap to bump at every step). */
  private readonly counters = new Map<string, number>()
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

  /** Attaches a mechanism's extension to every vCPU thread of the VM. */
  attach(e: Extension): void {
    this.extensions.push(e)
    this.handlers = undefined
    this.hookLists = undefined
  }

  /** The extensions' hooks, hook by hook, without the ones that do nothing. */
  get hooks(): Hooks {
    return (this.hookLists ??= hooksOf(this.extensions))
  }

  /** The requests `vcpu_enter_guest` checks, in the kernel's order. */
  get requestHandlers(): ReadonlyArray<RequestHandler> {
    return (this.handlers ??= requestHandlers(this))
  }

  bug(b: Bug): boolean {
    return this.switches.bugs.has(b)
  }

  count(stat: string, n = 1): void {
    this.counters.set(stat, (this.counters.get(stat) ?? 0) + n)
  }

  /** The counters as a record. */
  get stats(): Stats {
    return Object.fromEntries(this.counters)
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
export function* makeHost(o: HostOptions): Sim.Gen<Host> {
  const kernel = yield* Sim.kernel()
  const memory = Memory.make(kernel, { model: o.model ?? "tso", drainLatencyNs: o.costs.drainNs })
  const host = new Host(memory, kernel, o.costs)
  for (let i = 0; i < o.pcpus; i++) {
    const p = new Pcpu(i, `pcpu${i}`, o.costs.ipiDeliveryNs)
    host.pcpus.push(p)
    kernel.event("pcpu.online", [i])
    yield* Sim.spawn(`pcpu${i}.apic`, () => p.apic(kernel))
  }
  return host
}

/** Creates a VM with `vcpus` vCPUs; their `mode` and `requests` live in the host's memory. */
export const makeVm = (host: Host, vcpus: number, switches: Switches): Vm => {
  const id = host.vms.length
  const vm = new Vm(id, `vm${id}`, host.memory, host.kernel, switches, host.costs)
  for (let i = 0; i < vcpus; i++) {
    const name = host.vms.length === 0 && vcpus > 0 ? `vcpu${i}` : `vm${id}.vcpu${i}`
    const path = vcpuPath(name)
    const loc = (field: string) => host.memory.alloc(`${path}.${field}`)
    vm.vcpus.push(new VcpuState(i, name, { mode: loc("mode"), requests: loc("requests"), irr: loc("apic.irr"), rcuwait_task: loc("wait.task"), task_state: loc("task.__state"), thread_flags: loc("task.thread_info.flags") }))
  }
  vm.attach(requests(vm))
  host.vms.push(vm)
  return vm
}

/** Attaches a host thread (not a vCPU) running on physical CPU `cpu`. */
export function* hostThread(host: Host, name: string, cpu: number): Sim.Gen<HostThread> {
  return { name, hw: yield* host.memory.attach(name), cpu }
}
