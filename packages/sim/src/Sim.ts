/**
 * What model code writes: the operations of the vocabulary (`Op.ts`) as functions, and the
 * kernel's direct calls. An actor is a generator function; it `yield*`s these:
 *
 * ```ts
 * function* requester(v: Vcpu) {
 *   const k = yield* Sim.kernel()          // the run's kernel, for calls that neither block nor schedule
 *   yield* Sim.point(costs.ipiSendNs)       // a scheduling point with its virtual cost
 *   yield* Sim.wait(v.rcuwait)              // a blocking wait the kernel sees
 *   k.wakeAll(q); k.event("flush", [v.id]); k.random(100)
 *   if (!k.check("REQ-1", ok)) yield* Sim.fail("REQ-1", "why")
 * }
 * ```
 */
import {
  type ActorHandle,
  Fail,
  type Gen,
  GetKernel,
  type Program,
  Sleep,
  Spawn,
  Step,
  type StepHost,
  WaitFor,
  type Yieldable
} from "./Op.js"
import { type ActorExit, type ActorRecord, type Core, Monitor, WaitQueue } from "./internal/core.js"

export { Monitor, WaitQueue }
export type { ActorExit, ActorHandle }
export type { Outcome, TraceEvent, Violation } from "./internal/core.js"
export type { Gen, Program, Yieldable } from "./Op.js"
/** Calls on the actor's own stack (a trampoline): `yield* Sim.call(gen)`, or `const f = Sim.proc(function* f() {})`. */
export { call, proc } from "./Op.js"

/** The kernel of a run, as model code sees it: `now`, `steps`, `event`, `wakeAll`, `random`, `check`, `invariant`, `monitor`. */
export type Kernel = Core

/** The run's kernel. */
export const kernel = (): Yieldable<Kernel> => new GetKernel<Kernel>()

class PointStep extends Step<void> {
  run(): void {}
}

/** A scheduling point: the strategy may run another actor first. Costs `costNs` of virtual time under `timed`. */
export const point = (costNs = 0): Yieldable<void> => new PointStep(true, costNs)

/** Sleeps `ns` of virtual time, under every strategy (Infinity: forever). */
export const sleep = (ns: number): Yieldable<void> => new Sleep(ns)

/** Blocks the calling actor until `q` is woken. Callers re-check their condition afterwards. */
export const wait = (q: WaitQueue): Yieldable<boolean> => new WaitFor(q, Infinity)

/**
 * Blocks the calling actor until `q` is woken or `ns` of virtual time have passed (a spin with a
 * deadline, such as a time slice). Returns true when it timed out.
 */
export const waitFor = (q: WaitQueue, ns: number): Yieldable<boolean> => new WaitFor(q, ns)

/** A new wait queue; its name (for deadlock reports) may be a function, evaluated only when shown. */
export const makeWaitQueue = (name: string | (() => string)): WaitQueue => new WaitQueue(name)

/**
 * Starts an actor with a stable id (the order of spawns), running `program`. It first runs when
 * the strategy picks it, with its own seeded generator (`Kernel.random`).
 */
export const spawn = <A>(name: string, program: Program<A>): Yieldable<ActorHandle<A>> => new Spawn(name, program)

class JoinStep extends Step<ActorExit> {
  constructor(private readonly record: ActorRecord) {
    super(false, 0)
  }
  run(host: StepHost): ActorExit | ReturnType<StepHost["block"]> {
    return this.record.exit ?? host.block(this.record.exited)
  }
}

/** Blocks until `actor` has finished (a kernel-visible wait) and returns how it ended. */
export const join = <A>(actor: ActorHandle<A>): Yieldable<ActorExit> => new JoinStep(actor.record as ActorRecord)

/** Reports a violation of `invariant`; the calling actor stops and the run ends. */
export const fail = (invariant: string, message: string): Yieldable<never> => new Fail(invariant, message)

/**
 * Reports a violation unless `condition` holds; counted in the run's `invariantChecks` either
 * way. For checks made where the event happens. In hot paths prefer
 * `if (!k.check(id, ok)) yield* Sim.fail(id, message)`, which builds the message only on failure.
 */
export function* check(k: Kernel, invariant: string, condition: boolean, message: () => string): Gen<void> {
  if (!k.check(invariant, condition)) yield* fail(invariant, message())
}
