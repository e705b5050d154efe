/**
 * The vCPU as every mechanism sees it (`struct kvm_vcpu`, spec §1.1). The fields other CPUs read
 * or write (`mode`, `requests`) are locations of the TSO memory, accessed with the kernel's
 * primitives; what only the vCPU's own thread touches (the guest TLB, `mp_state`) is plain. A
 * mechanism keeps its per-vCPU state in a typed slot (`Slot`), not in optional fields here.
 * Bookkeeping that exists only for the invariants lives apart, in `ghost`: no kernel code reads it.
 */
import type { Cpu, Memory } from "@kvmlab/memory"
import type { IpiTarget, Pcpu, PostedInterrupts } from "../host/Pcpu.js"
import { KVM_MP_STATE_RUNNABLE } from "../requests/Protocol.js"
import { VcpuGhost } from "../requests/State.js"

/** A guest TLB entry: the translation and the step it was filled at (TLB-1). */
export interface TlbEntry {
  readonly pfn: number
  readonly fill: number
}

export const TASK_RUNNING = 0
export const TASK_INTERRUPTIBLE = 1
/** `TIF_SIGPENDING`: bit 2 of the task's `thread_info.flags` on x86 (`arch/x86/include/asm/thread_info.h`). */
export const TIF_SIGPENDING = 2

/** A vCPU named `vcpu1` (`vm1.vcpu0`) as the kernel's data structures name it: `vcpu[1]` (`vm1.vcpu[0]`). */
export const vcpuPath = (name: string): string => name.replace(/vcpu(\d+)$/, "vcpu[$1]")


/**
 * A typed slot for one mechanism's per-vCPU state: `const steal = new Slot<StealTime>("steal
 * time")`, set once when the vCPU is made, read with `steal.of(v)`.
 */
export class Slot<S> {
  private static next = 0
  /** @internal */
  readonly index = Slot.next++
  constructor(readonly name: string) {}
  /** The state of `v`; a defect if the mechanism did not set it up for this vCPU. */
  of(v: VcpuState): S {
    const s = v.slots[this.index]
    if (s === undefined) throw new Error(`${v.name} has no ${this.name} state: is its mechanism attached to the VM?`)
    return s as S
  }
  /** Sets `v`'s state. */
  set(v: VcpuState, s: S): void {
    v.slots[this.index] = s
  }
  /** Whether `v` has this state. */
  has(v: VcpuState): boolean {
    return v.slots[this.index] !== undefined
  }
}

/**
 * The guest's local APIC as KVM emulates it (`arch/x86/kvm/lapic.c`), for the guest's IPIs. The
 * pending vectors are a memory location any CPU sets with a LOCK'd OR (`kvm_lapic_set_vector`;
 * with APICv it is the posted-interrupt descriptor: PIR bits and the ON bit). The vectors the
 * guest has taken and not yet handled (`isr`) only its own vCPU thread touches.
 */
export class Lapic implements PostedInterrupts {
  /** IRR, or with APICv the posted-interrupt descriptor (`pi_desc`): a bit per vector, and ON. */
  readonly irr: Memory.Loc
  /** Vectors delivered to the guest, for its handlers before its next instruction. */
  isr = 0
  /** With APICv: the CPU processed a notification in guest mode (PIR to vIRR, no VM exit). */
  notified = false
  /**
   * Cost accounting (spec §10.1): a guest IPI's round trip (§6 N5) was charged to its sender, so
   * the VM exit it causes and the entry after it are not charged again.
   */
  exitPrepaid = false
  entryPrepaid = false
  constructor(irr: Memory.Loc) {
    this.irr = irr
  }
}

export class VcpuState implements IpiTarget {
  /** What `kvm_vcpu_exit_request` last read in `vcpu->requests` when pending requests cancelled an entry (0 otherwise). */
  pendingSeen = 0
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
  /** `vcpu->wait.task`: the sleeping task, 1 between prepare_to_rcuwait and finish_rcuwait. */
  readonly rcuwait_task: Memory.Loc
  /** The host task's `__state` (TASK_RUNNING, TASK_INTERRUPTIBLE). */
  readonly task_state: Memory.Loc
  /**
   * The host task's `thread_info.flags`: TIF_SIGPENDING (`TIF_SIGPENDING`) is set by
   * `signal_wake_up` on the sender's CPU and read by the vCPU thread before each entry.
   */
  readonly thread_flags: Memory.Loc
  /** `vcpu->preempted`: set by kvm_sched_out when the task was preempted while runnable. */
  preempted = false
  /** `vcpu->ready`: preempted while runnable, or woken; a candidate for directed yield. */
  ready = false
  /** The guest's privilege level (CPL), which the scenario's guest keeps: 0 kernel, 3 user. */
  cpl = 0
  /** `vcpu->arch.preempted_in_kernel`: the CPL was 0 when the vCPU was preempted. */
  preempted_in_kernel = false
  /** `vmx->ple_window` in virtual ns (0 until first set from the cost model). */
  ple_window = 0
  /** The guest registers a hypercall passes (`kvm_rax_read`, `kvm_rbx_read`). */
  readonly regs = { rax: 0, rbx: 0 }
  /** `vcpu->spin_loop`: in `kvm_vcpu_on_spin`, and whether it may be yielded to now. */
  readonly spin_loop = { in_spin_loop: false, dy_eligible: false }
  /** The host task is off its physical CPU (between kvm_sched_out and kvm_sched_in). */
  offCpu = false
  offCpuSince = 0
  /** `current->sched_info.run_delay`: virtual ns spent runnable but off-CPU. */
  run_delay = 0
  /** The guest TLB: gfn to (pfn, fill step). */
  readonly tlb = new Map<number, TlbEntry>()
  /** @internal the mechanisms' per-vCPU state, by `Slot` */
  readonly slots: Array<unknown> = []
  /** Bookkeeping for the invariants only. */
  readonly ghost = new VcpuGhost()
  /** The guest's local APIC. */
  readonly apic: Lapic

  /** The vCPU as the kernel's data structures name it in traces and memory locations (`vcpuPath`). */
  get path(): string {
    return vcpuPath(this.name)
  }

  constructor(
    readonly vcpu_id: number,
    readonly name: string,
    locs: { readonly mode: Memory.Loc; readonly requests: Memory.Loc; readonly irr: Memory.Loc; readonly rcuwait_task: Memory.Loc; readonly task_state: Memory.Loc; readonly thread_flags: Memory.Loc }
  ) {
    this.mode = locs.mode
    this.requests = locs.requests
    this.rcuwait_task = locs.rcuwait_task
    this.task_state = locs.task_state
    this.thread_flags = locs.thread_flags
    this.apic = new Lapic(locs.irr)
  }

  /** `IpiTarget`: an IPI sent to force this vCPU out was handled (ghost, REQ-1). */
  get kicksHandled(): number {
    return this.ghost.kicksHandled
  }
  set kicksHandled(n: number) {
    this.ghost.kicksHandled = n
  }
}
