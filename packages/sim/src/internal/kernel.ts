/**
 * The simulation kernel: runs ordinary Effect fibers one at a time, synchronously, under a
 * scheduler it owns. Every actor parks at each scheduling point (an `Effect.async` whose resume
 * the kernel keeps); the kernel drains the fiber task queue until the granted actor parks again,
 * checks invariants, then asks the strategy which runnable actor goes next. Runnable actors are
 * kept sorted by actor id, never by arrival order, so traces do not depend on Effect internals.
 *
 * Time is virtual (nanoseconds) and advances only when nothing can run: then it jumps to the
 * earliest timer. Blocking waits are wait queues the kernel sees, so quiescence with blocked
 * actors and no timer is a deadlock, not a hang.
 */
import { Cause, Clock, Duration, Effect, Exit, Random } from "effect"
import type { Fiber } from "effect"
import type { Scheduler } from "effect/Scheduler"
import { Prng } from "../Prng.js"
import type { SearchStrategy } from "../Strategy.js"
import { TraceHash } from "../TraceHash.js"

/** The life cycle of an actor inside the kernel. */
export const enum ActorState {
  /** Granted: its fiber is executing; it is the kernel's `current`. */
  Running = 0,
  /** Parked at a scheduling point, runnable at `readyAt`. */
  Ready = 1,
  /** Waiting on a wait queue until woken. */
  Blocked = 2,
  /** Finished; `exit` holds how. */
  Done = 3,
  /** Stopped for good after reporting a violation. */
  Halted = 4
}

/** A wait queue: actors block on it and are woken all at once (Linux `wait_event`/`wake_up_all`). */
export class WaitQueue {
  /** @internal */
  waiters: Array<ActorRecord> = []
  constructor(readonly name: string) {}
}

/** The kernel's record of one actor. */
export class ActorRecord {
  state: ActorState = ActorState.Ready
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  resume: ((effect: Effect.Effect<void>) => void) | undefined = undefined
  readyAt = 0
  blockedOn: WaitQueue | undefined = undefined
  /** Bumped on every wake-up, so a pending timeout of an earlier wait is recognised as stale. */
  waitToken = 0
  /** Whether the last timed wait ended by its timeout. */
  timedOut = false
  exit: Exit.Exit<unknown, unknown> | undefined = undefined
  readonly exited: WaitQueue
  constructor(readonly id: number, readonly name: string) {
    this.exited = new WaitQueue(`exit of ${name}`)
  }
}

/** A broken property: which, why, and where in the run. */
export interface Violation {
  readonly invariant: string
  readonly message: string
  readonly step: number
  readonly timeNs: number
  readonly actor: string
}

/** One entry of the optional trace. */
export interface TraceEvent {
  readonly step: number
  readonly timeNs: number
  readonly actorId: number
  readonly actor: string
  readonly name: string
  readonly args: ReadonlyArray<number>
}

/** How a run ended. */
export type Outcome = "completed" | "violation" | "deadlock" | "step-bound" | "time-bound"

/** A named safety predicate: true, or a message saying what is wrong. */
export interface InvariantEntry {
  readonly name: string
  readonly check: () => true | string
  checks: number
}

/** A liveness monitor: hot means an obligation is pending; it must cool within its bounds. */
export class MonitorRecord {
  hot = false
  hotSinceStep = 0
  hotSinceNs = 0
  reason = ""
  constructor(readonly name: string, readonly maxHotSteps: number, readonly maxHotNs: number) {}
}

/** Options the kernel needs; validated by the public `run`. */
export interface KernelOptions {
  readonly seed: number
  readonly strategy: SearchStrategy
  readonly maxSteps: number
  readonly maxTimeNs: number
  readonly trace: boolean
  /** Decisions to follow (replay), or undefined to let the strategy choose. */
  readonly replay: ReadonlyArray<number> | undefined
}

/** Thrown (as a defect in the caller) when a replay does not follow its token. */
export class ReplayDivergence extends Error {
  readonly _tag = "ReplayDivergence"
}

const VOID = Effect.void

/** A scheduler that only queues tasks; the kernel drains them synchronously. */
class KernelScheduler implements Scheduler {
  tasks: Array<() => void> = []
  shouldYield(): number | false {
    return false // no op-count preemption: actors run until they park
  }
  scheduleTask(task: () => void): void {
    this.tasks.push(task)
  }
}

