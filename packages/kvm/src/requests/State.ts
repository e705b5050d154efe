/**
 * The state of mechanism A (spec §1.1) for one vCPU. The fields other CPUs read or write
 * (`mode`, `requests`) are locations of the TSO memory, accessed with the kernel's primitives;
 * what only the vCPU's own thread touches (the guest TLB, `mp_state`) is plain. Fields marked
 * ghost exist only for the invariants: no kernel code reads them.
 */
import type { Cpu, Memory } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import type { IpiTarget, Pcpu } from "../host/Pcpu.js"
import type { StealTime } from "../pvflush/State.js"
import { KVM_MP_STATE_RUNNABLE } from "./Protocol.js"

/** A guest TLB entry: the translation and the step it was filled at (TLB-1). */
export interface TlbEntry {
  readonly pfn: number
  readonly fill: number
}

export const TASK_RUNNING = 0
export const TASK_INTERRUPTIBLE = 1

export class VcpuState implements IpiTarget {
  /** `vcpu->mode`, sharing a cache line with `requests` in the kernel. */
  readonly mode: Memory.Loc
  /** `vcpu->requests`. */
  readonly requests: Memory.Loc
  /** The memory thread of this vCPU's host task (set when the task first runs). */
  hw!: Cpu.Cpu
  /** `vcpu->cpu`: the physical CPU the vCPU is loaded on, or -1. */
  cpu = -1
  pcpu!: Pcpu
  /** `vcpu->arch.mp_state`. */
  mp_state = KVM_MP_STATE_RUNNABLE
  /** `vcpu->wait.task` set (between prepare_to_rcuwait and finish_rcuwait). */
  rcuwaitTask = false
  /** The host task's `__state`. */
  taskState = TASK_RUNNING
  readonly rcuwait: Sim.WaitQueue
  /** TIF_SIGPENDING: userspace wants the vCPU thread back (VM teardown). */
  signalPending = false
  /** Mechanism B: steal time and the guest's flush IPIs (when the scenario models them). */
  st: StealTime | undefined = undefined
  /** The guest TLB: gfn to (pfn, fill step). */
  readonly tlb = new Map<number, TlbEntry>()

  // ---- ghost state for the invariants
  /** IPIs decided for this vCPU (IPI-1, REQ-1) and handled on its CPU. */
  kicksDecided = 0
  kicksHandled = 0
  /** Step at which the current guest-execution interval began, or -1 (REQ-2). */
  guestSince = -1
  /** Step at which the current lockless walk began, or -1 (REQ-2). */
  walkSince = -1
  /** IPIs for non-WAIT requests in the current guest-mode interval (IPI-1). */
  nonWaitIpis = 0
  /** Request bit to the step its requester read `mode` and decided no IPI was needed (REQ-1). */
  readonly unkicked = new Map<number, number>()
  /** Request bit to the step a requester last set it (REQ-1). */
  readonly setAt = new Map<number, number>()
  /** Request bit to the step the vCPU last consumed it (REQ-1). */
  readonly consumedAt = new Map<number, number>()
  /** A request that may wake the vCPU was made while it was blocked (WAKE-1). */
  wakeOwed = false
  /** The WAKE-1 monitor of this vCPU (set by vcpu_run). */
  wake1: Sim.Monitor | undefined = undefined

  constructor(readonly vcpu_id: number, readonly name: string, mode: Memory.Loc, requests: Memory.Loc) {
    this.mode = mode
    this.requests = requests
    this.rcuwait = Sim.makeWaitQueue(() => `${name} rcuwait`)
  }
}
