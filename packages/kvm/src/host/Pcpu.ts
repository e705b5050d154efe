/**
 * A physical CPU as the request protocol sees it: whether interrupts are enabled, which vCPU it
 * is running in guest mode (VMX non-root), and the IPIs posted to it. `smp_call_function_many` posts one call per target
 * and, with `wait`, spins until each target has run the (empty) handler `ack_kick`. A posted IPI
 * reaches the CPU through its local APIC, an actor of its own, so delivery is a scheduling step
 * (and costs `ipiDeliveryNs` under `timed`). A delivered IPI is handled at once when interrupts
 * are on; otherwise it stays pending until `local_irq_enable`, and in guest mode it forces a
 * VM exit at the guest's next instruction.
 */
import { Sim } from "@kvmlab/sim"

/** What an IPI was sent for: a vCPU to force out (or undefined for a plain function call). */
export interface IpiTarget {
  kicksHandled: number
}

/** A vCPU's posted-interrupt descriptor, as the notification vector reaches it. */
export interface PostedInterrupts {
  /** The CPU processed the descriptor in guest mode: the guest sees the interrupts at its next instruction. */
  notified: boolean
}

export class Pcpu {
  /** Interrupts disabled (`local_irq_disable`); guest mode also counts as disabled for the host. */
  irqsDisabled = false
  /** IPIs posted, delivered and handled so far, in order: handled <= delivered <= posted. */
  posted = 0
  delivered = 0
  handled = 0
  /** What each IPI not yet handled was sent for, oldest first (bounded by what is in flight). */
  private readonly unhandled: Array<IpiTarget | undefined> = []
  /** Posted-interrupt notifications in flight, for the vCPU whose descriptor they announce. */
  private readonly notifications: Array<PostedInterrupts> = []
  /** The vCPU this CPU runs in guest mode (between VM entry and VM exit), if any. */
  guest: PostedInterrupts | undefined = undefined
  /** Interrupt handler runs (one per batch of delivered IPIs). */
  handlerRuns = 0
  readonly postedQ: Sim.WaitQueue
  readonly handledQ: Sim.WaitQueue
  /** A guest spinning on this CPU with interrupts enabled, to be woken by a delivery. */
  wakeOnDeliver: Sim.WaitQueue | undefined = undefined

  constructor(readonly id: number, readonly name: string, private readonly deliveryNs: number) {
    this.postedQ = Sim.makeWaitQueue(() => `${name} APIC`)
    this.handledQ = Sim.makeWaitQueue(() => `${name} IPI acks`)
  }

  /** A delivered IPI waits for interrupts to be enabled. */
  get pendingIrq(): boolean {
    return this.delivered > this.handled
  }

  /** Posts an IPI (the ICR write); returns its sequence number, for `waitHandled`. */
  post(k: Sim.Kernel, target: IpiTarget | undefined): number {
    this.unhandled.push(target)
    this.posted++
    k.wakeAll(this.postedQ)
    return this.posted
  }

  /**
   * Posts the posted-interrupt notification vector for `pi`. Delivered while this CPU runs that
   * vCPU in guest mode, the CPU processes the descriptor without a VM exit; otherwise it is an
   * ordinary interrupt for the host (and the next VM entry syncs the descriptor).
   */
  notify(k: Sim.Kernel, pi: PostedInterrupts): void {
    this.notifications.push(pi)
    k.wakeAll(this.postedQ)
  }

  /** The handler (`ack_kick` / `smp_call_function` IPI): runs every delivered call. */
  handle(k: Sim.Kernel): void {
    if (this.handled === this.delivered) return
    for (; this.handled < this.delivered; this.handled++) {
      const t = this.unhandled.shift()
      if (t !== undefined) t.kicksHandled++
    }
    this.handlerRuns++
    k.wakeAll(this.handledQ)
  }

  /** `local_irq_disable()`. */
  local_irq_disable(): void {
    this.irqsDisabled = true
  }

  /** `local_irq_enable()`: pending IPIs run their handlers now (A4: this releases WAIT senders). */
  local_irq_enable(k: Sim.Kernel): void {
    this.irqsDisabled = false
    this.handle(k)
  }

  /** Blocks until IPI number `seq` has been handled (`csd_lock_wait`). */
  *waitHandled(seq: number): Sim.Gen<void> {
    while (this.handled < seq) yield* Sim.wait(this.handledQ)
  }

  /** The local APIC: delivers posted IPIs one batch at a time. */
  *apic(k: Sim.Kernel): Sim.Gen<never> {
    for (;;) {
      if (this.delivered === this.posted && this.notifications.length === 0) {
        yield* Sim.wait(this.postedQ)
        continue
      }
      yield* Sim.point(this.deliveryNs)
      for (const pi of this.notifications.splice(0)) {
        if (this.guest === pi) pi.notified = true
        else this.post(k, undefined)
      }
      this.delivered = this.posted
      k.event("ipi.deliver", [this.id, this.delivered])
      if (!this.irqsDisabled) this.handle(k)
      if (this.wakeOnDeliver !== undefined) k.wakeAll(this.wakeOnDeliver)
    }
  }
}