/** The chooser interface the strategies implement. */
export interface Picker {
  pick(runnable: ReadonlyArray<ActorRecord>, step: number): ActorRecord
}

class RandomPicker implements Picker {
  constructor(private readonly prng: Prng) {}
  pick(runnable: ReadonlyArray<ActorRecord>): ActorRecord {
    return runnable[this.prng.int(runnable.length)]!
  }
}

/**
 * PCT (Burckhardt et al. 2010; Shuttle's `pct.rs`): each actor gets a random priority >= depth
 * when first seen; at d-1 change points drawn uniformly from [1, steps] the actor about to run
 * drops to priority d-1-i, below every initial one. The highest priority runnable actor runs.
 */
class PctPicker implements Picker {
  private readonly priority = new Map<number, number>()
  private readonly changeAt = new Map<number, number>()
  constructor(private readonly prng: Prng, private readonly depth: number, steps: number) {
    for (let i = 1; i < depth; i++) this.changeAt.set(1 + prng.int(Math.max(1, steps)), depth - i)
  }
  private prio(a: ActorRecord): number {
    let p = this.priority.get(a.id)
    if (p === undefined) {
      p = this.depth + this.prng.int(0x40000000)
      this.priority.set(a.id, p)
    }
    return p
  }
  private highest(runnable: ReadonlyArray<ActorRecord>): ActorRecord {
    let best = runnable[0]!
    let bestP = this.prio(best)
    for (let i = 1; i < runnable.length; i++) {
      const p = this.prio(runnable[i]!)
      if (p > bestP) {
        best = runnable[i]!
        bestP = p
      }
    }
    return best
  }
  pick(runnable: ReadonlyArray<ActorRecord>, step: number): ActorRecord {
    for (const a of runnable) this.prio(a) // assign in id order, so priorities do not depend on arrival
    const low = this.changeAt.get(step)
    if (low !== undefined) this.priority.set(this.highest(runnable).id, low)
    return this.highest(runnable)
  }
}

/**
 * Swarm random (Groce et al., "Swarm testing", ISSTA 2012, applied to schedules): each actor
 * draws a weight in {1, 2, 4, ..., 128} when first seen, and runnable actors are chosen in
 * proportion to their weights. Different runs favour different actors (a lazy store-buffer
 * drain in one, an eager one in the next), which reaches skewed schedules that uniform choice
 * almost never produces.
 */
class SwarmPicker implements Picker {
  private readonly weight = new Map<number, number>()
  constructor(private readonly prng: Prng) {}
  pick(runnable: ReadonlyArray<ActorRecord>): ActorRecord {
    let total = 0
    for (const a of runnable) {
      let w = this.weight.get(a.id)
      if (w === undefined) {
        w = 1 << this.prng.int(8)
        this.weight.set(a.id, w)
      }
      total += w
    }
    let x = this.prng.int(total)
    for (const a of runnable) {
      x -= this.weight.get(a.id)!
      if (x < 0) return a
    }
    return runnable[runnable.length - 1]!
  }
}

class ReplayPicker implements Picker {
  private i = 0
  constructor(private readonly decisions: ReadonlyArray<number>) {}
  pick(runnable: ReadonlyArray<ActorRecord>, step: number): ActorRecord {
    const want = this.decisions[this.i++]
    if (want === undefined) {
      throw new ReplayDivergence(`replay diverged at step ${step}: the token has no decision left`)
    }
    const found = runnable.find((a) => a.id === want)
    if (found === undefined) {
      throw new ReplayDivergence(
        `replay diverged at step ${step}: the token chooses actor ${want}, runnable are [${runnable.map((a) => a.id).join(", ")}]`
      )
    }
    return found
  }
  remaining(): number {
    return this.decisions.length - this.i
  }
}

