/**
 * A physical CPU as the request protocol sees it: whether interrupts are enabled, whether it is
 * running a guest, and the IPIs posted to it. `smp_call_function_many` posts one call per target
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

export class Pcpu {
  /** Interrupts disabled (`local_irq_disable`); guest mode also counts as disabled for the host. */
  irqsDisabled = false
  /** The IPIs posted, delivered and handled, in order: handled <= delivered <= posted.length. */
  readonly posted: Array<IpiTarget | undefined> = []
  delivered = 0
  handled = 0
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
    this.posted.push(target)
    k.wakeAll(this.postedQ)
    return this.posted.length
  }

  /** The handler (`ack_kick` / `smp_call_function` IPI): runs every delivered call. */
  handle(k: Sim.Kernel): void {
    if (this.handled === this.delivered) return
    for (let i = this.handled; i < this.delivered; i++) {
      const t = this.posted[i]
      if (t !== undefined) t.kicksHandled++
    }
    this.handled = this.delivered
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
      if (this.delivered === this.posted.length) {
        yield* Sim.wait(this.postedQ)
        continue
      }
      yield* Sim.point(this.deliveryNs)
      this.delivered = this.posted.length
      k.event("ipi.deliver", [this.id, this.delivered])
      if (!this.irqsDisabled) this.handle(k)
      if (this.wakeOnDeliver !== undefined) k.wakeAll(this.wakeOnDeliver)
    }
  }
}
