/**
 * The state of mechanism A (spec §1.1): `vcpu->mode` and `vcpu->requests` are memory locations
 * of every `VcpuState` (the spine allocates them, since every mechanism's requests go through
 * them), read and written only with the kernel's primitives; the physical CPU's IPI state is the
 * host's (`host/Pcpu.ts`). What follows is mechanism A's ghost state: bookkeeping only its
 * invariants read, apart from the model's state.
 */
import type { Sim } from "@kvmlab/sim"

/** What the invariants of mechanism A remember about a vCPU (ghost state). */
export class VcpuGhost {
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
  /** The task is in `kvm_vcpu_block`, between prepare_to_rcuwait and finish_rcuwait (WAKE-1). */
  blocking = false
  /**
   * Request bits (a mask) whose requester's `kvm_vcpu_wake_up` found nobody to wake (WAKE-1: the
   * vCPU must then see them before it sleeps).
   */
  declinedWakes = 0
  /** The WAKE-1 monitor of this vCPU (set by vcpu_run). */
  wake1: Sim.Monitor | undefined = undefined

  /**
   * The task is runnable again (a waker's try_to_wake_up, or the task seeing TASK_RUNNING): the
   * wake-up WAKE-1 waits for has happened, whatever the wait for a CPU that follows, and until it
   * sets TASK_INTERRUPTIBLE again the task is not blocked.
   */
  woken(): void {
    this.blocking = false
    this.wakeOwed = false
    this.wake1?.cold()
  }
}