/** One simulation run. Create, `execute` once, read the fields. */
export class Kernel {
  now = 0
  steps = 0
  readonly decisions: Array<number> = []
  readonly hash = new TraceHash()
  readonly trace: Array<TraceEvent> = []
  readonly invariants: Array<InvariantEntry> = []
  readonly monitors: Array<MonitorRecord> = []
  /** Checks made by actor code at events (`Sim.check`), by invariant name. */
  readonly eventChecks = new Map<string, number>()
  readonly actors: Array<ActorRecord> = []
  current: ActorRecord | undefined = undefined
  /** The actor granted last: violations found between steps are attributed to it. */
  lastRan: ActorRecord | undefined = undefined
  violation: Violation | undefined = undefined
  outcome: Outcome = "completed"
  mainExit: Exit.Exit<unknown, unknown> | undefined = undefined

  /** Whether scheduling-point costs advance time (the `timed` strategy). */
  readonly timing: boolean
  private readonly scheduler = new KernelScheduler()
  private readonly picker: Picker
  private readonly runnable: Array<ActorRecord> = []
  private readonly timers: Array<ActorRecord> = [] // binary min-heap on (readyAt, id)
  /** Timeouts of timed waits, sorted by (at, id); stale entries are skipped. */
  private readonly timeouts: Array<{ readonly a: ActorRecord; readonly at: number; readonly token: number }> = []
  private tearingDown = false
  readonly clock: Clock.Clock

  constructor(readonly options: KernelOptions) {
    const strategyPrng = new Prng(Prng.derive(options.seed, 0x5eed))
    this.timing = options.strategy._tag === "timed"
    this.picker = options.replay !== undefined
      ? new ReplayPicker(options.replay)
      : options.strategy._tag === "pct"
      ? new PctPicker(strategyPrng, options.strategy.depth, options.strategy.steps ?? Math.min(options.maxSteps, 1000))
      : options.strategy._tag === "swarm"
      ? new SwarmPicker(strategyPrng)
      : new RandomPicker(strategyPrng)
    this.clock = makeClock(this)
    this.hash.int(options.seed)
  }

  // ---------------------------------------------------------------- actor-facing operations

  /** The calling fiber's actor; dies if the caller is not the granted actor. */
  private readonly self = (fiber: Fiber.RuntimeFiber<unknown, unknown>): ActorRecord | undefined => {
    const a = this.current
    return a !== undefined && a.fiber === fiber ? a : undefined
  }

  private notAnActor(what: string): Effect.Effect<never> {
    const message = `${what} from a fiber the kernel did not grant: fork actors with Sim.spawn, not Effect.fork`
    this.recordViolation("kernel.not-an-actor", message, this.current?.name ?? "?")
    return Effect.dieMessage(message)
  }

