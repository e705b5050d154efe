/**
 * The scheduling core both engines share: actors and their states, the runnable set (sorted by
 * actor id, never by arrival order), timers and wait deadlines in virtual time, the strategy's
 * picks, the trace hash, invariants, liveness monitors, deadlock detection and bounds. An engine
 * adds only how an actor's code resumes — a generator stepped in place (`fast`) or an Effect
 * fiber granted its turn (`effect`) — so both make the same decisions and the same trace.
 *
 * Time is virtual (nanoseconds) and advances only when nothing can run: then it jumps to the
 * earliest timer or deadline. Blocking waits are wait queues the core sees, so quiescence with
 * blocked actors and no timer is a deadlock, not a hang.
 */
import type { Blocked, Gen, Program, Step, StepHost, WaitQueueRef } from "../Op.js"
import { Prng } from "../Prng.js"
import type { SearchStrategy } from "../Strategy.js"
import { TraceHash } from "../TraceHash.js"
import { PctPicker } from "./strategy/Pct.js"
import type { Picker } from "./strategy/Picker.js"
import { RandomPicker } from "./strategy/Random.js"
import { GuidePicker, ReplayDivergence, ReplayPicker } from "./strategy/Replay.js"
import { SwarmPicker } from "./strategy/Swarm.js"

export { ReplayDivergence }

/** The life cycle of an actor. */
export const enum ActorState {
  /** Granted: its code is executing; it is the core's `current`. */
  Running = 0,
  /** Parked at a scheduling point (or sleeping), runnable at `readyAt`. */
  Ready = 1,
  /** Waiting on a wait queue until woken (or its deadline). */
  Blocked = 2,
  /** Finished; `exit` holds how. */
  Done = 3,
  /** Stopped for good after reporting a violation. */
  Halted = 4
}

/**
 * A wait queue: actors block on it and are woken all at once (Linux `wait_event`/`wake_up_all`).
 * Its name, shown only in deadlock reports, may be given as a function so that the many queues
 * a run makes cost no string building.
 */
export class WaitQueue implements WaitQueueRef {
  /** @internal */
  waiters: Array<ActorRecord> = []
  constructor(private readonly label: string | (() => string)) {}
  get name(): string {
    return typeof this.label === "string" ? this.label : this.label()
  }
}

/** How an actor ended: its value, or the error that killed it. */
export type ActorExit =
  | { readonly _tag: "success"; readonly value: unknown }
  | { readonly _tag: "failure"; readonly message: string; readonly error: unknown }

/** The core's record of one actor; engines add their own continuation fields. */
export class ActorRecord {
  state: ActorState = ActorState.Ready
  readyAt = 0
  blockedOn: WaitQueue | undefined = undefined
  /** Bumped on every wake-up, so a pending deadline of an earlier wait is recognised as stale. */
  waitToken = 0
  /** Whether the last wait ended by its deadline. */
  timedOut = false
  exit: ActorExit | undefined = undefined
  private exitedQ: WaitQueue | undefined = undefined
  private random: Prng | undefined = undefined
  // ---- fast engine: the generator, the step to run when granted, and the value to resume with
  /** The generator on top of the actor's stack: the one running, or parked. */
  gen: Gen<unknown> | undefined = undefined
  /** The generators below `gen` (its caller last), when the actor has made a `Call`. */
  callers: Array<Gen<unknown>> | undefined = undefined
  pending: Step<unknown> | undefined = undefined
  /** The value the actor resumes with when granted without a pending step (a wait's timeout flag). */
  resumeWithTimeout = false
  // ---- effect engine: the parked fiber's resume callback
  resume: ((value: unknown) => void) | undefined = undefined

  constructor(readonly id: number, readonly name: string, private readonly seed: number) {}

