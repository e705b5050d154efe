/**
 * Typed, bounded actor mailboxes. Sending and receiving are scheduling points; a full or an empty
 * mailbox is a kernel-visible wait, so a strategy decides who runs and a protocol stuck on a
 * mailbox nobody fills is reported as a deadlock. On the `effect` engine the messages live in an
 * Effect `Queue`; on `fast`, in a plain array. Both keep the same count, so they decide alike.
 */
import { Effect, Option, Queue } from "effect"
import { type Blocked, type Gen, Step, type StepHost, type Yieldable } from "./Op.js"
import { WaitQueue } from "./internal/core.js"
import type { Kernel } from "./Sim.js"

/** A bounded mailbox of `A` messages. */
export interface Mailbox<A> {
  readonly name: string
  readonly capacity: number
  /** Sends, blocking while the mailbox is full. */
  readonly send: (message: A) => Yieldable<void>
  /** Receives the oldest message, blocking while the mailbox is empty. */
  readonly receive: () => Yieldable<A>
  /** Receives if a message is there, without blocking; undefined otherwise. */
  readonly poll: () => Yieldable<A | undefined>
  /** Messages waiting now. */
  readonly size: () => number
}

/** Where the messages are kept. */
interface Store<A> {
  push(message: A): void
  take(): A
  pushEffect(message: A): Effect.Effect<void>
  takeEffect(): Effect.Effect<A>
}

class ArrayStore<A> implements Store<A> {
  private readonly items: Array<A> = []
  private head = 0
  push(message: A): void {
    this.items.push(message)
  }
  take(): A {
    const m = this.items[this.head++]!
    if (this.head === this.items.length) {
      this.items.length = 0
      this.head = 0
    }
    return m
  }
  pushEffect(message: A): Effect.Effect<void> {
    return Effect.sync(() => this.push(message))
  }
  takeEffect(): Effect.Effect<A> {
    return Effect.sync(() => this.take())
  }
}

class QueueStore<A> implements Store<A> {
  constructor(private readonly queue: Queue.Queue<A>) {}
  push(message: A): void {
    Queue.unsafeOffer(this.queue, message)
  }
  take(): A {
    return Option.getOrThrow(Effect.runSync(Queue.poll(this.queue)))
  }
  pushEffect(message: A): Effect.Effect<void> {
    return Effect.asVoid(Queue.offer(this.queue, message)) // never suspends: the count says there is room
  }
  takeEffect(): Effect.Effect<A> {
    return Effect.map(Queue.poll(this.queue), Option.getOrThrow)
  }
}

class MailboxImpl<A> implements Mailbox<A> {
  count = 0
  readonly items: WaitQueue
  readonly space: WaitQueue
  constructor(readonly name: string, readonly capacity: number, readonly store: Store<A>) {
    // Names are built only for a deadlock report: mailboxes are made in every run.
    this.items = new WaitQueue(() => `${name} (empty)`)
    this.space = new WaitQueue(() => `${name} (full)`)
  }
  send(message: A): Yieldable<void> {
    return new SendStep(this, message)
  }
  receive(): Yieldable<A> {
    return new ReceiveStep<A, A>(this, true)
  }
  poll(): Yieldable<A | undefined> {
    return new ReceiveStep<A, A | undefined>(this, false)
  }
  size(): number {
    return this.count
  }
}

class SendStep<A> extends Step<void> {
  constructor(private readonly mb: MailboxImpl<A>, private readonly message: A) {
    super(true, 0)
  }
  private room(host: StepHost): Blocked | undefined {
    if (this.mb.count >= this.mb.capacity) return host.block(this.mb.space)
    this.mb.count++
    host.wakeAll(this.mb.items)
    return undefined
  }
  run(host: StepHost): void | Blocked {
    const b = this.room(host)
    if (b !== undefined) return b
    this.mb.store.push(this.message)
  }
  override runEffect(host: StepHost): Effect.Effect<void | Blocked> {
    return Effect.suspend((): Effect.Effect<void | Blocked> => {
      const b = this.room(host)
      return b !== undefined ? Effect.succeed(b) : this.mb.store.pushEffect(this.message)
    })
  }
}

/** A receive: `R` is `A` when it blocks on an empty mailbox, `A | undefined` when it polls. */
class ReceiveStep<A, R extends A | undefined> extends Step<R> {
  constructor(private readonly mb: MailboxImpl<A>, private readonly blocking: boolean) {
    super(true, 0)
  }
  private ready(host: StepHost): Blocked | boolean {
    if (this.mb.count === 0) return this.blocking ? host.block(this.mb.items) : false
    this.mb.count--
    host.wakeAll(this.mb.space)
    return true
  }
  run(host: StepHost): R | Blocked {
    const r = this.ready(host)
    return r === true ? (this.mb.store.take() as R) : r === false ? (undefined as R) : r
  }
  override runEffect(host: StepHost): Effect.Effect<R | Blocked> {
    return Effect.suspend((): Effect.Effect<R | Blocked> => {
      const r = this.ready(host)
      return r === true ? (this.mb.store.takeEffect() as Effect.Effect<R>) : Effect.succeed(r === false ? (undefined as R) : r)
    })
  }
}

/** Creates a mailbox with room for `capacity` messages (an integer >= 1). */
export const make = <A>(k: Kernel, name: string, capacity: number): Mailbox<A> => {
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new RangeError(`Mailbox.make(${name}): capacity must be an integer >= 1, got ${capacity}`)
  }
  const store: Store<A> = k.engine === "effect" ? new QueueStore(Effect.runSync(Queue.bounded<A>(capacity))) : new ArrayStore<A>()
  return new MailboxImpl<A>(name, capacity, store)
}

/**
 * An actor's loop: each message from `box`, oldest first, to `handle`, until the one tagged
 * `stop`. Returns the messages handled. (Only the receives are scheduling points of its own.)
 */
export function* serve<A extends { readonly _tag: string }, S extends A["_tag"]>(
  box: Mailbox<A>,
  stop: S,
  handle: (message: Exclude<A, { readonly _tag: S }>) => Gen<void>
): Gen<number> {
  let n = 0
  for (;;) {
    const message = yield* box.receive()
    if (message._tag === stop) return n
    yield* handle(message as Exclude<A, { readonly _tag: S }>)
    n++
  }
}