  private park(a: ActorRecord, readyAt: number): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      a.resume = resume
      this.makeReady(a, readyAt)
    })
  }

  private readonly parkNow = Effect.async<void>((resume) => {
    const a = this.current!
    a.resume = resume
    this.makeReady(a, this.now)
  })

  /** A scheduling point with no cost. */
  readonly point: Effect.Effect<void> = Effect.withFiberRuntime((fiber) => {
    if (this.tearingDown) return VOID
    return this.self(fiber) !== undefined ? this.parkNow : this.notAnActor("a scheduling point")
  })

  /** A scheduling point that costs `costNs` of virtual time under the `timed` strategy. */
  pointCost(costNs: number): Effect.Effect<void> {
    if (!this.timing || costNs <= 0) return this.point
    return Effect.withFiberRuntime((fiber) => {
      if (this.tearingDown) return VOID
      const a = this.self(fiber)
      return a !== undefined ? this.park(a, this.now + costNs) : this.notAnActor("a scheduling point")
    })
  }

  /** Sleeps `ns` of virtual time (under every strategy). */
  sleep(ns: number): Effect.Effect<void> {
    return Effect.withFiberRuntime((fiber) => {
      if (this.tearingDown) return Effect.never
      const a = this.self(fiber)
      if (a === undefined) return this.notAnActor("a sleep")
      if (!Number.isFinite(ns)) return this.block(a, new WaitQueue("forever"))
      return this.park(a, this.now + Math.max(0, Math.round(ns)))
    })
  }

  private block(a: ActorRecord, q: WaitQueue): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      a.resume = resume
      a.state = ActorState.Blocked
      a.blockedOn = q
      q.waiters.push(a)
    })
  }

  /** Blocks the calling actor on `q` until some actor wakes it. Re-check your condition after. */
  wait(q: WaitQueue): Effect.Effect<void> {
    return Effect.withFiberRuntime((fiber) => {
      if (this.tearingDown) return Effect.never
      const a = this.self(fiber)
      return a !== undefined ? this.block(a, q) : this.notAnActor("a wait")
    })
  }

  /**
   * Blocks the calling actor on `q` until woken or until `ns` of virtual time have passed;
   * afterwards `timedOut()` says which. Re-check your condition after.
   */
  waitFor(q: WaitQueue, ns: number): Effect.Effect<void> {
    if (!Number.isFinite(ns)) return this.wait(q)
    return Effect.withFiberRuntime((fiber) => {
      if (this.tearingDown) return Effect.never
      const a = this.self(fiber)
      if (a === undefined) return this.notAnActor("a wait")
      a.timedOut = false
      const entry = { a, at: this.now + Math.max(1, Math.round(ns)), token: a.waitToken }
      let i = this.timeouts.length
      while (i > 0 && (this.timeouts[i - 1]!.at > entry.at || (this.timeouts[i - 1]!.at === entry.at && this.timeouts[i - 1]!.a.id > a.id))) i--
      this.timeouts.splice(i, 0, entry)
      return this.block(a, q)
    })
  }

  /** Whether the calling actor's last `waitFor` ended by its timeout. */
  timedOut(): boolean {
    return this.current?.timedOut ?? false
  }

  /** Makes every actor blocked on `q` runnable now. Not a scheduling point. */
  wakeAll(q: WaitQueue): void {
    const ws = q.waiters
    if (ws.length === 0) return
    q.waiters = []
    for (const a of ws) {
      if (a.state !== ActorState.Blocked) continue
      a.blockedOn = undefined
      a.waitToken++
      this.makeReady(a, this.now)
    }
  }

  /** The earliest live timeout, dropping stale ones. */
  private nextTimeout(): { readonly a: ActorRecord; readonly at: number; readonly token: number } | undefined {
    while (this.timeouts.length > 0) {
      const t = this.timeouts[0]!
      if (t.a.state === ActorState.Blocked && t.a.waitToken === t.token) return t
      this.timeouts.shift()
    }
    return undefined
  }

  /** Records a violation found by actor code and halts the calling actor. */
  fail(invariant: string, message: string): Effect.Effect<never> {
    return Effect.withFiberRuntime((fiber) => {
      const a = this.self(fiber)
      this.recordViolation(invariant, message, a?.name ?? "?")
      if (a !== undefined) a.state = ActorState.Halted
      return Effect.never
    })
  }

  /** Mixes integers into the trace hash and, when tracing, records an event. */
  event(name: string, args: ReadonlyArray<number>): void {
    const a = this.current
    this.hash.str(name)
    for (const x of args) this.hash.int(x)
    if (this.options.trace) {
      this.trace.push({ step: this.steps, timeNs: this.now, actorId: a?.id ?? -1, actor: a?.name ?? "kernel", name, args })
    }
  }

  /**
   * The hot-path form of `event` for libraries (memory operations): mixes an operation code and
   * two integers into the hash, and records `name` only when tracing.
   */
  op(name: string, code: number, x: number, y: number): void {
    const h = this.hash
    h.int(code)
    h.int(x)
    h.int(y)
    if (this.options.trace) {
      const a = this.current
      this.trace.push({ step: this.steps, timeNs: this.now, actorId: a?.id ?? -1, actor: a?.name ?? "kernel", name, args: [x, y] })
    }
  }

  /** Creates an actor running `body`; it first runs when the strategy picks it. */
  spawn<A, E, R>(name: string, body: Effect.Effect<A, E, R>): Effect.Effect<ActorRecord, never, R> {
    return Effect.suspend(() => {
      const a = this.newActor(name)
      const start = Effect.withFiberRuntime<void>((fiber) => {
        a.fiber = fiber
        return this.park(a, this.now)
      })
      return Effect.forkDaemon(this.wrap(a, Effect.zipRight(start, body))).pipe(Effect.as(a))
    })
  }

  /** Blocks until actor `a` has finished; returns its exit. */
  join(a: ActorRecord): Effect.Effect<Exit.Exit<unknown, unknown>> {
    const loop: Effect.Effect<Exit.Exit<unknown, unknown>> = Effect.suspend(() =>
      a.exit !== undefined ? Effect.succeed(a.exit) : Effect.zipRight(this.wait(a.exited), loop)
    )
    return loop
  }

  // ---------------------------------------------------------------- the run loop

  private newActor(name: string): ActorRecord {
    const a = new ActorRecord(this.actors.length, name)
    this.actors.push(a)
    this.hash.int(a.id)
    return a
  }

  private wrap<A, E, R>(a: ActorRecord, body: Effect.Effect<A, E, R>): Effect.Effect<void, never, R> {
    return body.pipe(
      Effect.withRandom(Random.make(Prng.derive(this.options.seed, a.id + 1))),
      Effect.exit,
      Effect.flatMap((exit) =>
        Effect.sync(() => {
          a.exit = exit
          if (a.state !== ActorState.Halted) a.state = ActorState.Done
          this.wakeAll(a.exited)
          if (a.id === 0) this.mainExit = exit
          else if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause) && !this.tearingDown) {
            this.recordViolation("actor-failed", `actor ${a.name} failed: ${Cause.pretty(exit.cause)}`, a.name)
          }
        })
      )
    )
  }

  private makeReady(a: ActorRecord, readyAt: number): void {
    a.state = ActorState.Ready
    a.readyAt = readyAt
    if (readyAt <= this.now) insertById(this.runnable, a)
    else heapPush(this.timers, a)
  }

  recordViolation(invariant: string, message: string, actor: string): void {
    if (this.violation !== undefined) return
    this.violation = { invariant, message, step: this.steps, timeNs: this.now, actor }
    this.outcome = invariant === "deadlock" ? "deadlock" : "violation"
  }

  private drain(): void {
    const s = this.scheduler
    let i = 0
    while (i < s.tasks.length) s.tasks[i++]!()
    s.tasks.length = 0
  }

  private checkInvariants(): void {
    for (const inv of this.invariants) {
      inv.checks++
      const r = inv.check()
      if (r !== true) {
        this.recordViolation(inv.name, r, this.lastRan?.name ?? "kernel")
        return
      }
    }
    for (const m of this.monitors) {
      if (!m.hot) continue
      if (this.steps - m.hotSinceStep > m.maxHotSteps) {
        this.recordViolation(m.name, `hot for more than ${m.maxHotSteps} steps (since step ${m.hotSinceStep}: ${m.reason})`, "monitor")
        return
      }
      if (this.now - m.hotSinceNs > m.maxHotNs) {
        this.recordViolation(m.name, `hot for more than ${m.maxHotNs} ns (since ${m.hotSinceNs} ns: ${m.reason})`, "monitor")
        return
      }
    }
  }

  /** Runs `main` as actor 0 to completion, a violation, a deadlock or a bound. */
  execute(main: Effect.Effect<unknown, unknown>): void {
    const root = this.newActor("main")
    const start = Effect.withFiberRuntime<void>((fiber) => {
      root.fiber = fiber
      return this.park(root, 0)
    })
    const program = this.wrap(root, Effect.zipRight(start, main)).pipe(Effect.withClock(this.clock))
    Effect.runFork(program, { scheduler: this.scheduler })
    try {
      this.loop(root)
    } finally {
      this.teardown()
    }
  }

  private loop(root: ActorRecord): void {
    for (;;) {
      this.drain()
      const cur = this.current
      if (cur !== undefined && cur.state === ActorState.Running) {
        this.recordViolation(
          "kernel.unscheduled-suspension",
          `actor ${cur.name} suspended outside a kernel wait (an Effect Queue, Deferred or STM.retry?): use the Sim mailbox and wait primitives`,
          cur.name
        )
      }
      this.current = undefined
      if (this.violation !== undefined) return
      if (root.state === ActorState.Done) {
        for (const m of this.monitors) {
          if (m.hot) return this.recordViolation(m.name, `still hot when the run ended (since step ${m.hotSinceStep}: ${m.reason})`, "monitor")
        }
        return
      }
      this.checkInvariants()
      if (this.violation !== undefined) return
      if (this.runnable.length === 0) {
        const next = this.timers[0]
        const timeout = this.nextTimeout()
        if (next === undefined && timeout === undefined) return this.deadlock()
        const at = Math.min(next?.readyAt ?? Infinity, timeout?.at ?? Infinity)
        if (at > this.options.maxTimeNs) {
          this.outcome = "time-bound"
          return
        }
        this.now = at
        while (this.timers.length > 0 && this.timers[0]!.readyAt <= this.now) insertById(this.runnable, heapPop(this.timers))
        for (let t = this.nextTimeout(); t !== undefined && t.at <= this.now; t = this.nextTimeout()) {
          this.timeouts.shift()
          const q = t.a.blockedOn!
          q.waiters = q.waiters.filter((w) => w !== t.a)
          t.a.blockedOn = undefined
          t.a.waitToken++
          t.a.timedOut = true
          this.makeReady(t.a, this.now)
        }
      }
      if (this.steps >= this.options.maxSteps) {
        this.outcome = "step-bound"
        return
      }
      this.steps++
      const a = this.runnable.length === 1 ? this.runnable[0]! : this.picker.pick(this.runnable, this.steps)
      if (this.runnable.length > 1) this.decisions.push(a.id)
      removeById(this.runnable, a)
      this.hash.int(a.id)
      this.hash.int(this.now)
      this.current = a
      this.lastRan = a
      a.state = ActorState.Running
      const resume = a.resume!
      a.resume = undefined
      resume(VOID)
    }
  }

  private deadlock(): void {
    const blocked = this.actors.filter((a) => a.state === ActorState.Blocked)
    this.recordViolation(
      "deadlock",
      `no actor can run and no timer is pending; blocked: ${blocked.map((a) => `${a.name} on ${a.blockedOn?.name ?? "?"}`).join(", ")}`,
      "kernel"
    )
  }

  /** Checks the end of a replay: every decision used. */
  replayLeftover(): number {
    return this.picker instanceof ReplayPicker ? this.picker.remaining() : 0
  }

  private teardown(): void {
    this.tearingDown = true
    for (const a of this.actors) {
      if (a.fiber !== undefined && a.exit === undefined) a.fiber.unsafeInterruptAsFork(a.fiber.id())
    }
    this.drain()
    this.drain()
  }
}