  /** The queue woken when this actor finishes. */
  get exited(): WaitQueue {
    return (this.exitedQ ??= new WaitQueue(`exit of ${this.name}`))
  }
  /** Whether anything waits for this actor to finish. */
  get joined(): boolean {
    return this.exitedQ !== undefined
  }
  /** This actor's seeded generator: the same draws whatever the schedule. */
  prng(): Prng {
    return (this.random ??= new Prng(Prng.derive(this.seed, this.id + 1)))
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

/** A liveness monitor (after Coyote): hot while an obligation is pending; it must cool within its bounds. */
export class Monitor {
  isHot = false
  hotSinceStep = 0
  hotSinceNs = 0
  reason = ""
  /** @internal index in the core's hot list, or -1 */
  slot = -1
  /** @internal with `fair`: the actor that made the monitor, and the one that made it hot */
  owner: ActorRecord | undefined
  heater: ActorRecord | undefined = undefined
  /** @internal with `fair`: steps granted to the owner or the heater since it became hot */
  fairSteps = 0
  constructor(
    private readonly core: Core,
    readonly name: string,
    readonly maxHotSteps: number,
    readonly maxHotNs: number,
    readonly fair: boolean,
    owner: ActorRecord | undefined
  ) {
    this.owner = owner
  }
  /** Marks an obligation pending; the temperature starts counting unless already hot. */
  hot(reason: string): void {
    if (this.isHot) return
    this.isHot = true
    this.hotSinceStep = this.core.steps
    this.hotSinceNs = this.core.now
    this.reason = reason
    this.heater = this.core.current
    this.fairSteps = 0
    this.core.heat(this)
  }
  /** Marks the obligation met. */
  cold(): void {
    if (!this.isHot) return
    this.isHot = false
    this.core.cool(this)
  }
}

/** Options the core needs; validated by the public `run`. */
export interface CoreOptions {
  readonly seed: number
  readonly strategy: SearchStrategy
  readonly maxSteps: number
  readonly maxTimeNs: number
  readonly trace: boolean
  /** Decisions to follow (replay), or undefined to let the strategy choose. */
  readonly replay: ReadonlyArray<number> | undefined
  /** With `replay`: follow the decisions as a guide, not strictly (shrinking). */
  readonly guide?: boolean
}

/** The value a step returns (through `block`) to say its actor must wait. */
export const BLOCKED: Blocked = { _blocked: true }

interface Deadline {
  readonly a: ActorRecord
  readonly at: number
  readonly token: number
}

/**
 * One simulation run. Model code reaches it through `Sim.kernel` for the operations that neither
 * block nor schedule: `now`, `steps`, `event`, `wakeAll`, `random`, `check`, `invariant`,
 * `monitor`. Engines subclass it.
 */
export abstract class Core implements StepHost {
  abstract readonly engine: "fast" | "effect"
  now = 0
  steps = 0
  readonly decisions: Array<number> = []
  readonly hash = new TraceHash()
  readonly trace: Array<TraceEvent> = []
  readonly invariants: Array<InvariantEntry> = []
  /** Checks made by actor code at events (`check`), by invariant name (a box: one lookup per check). */
  readonly eventChecks = new Map<string, { n: number }>()
  readonly actors: Array<ActorRecord> = []
  current: ActorRecord | undefined = undefined
  /** The actor granted last: violations found between steps are attributed to it. */
  lastRan: ActorRecord | undefined = undefined
  violation: Violation | undefined = undefined
  outcome: Outcome = "completed"
  /** Whether scheduling-point costs advance time (the `timed` strategy). */
  readonly timing: boolean
  readonly seed: number
  /** The queue the last `block` named. */
  protected blockQ: WaitQueue | undefined = undefined
  private readonly picker: Picker
  protected readonly runnable: Array<ActorRecord> = []
  private readonly timers: Array<ActorRecord> = [] // binary min-heap on (readyAt, id)
  private readonly deadlines: Array<Deadline> = [] // binary min-heap on (at, id); stale entries skipped
  private readonly hotMonitors: Array<Monitor> = []

  constructor(readonly options: CoreOptions) {
    const strategyPrng = new Prng(Prng.derive(options.seed, 0x5eed))
    this.seed = options.seed
    this.timing = options.strategy._tag === "timed"
    this.picker = options.replay !== undefined
      ? options.guide === true ? new GuidePicker(options.replay) : new ReplayPicker(options.replay)
      : options.strategy._tag === "pct"
      ? new PctPicker(strategyPrng, options.strategy.depth, options.strategy.steps ?? Math.min(options.maxSteps, 1000))
      : options.strategy._tag === "swarm"
      ? new SwarmPicker(strategyPrng)
      : new RandomPicker(strategyPrng)
    this.hash.int(options.seed)
  }

  // ------------------------------------------------------------ what model code calls directly

  /** Mixes integers into the trace hash and, when tracing, records an event. */
  event(name: string, args: ReadonlyArray<number>): void {
    const h = this.hash
    h.int(nameCode(name))
    for (let i = 0; i < args.length; i++) h.int(args[i]!)
    if (this.options.trace) this.record(name, args)
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
    if (this.options.trace) this.record(name, [x, y])
  }

  private record(name: string, args: ReadonlyArray<number>): void {
    const a = this.current
    this.trace.push({ step: this.steps, timeNs: this.now, actorId: a?.id ?? -1, actor: a?.name ?? "kernel", name, args })
  }

  /** Makes every actor blocked on `q` runnable now. Not a scheduling point. */
  wakeAll(q: WaitQueueRef): void {
    const wq = q as WaitQueue
    const ws = wq.waiters
    if (ws.length === 0) return
    wq.waiters = []
    for (let i = 0; i < ws.length; i++) {
      const a = ws[i]!
      if (a.state !== ActorState.Blocked) continue
      a.blockedOn = undefined
      a.waitToken++
      a.timedOut = false
      this.makeReady(a, this.now)
    }
  }

  /** A uniform integer in [0, bound) from the calling actor's seeded generator. */
  random(bound: number): number {
    return this.actor().prng().int(bound)
  }

  /** A uniform integer in [min, max) from the calling actor's seeded generator. */
  randomBetween(min: number, max: number): number {
    return min + this.actor().prng().int(max - min)
  }

  /** Counts a check of `invariant` made where its event happens; returns `condition`. */
  check(invariant: string, condition: boolean): boolean {
    const box = this.eventChecks.get(invariant)
    if (box === undefined) this.eventChecks.set(invariant, { n: 1 })
    else box.n++
    return condition
  }

  /** Registers a safety invariant, checked after every step: true, or a message saying what is wrong. */
  invariant(name: string, check: () => true | string): void {
    this.invariants.push({ name, check, checks: 0 })
  }

  /**
   * A liveness monitor: a violation when hot for more than `maxHotSteps` steps or `maxHotNs` of
   * virtual time, or hot when the run ends. With `fair`, only the steps granted to the actors that
   * can meet the obligation count toward `maxHotSteps`: the actor that made the monitor and the
   * one that made it hot. A strategy that starves both (PCT gives some actors no step for
   * thousands of steps) is then not taken for a liveness bug; one of them running on without
   * meeting it still is.
   */
  monitor(name: string, bounds: { readonly maxHotSteps?: number; readonly maxHotNs?: number; readonly fair?: boolean }): Monitor {
    return new Monitor(this, name, bounds.maxHotSteps ?? Infinity, bounds.maxHotNs ?? Infinity, bounds.fair === true, this.current)
  }


  /** The calling actor's name. */
  get actorName(): string {
    return this.current?.name ?? "kernel"
  }

  /** Records a violation (the first one wins). */
  recordViolation(invariant: string, message: string, actor: string): void {
    if (this.violation !== undefined) return
    this.violation = { invariant, message, step: this.steps, timeNs: this.now, actor }
    this.outcome = invariant === "deadlock" ? "deadlock" : "violation"
  }

  // ------------------------------------------------------------ engine-facing

  /** @internal */
  heat(m: Monitor): void {
    m.slot = this.hotMonitors.length
    this.hotMonitors.push(m)
  }
  /** @internal */
  cool(m: Monitor): void {
    const last = this.hotMonitors.pop()!
    if (last !== m) {
      this.hotMonitors[m.slot] = last
      last.slot = m.slot
    }
    m.slot = -1
  }

  private actor(): ActorRecord {
    const a = this.current
    if (a === undefined) throw new Error("a kernel call outside any actor")
    return a
  }

  /** Blocks the current step's actor on `q`; the step runs again when it is woken and granted. */
  block(q: WaitQueueRef): Blocked {
    this.blockQ = q as WaitQueue
    return BLOCKED
  }

  protected newActor(name: string): ActorRecord {
    const a = new ActorRecord(this.actors.length, name, this.seed)
    this.actors.push(a)
    this.hash.int(a.id)
    return a
  }

  protected makeReady(a: ActorRecord, readyAt: number): void {
    a.state = ActorState.Ready
    a.readyAt = readyAt
    if (readyAt <= this.now) insertById(this.runnable, a)
    else heapPush(this.timers, a, beforeReady)
  }

  /** Parks `a` at a scheduling point costing `costNs` under `timed`. */
  protected parkPoint(a: ActorRecord, costNs: number): void {
    this.makeReady(a, this.timing && costNs > 0 ? this.now + costNs : this.now)
  }

  /** Parks `a` for `ns` of virtual time (every strategy). */
  protected parkSleep(a: ActorRecord, ns: number): void {
    this.makeReady(a, this.now + Math.max(0, Math.round(ns)))
  }

  /** Blocks `a` on `q`, with a deadline `ns` from now unless infinite. */
  protected blockActor(a: ActorRecord, q: WaitQueue, ns: number): void {
    a.state = ActorState.Blocked
    a.blockedOn = q
    a.timedOut = false
    q.waiters.push(a)
    if (Number.isFinite(ns)) heapPush(this.deadlines, { a, at: this.now + Math.max(1, Math.round(ns)), token: a.waitToken }, beforeDeadline)
  }

  /** Records how `a` ended and wakes its joiners. */
  protected finishActor(a: ActorRecord, exit: ActorExit): void {
    a.exit = exit
    if (a.state !== ActorState.Halted) a.state = ActorState.Done
    if (a.joined) this.wakeAll(a.exited)
    if (exit._tag === "failure" && a.id !== 0) {
      this.recordViolation("actor-failed", `actor ${a.name} failed: ${exit.message}`, a.name)
    }
  }

  /** `a` reported a violation: it stops for good. */
  protected haltActor(a: ActorRecord, invariant: string, message: string): void {
    this.recordViolation(invariant, message, a.name)
    a.state = ActorState.Halted
  }

  /** The earliest live deadline, dropping stale ones. */
  private nextDeadline(): Deadline | undefined {
    const d = this.deadlines
    while (d.length > 0) {
      const t = d[0]!
      if (t.a.state === ActorState.Blocked && t.a.waitToken === t.token) return t
      heapPop(d, beforeDeadline)
    }
    return undefined
  }

  private checkInvariants(): void {
    const invs = this.invariants
    for (let i = 0; i < invs.length; i++) {
      const inv = invs[i]!
      inv.checks++
      const r = inv.check()
      if (r !== true) return this.recordViolation(inv.name, r, this.lastRan?.name ?? "kernel")
    }
    const hot = this.hotMonitors
    for (let i = 0; i < hot.length; i++) {
      const m = hot[i]!
      if (m.fair) {
        const last = this.lastRan
        if (last !== undefined && (last === m.owner || last === m.heater)) m.fairSteps++
        if (m.fairSteps > m.maxHotSteps) {
          const who = m.owner === m.heater || m.heater === undefined ? m.owner?.name : `${m.owner?.name} and ${m.heater.name}`
          return this.recordViolation(m.name, `hot for more than ${m.maxHotSteps} steps of ${who} (since step ${m.hotSinceStep}: ${m.reason})`, "monitor")
        }
      } else if (this.steps - m.hotSinceStep > m.maxHotSteps) {
        return this.recordViolation(m.name, `hot for more than ${m.maxHotSteps} steps (since step ${m.hotSinceStep}: ${m.reason})`, "monitor")
      }
      if (this.now - m.hotSinceNs > m.maxHotNs) {
        return this.recordViolation(m.name, `hot for more than ${m.maxHotNs} ns (since ${m.hotSinceNs} ns: ${m.reason})`, "monitor")
      }
    }
  }

  /** Runs the granted actor until it parks, blocks, finishes or halts. */
  protected abstract grant(a: ActorRecord): void

  /** Makes `main` actor 0, ready to run: the run starts at the first `advance`. */
  abstract start(main: Program<unknown>): void

  /**
   * Runs the actors until the run ends (true) or `pauseAt` steps have been taken (false). A run
   * paused this way goes on with the next call exactly as if it had not paused (the pause comes
   * before anything of the next step), so a caller can give the event loop a turn, report
   * progress or stop between calls. An engine that holds resources frees them when the run ends
   * here, or at `abort`.
   */
  abstract advance(pauseAt?: number): boolean

  /** Gives up a paused run: nothing runs after this. */
  abort(): void {}

  /**
   * Runs the actors from `root` (actor 0) to completion, a violation, a deadlock or a bound
   * (true), or until `pauseAt` steps have been taken (false).
   */
  protected loop(root: ActorRecord, pauseAt: number): boolean {
    const runnable = this.runnable
    const maxSteps = this.options.maxSteps
    for (;;) {
      if (this.steps >= pauseAt) return false
      if (this.violation !== undefined) return true
      if (root.state === ActorState.Done) {
        const hot = this.hotMonitors[0]
        if (hot !== undefined) this.recordViolation(hot.name, `still hot when the run ended (since step ${hot.hotSinceStep}: ${hot.reason})`, "monitor")
        return true
      }
      if (this.invariants.length > 0 || this.hotMonitors.length > 0) {
        this.checkInvariants()
        if (this.violation !== undefined) return true
      }
      if (runnable.length === 0 && !this.advanceTime()) return true
      if (this.steps >= maxSteps) {
        this.outcome = "step-bound"
        return true
      }
      this.steps++
      let a: ActorRecord
      if (runnable.length === 1) a = runnable.pop()!
      else {
        a = this.picker.pick(runnable, this.steps, this.lastRan?.id ?? -1)
        this.decisions.push(a.id)
        removeById(runnable, a)
      }
      this.hash.int(a.id)
      this.hash.int(this.now)
      this.current = a
      this.lastRan = a
      a.state = ActorState.Running
      this.grant(a)
      this.current = undefined
    }
  }

  /** Nothing can run: jump to the next timer or deadline. False when the run ends here. */
  private advanceTime(): boolean {
    const next = this.timers[0]
    const deadline = this.nextDeadline()
    if (next === undefined && deadline === undefined) {
      this.deadlock()
      return false
    }
    const at = Math.min(next?.readyAt ?? Infinity, deadline?.at ?? Infinity)
    if (at > this.options.maxTimeNs) {
      this.outcome = "time-bound"
      return false
    }
    this.now = at
    const timers = this.timers
    while (timers.length > 0 && timers[0]!.readyAt <= at) insertById(this.runnable, heapPop(timers, beforeReady))
    for (let t = this.nextDeadline(); t !== undefined && t.at <= at; t = this.nextDeadline()) {
      heapPop(this.deadlines, beforeDeadline)
      const a = t.a
      const ws = a.blockedOn!.waiters
      const idx = ws.indexOf(a)
      for (let i = idx; i < ws.length - 1; i++) ws[i] = ws[i + 1]!
      ws.pop()
      a.blockedOn = undefined
      a.waitToken++
      this.makeReady(a, at)
      a.timedOut = true
    }
    return true
  }

  private deadlock(): void {
    const blocked = this.actors.filter((a) => a.state === ActorState.Blocked)
    this.recordViolation(
      "deadlock",
      `no actor can run and no timer is pending; blocked: ${blocked.map((a) => `${a.name} on ${a.blockedOn?.name ?? "?"}`).join(", ")}`,
      "kernel"
    )
  }

  /** Decisions a replay did not use (0 unless replaying strictly). */
  replayLeftover(): number {
    return this.picker instanceof ReplayPicker ? this.picker.remaining() : 0
  }

  /** How the root actor ended, if it did. */
  abstract rootExit(): ActorExit | undefined
}

/** Event names, hashed once per process: a name enters the trace hash as one integer. */
const nameCodes = new Map<string, number>()
const nameCode = (name: string): number => {
  let c = nameCodes.get(name)
  if (c === undefined) {
    const h = new TraceHash()
    h.str(name)
    c = parseInt(h.digest().slice(0, 8), 16)
    nameCodes.set(name, c)
  }
  return c
}

// Sorted-by-id runnable set: binary search, then a shift by hand (`splice` allocates an array of
// the removed elements at every call, and this runs at every step).
const insertById = (xs: Array<ActorRecord>, a: ActorRecord): void => {
  let hi = xs.length
  if (hi === 0 || xs[hi - 1]!.id < a.id) {
    xs.push(a)
    return
  }
  let lo = 0
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (xs[mid]!.id < a.id) lo = mid + 1
    else hi = mid
  }
  xs.push(a)
  for (let i = xs.length - 1; i > lo; i--) xs[i] = xs[i - 1]!
  xs[lo] = a
}

const removeById = (xs: Array<ActorRecord>, a: ActorRecord): void => {
  let lo = 0
  let hi = xs.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (xs[mid]!.id < a.id) lo = mid + 1
    else hi = mid
  }
  for (let i = lo; i < xs.length - 1; i++) xs[i] = xs[i + 1]!
  xs.pop()
}

// Min-heaps: timers by (readyAt, id), deadlines by (at, id). Ties come out in id order, never arrival order.
const beforeReady = (a: ActorRecord, b: ActorRecord) => a.readyAt < b.readyAt || (a.readyAt === b.readyAt && a.id < b.id)
const beforeDeadline = (a: Deadline, b: Deadline) => a.at < b.at || (a.at === b.at && a.a.id < b.a.id)

const heapPush = <T>(h: Array<T>, x: T, before: (a: T, b: T) => boolean): void => {
  h.push(x)
  let i = h.length - 1
  while (i > 0) {
    const p = (i - 1) >> 1
    if (!before(h[i]!, h[p]!)) break
    const t = h[i]!
    h[i] = h[p]!
    h[p] = t
    i = p
  }
}

const heapPop = <T>(h: Array<T>, before: (a: T, b: T) => boolean): T => {
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
      const t = h[i]!
      h[i] = h[m]!
      h[m] = t
      i = m
    }
  }
  return top
}
