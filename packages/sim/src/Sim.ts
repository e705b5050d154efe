/**
 * What actor code sees of the simulation kernel: scheduling points, virtual sleeps (through the
 * ordinary `Clock`), wait queues, actors, invariants, liveness monitors and trace events. Every
 * operation here needs the `SimKernel` service, which `Run.run` provides to the program.
 */
import { Context, Effect } from "effect"
import type { Exit } from "effect"
import { type ActorRecord, type Kernel, MonitorRecord, WaitQueue } from "./internal/kernel.js"

export { WaitQueue }
export type { Kernel, Outcome, TraceEvent, Violation } from "./internal/kernel.js"

/** The kernel of the current run. Provided by `Run.run`; never constructed by users. */
export class SimKernel extends Context.Tag("@kvmlab/sim/SimKernel")<SimKernel, Kernel>() {}

/** A scheduling point: the strategy may run another actor before the caller continues. */
export const point: Effect.Effect<void, never, SimKernel> = Effect.flatMap(SimKernel, (k) => k.point)

/** A scheduling point that takes `costNs` of virtual time under the `timed` strategy. */
export const pointCost = (costNs: number): Effect.Effect<void, never, SimKernel> =>
  Effect.flatMap(SimKernel, (k) => k.pointCost(costNs))

/** The current virtual time in nanoseconds. */
export const nowNs: Effect.Effect<number, never, SimKernel> = Effect.map(SimKernel, (k) => k.now)

/** A handle on a spawned actor. */
export interface Actor<A, E> {
  readonly id: number
  readonly name: string
  /** Blocks until the actor has finished (a kernel-visible wait) and returns its exit. */
  readonly join: Effect.Effect<Exit.Exit<A, E>>
}

/**
 * Starts an actor with a stable id (the order of spawns). It first runs when the strategy picks
 * it, with its own seeded `Random` and the virtual `Clock`. Fork every concurrent fiber of a
 * simulation this way: a fiber the kernel did not grant dies at its first scheduling point.
 */
export const spawn = <A, E, R>(name: string, body: Effect.Effect<A, E, R>): Effect.Effect<Actor<A, E>, never, R | SimKernel> =>
  Effect.flatMap(SimKernel, (k) =>
    Effect.map(k.spawn(name, body), (a: ActorRecord): Actor<A, E> => ({
      id: a.id,
      name: a.name,
      join: k.join(a) as Effect.Effect<Exit.Exit<A, E>>
    })))

/** A new wait queue; `wait` on it blocks, `wakeAll` releases. */
export const makeWaitQueue = (name: string): WaitQueue => new WaitQueue(name)

/** Blocks the calling actor until `q` is woken. Callers re-check their condition afterwards. */
export const wait = (q: WaitQueue): Effect.Effect<void, never, SimKernel> => Effect.flatMap(SimKernel, (k) => k.wait(q))

/**
 * Blocks the calling actor until `q` is woken or `ns` of virtual time have passed (a spin with
 * a deadline, such as a time slice). Returns true when it timed out.
 */
export const waitFor = (q: WaitQueue, ns: number): Effect.Effect<boolean, never, SimKernel> =>
  Effect.flatMap(SimKernel, (k) => Effect.map(k.waitFor(q, ns), () => k.timedOut()))

/** Wakes every actor blocked on `q`; it runs again when the strategy picks it. */
export const wakeAll = (q: WaitQueue): Effect.Effect<void, never, SimKernel> =>
  Effect.flatMap(SimKernel, (k) => Effect.sync(() => k.wakeAll(q)))

/**
 * Registers a safety invariant, checked after every step: `check` returns true, or a message
 * saying what is wrong. The first violation stops the run. Keep checks cheap and pure.
 */
export const invariant = (name: string, check: () => true | string): Effect.Effect<void, never, SimKernel> =>
  Effect.flatMap(SimKernel, (k) => Effect.sync(() => void k.invariants.push({ name, check, checks: 0 })))

/** A liveness monitor (after Coyote): hot while an obligation is pending. */
export interface Monitor {
  readonly name: string
  /** Marks an obligation pending; the temperature starts counting unless already hot. */
  readonly hot: (reason: string) => Effect.Effect<void>
  /** Marks the obligation met. */
  readonly cold: Effect.Effect<void>
}

/**
 * Registers a liveness monitor. It is a violation to stay hot for more than `maxHotSteps`
 * scheduling steps or `maxHotNs` of virtual time, or to be hot when the run ends.
 */
export const monitor = (
  name: string,
  bounds: { readonly maxHotSteps?: number; readonly maxHotNs?: number }
): Effect.Effect<Monitor, never, SimKernel> =>
  Effect.flatMap(SimKernel, (k) =>
    Effect.sync(() => {
      const m = new MonitorRecord(name, bounds.maxHotSteps ?? Infinity, bounds.maxHotNs ?? Infinity)
      k.monitors.push(m)
      return {
        name,
        hot: (reason: string) =>
          Effect.sync(() => {
            if (m.hot) return
            m.hot = true
            m.hotSinceStep = k.steps
            m.hotSinceNs = k.now
            m.reason = reason
          }),
        cold: Effect.sync(() => {
          m.hot = false
        })
      }
    }))

/** Records a trace event; its name and integer arguments enter the trace hash. */
export const event = (name: string, ...args: ReadonlyArray<number>): Effect.Effect<void, never, SimKernel> =>
  Effect.flatMap(SimKernel, (k) => Effect.sync(() => k.event(name, args)))

/** Reports a violation of `invariant` found by actor code; the run stops. */
export const fail = (invariant: string, message: string): Effect.Effect<never, never, SimKernel> =>
  Effect.flatMap(SimKernel, (k) => k.fail(invariant, message))

/**
 * Reports a violation unless `condition` holds; counted in the run's `invariantChecks` either way.
 * For checks made where the event happens, rather than after every step.
 */
export const check = (invariant: string, condition: boolean, message: () => string): Effect.Effect<void, never, SimKernel> =>
  Effect.flatMap(SimKernel, (k) => {
    k.eventChecks.set(invariant, (k.eventChecks.get(invariant) ?? 0) + 1)
    return condition ? Effect.void : k.fail(invariant, message())
  })

/** The synchronous form of `check` for code that already holds the kernel: true when it holds. */
export const checkNow = (k: Kernel, invariant: string, condition: boolean): boolean => {
  k.eventChecks.set(invariant, (k.eventChecks.get(invariant) ?? 0) + 1)
  return condition
}