const makeClock = (k: Kernel): Clock.Clock => ({
  [Clock.ClockTypeId]: Clock.ClockTypeId,
  unsafeCurrentTimeMillis: () => Math.floor(k.now / 1e6),
  currentTimeMillis: Effect.sync(() => Math.floor(k.now / 1e6)),
  unsafeCurrentTimeNanos: () => BigInt(k.now),
  currentTimeNanos: Effect.sync(() => BigInt(k.now)),
  sleep: (d: Duration.Duration) => k.sleep(Duration.isFinite(d) ? Number(Duration.unsafeToNanos(d)) : Infinity)
})

// Sorted-by-id runnable set: binary search insert and remove.
const insertById = (xs: Array<ActorRecord>, a: ActorRecord): void => {
  let lo = 0
  let hi = xs.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (xs[mid]!.id < a.id) lo = mid + 1
    else hi = mid
  }
  xs.splice(lo, 0, a)
}

const removeById = (xs: Array<ActorRecord>, a: ActorRecord): void => {
  let lo = 0
  let hi = xs.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (xs[mid]!.id < a.id) lo = mid + 1
    else hi = mid
  }
  xs.splice(lo, 1)
}

// Timer heap ordered by (readyAt, id): ties come out in id order, never arrival order.
const before = (a: ActorRecord, b: ActorRecord) => a.readyAt < b.readyAt || (a.readyAt === b.readyAt && a.id < b.id)

const heapPush = (h: Array<ActorRecord>, a: ActorRecord): void => {
  h.push(a)
  let i = h.length - 1
  while (i > 0) {
    const p = (i - 1) >> 1
    if (!before(h[i]!, h[p]!)) break
    ;[h[i], h[p]] = [h[p]!, h[i]!]
    i = p
  }
}

const heapPop = (h: Array<ActorRecord>): ActorRecord => {
  const top = h[0]!
  const last = h.pop()!
  if (h.length > 0) {
    h[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < h.length && before(h[l]!, h[m]!)) m = l
      if (r < h.length && before(h[r]!, h[m]!)) m = r
      if (m === i) break
      ;[h[i], h[m]] = [h[m]!, h[i]!]
      i = m
    }
  }
  return top
}
