/**
 * The vocabulary model code is written in. An actor is a generator function: it `yield*`s
 * operations — small values — and an engine interprets them. The same generator runs on both
 * engines: `fast` steps it directly, `effect` runs it inside an Effect fiber (redux-saga's shape:
 * an operation is a plain value, a runner interprets it).
 *
 * The vocabulary is closed. Operations that block, are scheduling points or need the engine are
 * yielded: a `Step` (a scheduling point with its virtual cost, or an action run in place, that
 * may block on a wait queue and retry — memory operations, mailbox send and receive, joins and
 * waits are steps), `Sleep`, `WaitFor` (a wait with a deadline), `Spawn`, `Fail` and `GetKernel`.
 * Operations that neither block nor schedule (events, wake-ups, seeded draws, checks, the clock)
 * are plain calls on the `Kernel` that `GetKernel` returns. One more, `Call`, is not an action
 * but a way to run a sub-generator: on the actor's stack, which the engine keeps, instead of
 * nested in the caller's `yield*` (`proc`, for the long-lived frames of a thread's loop).
 */
import type { Effect } from "effect"

/** A running actor's body: yields operations, returns `A`. */
export type Gen<A> = Generator<Op, A, any>

/** A program: a generator function, so the same program can run again from the start. */
export type Program<A> = () => Gen<A>

/** Anything `yield*` accepts in model code and that returns an `A`. */
export interface Yieldable<A> {
  [Symbol.iterator](): Iterator<Op, A, any>
}

/** Operation kinds, for a switch in the engines' hot loops. */
export const enum OpKind {
  Step = 0,
  Sleep = 1,
  WaitFor = 2,
  Spawn = 3,
  Fail = 4,
  GetKernel = 5,
  Call = 6
}

/**
 * An operation. Iterating it yields the operation once and returns the value the engine sends
 * back, so `yield* op` types as the operation's result. Each operation object is yielded once.
 * (Fields are assigned in constructors, not declared as class fields, and `kind` lives on the
 * prototype: V8 initialises declared fields far more slowly, and operations are made at every
 * step.)
 */
export abstract class Op<A = unknown> implements Yieldable<A>, Iterator<Op, A, any> {
  declare readonly kind: OpKind
  /** @internal */
  declare yielded: boolean
  /**
   * @internal the engine has answered it and the `yield*` over it has returned: nobody holds it
   * any more, so its maker may reuse the object for its next operation (see `Cpu`'s pools).
   */
  declare answered: boolean
  constructor() {
    this.yielded = false
    this.answered = false
  }
  [Symbol.iterator](): Iterator<Op, A, any> {
    return this
  }
  next(answer?: unknown): IteratorResult<Op, A> {
    if (this.yielded) {
      this.answered = true
      RETURNED.value = answer
      return RETURNED as IteratorResult<Op, A>
    }
    this.yielded = true
    YIELDED.value = this
    return YIELDED
  }
}

/*
 * The iterator results `next` hands out are two shared objects, overwritten at every call: a
 * `yield*` reads a result at once and never keeps it, and the engines read the outer
 * generator's result before resuming any generator. Sharing them saves two allocations per
 * operation.
 */
const YIELDED: { value: Op; done: false } = { value: undefined as unknown as Op, done: false }
const RETURNED: { value: unknown; done: true } = { value: undefined, done: true }

/** What a step returns when its actor must block on a wait queue and run the step again when woken. */
export interface Blocked {
  readonly _blocked: true
}

/** What a step may use of the kernel while it runs (the kernel itself, seen narrowly). */
export interface StepHost {
  readonly now: number
  readonly steps: number
  /** Whether point costs advance virtual time (the `timed` strategy). */
  readonly timing: boolean
  /** Blocks the actor on `q`; when it is woken and granted, the step runs again (no new point). */
  block(q: WaitQueueRef): Blocked
  /** Makes every actor waiting on `q` runnable. */
  wakeAll(q: WaitQueueRef): void
  /** Mixes an operation code and two integers into the trace hash (and the trace, when recorded). */
  op(name: string, code: number, x: number, y: number): void
  /** Mixes a named event into the trace hash (and the trace, when recorded). */
  event(name: string, args: ReadonlyArray<number>): void
}

/** An opaque wait queue as steps see it. */
export interface WaitQueueRef {
  readonly name: string
}

