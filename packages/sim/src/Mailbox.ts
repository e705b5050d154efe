/**
 * Typed, bounded actor mailboxes. Messages live in an Effect `Queue`; sending and receiving are
 * scheduling points, and a full or empty mailbox is a kernel-visible blocking wait, so a
 * strategy decides who runs and a stuck protocol is reported as a deadlock.
 */
import { Effect, Option, Queue } from "effect"
import { type Kernel, WaitQueue } from "./internal/kernel.js"
import { SimKernel } from "./Sim.js"

/** A bounded mailbox of `A` messages. */
export interface Mailbox<A> {
  readonly name: string
  readonly capacity: number
  /** Sends, blocking while the mailbox is full. */
  readonly send: (message: A) => Effect.Effect<void>
  /** Receives the oldest message, blocking while the mailbox is empty. */
  readonly receive: Effect.Effect<A>
  /** Receives if a message is there, without blocking. */
  readonly poll: Effect.Effect<Option.Option<A>>
  /** Messages waiting now. */
  readonly size: Effect.Effect<number>
}

/** Creates a mailbox with room for `capacity` messages (at least 1). */
export const make = <A>(name: string, capacity: number): Effect.Effect<Mailbox<A>, never, SimKernel> =>
  Effect.gen(function*() {
    if (!Number.isInteger(capacity) || capacity < 1) {
      return yield* Effect.dieMessage(`Mailbox.make(${name}): capacity must be an integer >= 1, got ${capacity}`)
    }
    const k = yield* SimKernel
    const queue = yield* Queue.bounded<A>(capacity)
    return new MailboxImpl<A>(k, name, capacity, queue)
  })

class MailboxImpl<A> implements Mailbox<A> {
  readonly send: (message: A) => Effect.Effect<void>
  readonly receive: Effect.Effect<A>
  readonly poll: Effect.Effect<Option.Option<A>>
  readonly size: Effect.Effect<number>
  private count = 0

  constructor(k: Kernel, readonly name: string, readonly capacity: number, queue: Queue.Queue<A>) {
    const items = new WaitQueue(`${name} (empty)`)
    const space = new WaitQueue(`${name} (full)`)
    this.send = (message) => {
      const attempt: Effect.Effect<void> = Effect.suspend(() => {
        if (this.count >= capacity) return Effect.zipRight(k.wait(space), attempt)
        this.count++
        k.wakeAll(items)
        return Queue.offer(queue, message) // never suspends: there is room
      })
      return Effect.zipRight(k.point, attempt)
    }
    const take: Effect.Effect<A> = Effect.suspend(() => {
      if (this.count === 0) return Effect.zipRight(k.wait(items), take)
      this.count--
      k.wakeAll(space)
      return Effect.map(Queue.poll(queue), Option.getOrThrow)
    })
    this.receive = Effect.zipRight(k.point, take)
    this.poll = Effect.zipRight(
      k.point,
      Effect.suspend(() => {
        if (this.count === 0) return Effect.succeedNone
        this.count--
        k.wakeAll(space)
        return Queue.poll(queue)
      })
    )
    this.size = Effect.sync(() => this.count)
  }
}