/**
 * A step: when `point` is true, first a scheduling point costing `costNs` of virtual time under
 * the `timed` strategy; then, when the actor is granted, `run` performs the action in place.
 * `run` may return `host.block(q)`: the actor waits on `q` and `run` is tried again when it is
 * woken and granted. The `fast` engine calls `run`; the `effect` engine runs `runEffect`, which
 * by default is `run` and is overridden where the reference keeps its state in Effect's own
 * structures (STM for memory, `Queue` for mailboxes).
 */
export abstract class Step<A = unknown> extends Op<A> {
  declare readonly point: boolean
  declare readonly costNs: number
  constructor(point: boolean, costNs: number) {
    super()
    ;(this as { point: boolean }).point = point
    ;(this as { costNs: number }).costNs = costNs
  }
  abstract run(host: StepHost): A | Blocked
  /** The effect engine's form of `run`; the default suspends `run`. */
  runEffect?(host: StepHost): Effect.Effect<A | Blocked>
}

/** Sleep `ns` of virtual time (under every strategy). */
export class Sleep extends Op<void> {
  constructor(readonly ns: number) {
    super()
  }
}

/** Block on `q` until woken, or until `ns` of virtual time passed (Infinity: no deadline). Returns true on timeout. */
export class WaitFor extends Op<boolean> {
  constructor(readonly queue: WaitQueueRef, readonly ns: number) {
    super()
  }
}

/** A handle on a spawned actor. */
export interface ActorHandle<A> {
  readonly id: number
  readonly name: string
  /** @internal the engine's record */
  readonly record: unknown
  /** Phantom: the actor's result type. */
  readonly _A?: A
}

/** Start an actor running `program`; it first runs when the strategy picks it. */
export class Spawn<A> extends Op<ActorHandle<A>> {
  constructor(readonly name: string, readonly program: Program<A>) {
    super()
  }
}

/** Report a violation of `invariant`; the actor stops for good and the run ends. */
export class Fail extends Op<never> {
  constructor(readonly invariant: string, readonly message: string) {
    super()
  }
}

/** The kernel of the run, for the calls that neither block nor schedule. */
export class GetKernel<K> extends Op<K> {
}

/**
 * Run `gen` as a call on the actor's own stack and return its value. The engines keep the
 * stack of an actor's generators themselves (a trampoline): while `gen` runs, its operations
 * reach the engine directly, instead of being passed up through the caller's `yield*` frame and
 * every frame above it, and each resume enters `gen` alone instead of going down through them
 * all. An exception `gen` throws is thrown into the caller at its `yield*`, as with `yield*`;
 * the order of operations is the one `yield* gen` gives. Worth it for a frame that stays on the
 * stack across many operations (a thread's loop); a call costs one object and two engine
 * round trips, more than a `yield*` over a generator that makes one or two operations.
 */
export class Call<A> extends Op<A> {
  constructor(readonly gen: Gen<A>) {
    super()
  }
  /** `yield*` forwards to it what the engine throws into the caller (`gen`'s exception). */
  throw(e: unknown): IteratorResult<Op, A> {
    throw e
  }
}

// The kind lives on the prototype: one shape per class, nothing to initialise per operation.
const setKind = (c: { prototype: unknown }, kind: OpKind) => Object.defineProperty(c.prototype, "kind", { value: kind })
setKind(Step, OpKind.Step)
setKind(Sleep, OpKind.Sleep)
setKind(WaitFor, OpKind.WaitFor)
setKind(Spawn, OpKind.Spawn)
setKind(Fail, OpKind.Fail)
setKind(GetKernel, OpKind.GetKernel)
setKind(Call, OpKind.Call)

/** `yield* call(gen)`: runs `gen` on the actor's stack (see `Call`) and returns its value. */
export const call = <A>(gen: Gen<A>): Yieldable<A> => new Call(gen)

/**
 * Wraps a generator function so that each call of it is a `Call` on the actor's stack (see
 * `Call`): `const f = proc(function* f(x) { ... })`, then `yield* f(x)` as before.
 */
export const proc = <Args extends Array<any>, A>(f: (...args: Args) => Gen<A>): (...args: Args) => Yieldable<A> =>
  (...args) => new Call(f(...args))

/** A yieldable that does nothing and returns `undefined` (x86's compiler-only barriers). */
export const nothing: Yieldable<void> = {
  [Symbol.iterator]: () => DONE
}
const DONE_RESULT: IteratorResult<Op, void> = { value: undefined, done: true }
const DONE: Iterator<Op, void, any> = { next: () => DONE_RESULT }
