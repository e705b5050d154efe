/**
 * The `effect` engine, the reference: every actor is an Effect fiber that runs its generator and
 * turns each operation into an Effect. At a scheduling point the fiber parks (an `Effect.async`
 * whose resume the core keeps); the core grants one actor at a time and drains the fibers' task
 * queue under a scheduler it owns, synchronously, until the granted fiber parks again. Each fiber
 * has the virtual `Clock` and a seeded `Random` installed, and steps run their Effect form
 * (`runEffect`): memory state in STM, mailboxes on Effect `Queue`s. The decisions are the core's,
 * so the trace is the `fast` engine's, and never depends on Effect internals.
 */
import { Cause, Clock, Duration, Effect, Exit, Random } from "effect"
import type { Fiber } from "effect"
import type { Scheduler } from "effect/Scheduler"
import { type Call, type Fail, type Gen, type Op, OpKind, type Program, type Sleep, type Spawn, type Step, type WaitFor } from "../Op.js"
import { Prng } from "../Prng.js"
import { type ActorExit, type ActorRecord, ActorState, BLOCKED, Core, type CoreOptions, WaitQueue } from "./core.js"

const VOID = Effect.void
type Resume = (value: unknown) => void

/** A scheduler that only queues tasks; the core drains them synchronously. */
class KernelScheduler implements Scheduler {
  tasks: Array<() => void> = []
  shouldYield(): number | false {
    return false // no op-count preemption: actors run until they park
  }
  scheduleTask(task: () => void): void {
    this.tasks.push(task)
  }
}

const exitOf = (exit: Exit.Exit<unknown, unknown>): ActorExit => {
  if (Exit.isSuccess(exit)) return { _tag: "success", value: exit.value }
  const e = Cause.squash(exit.cause)
  return { _tag: "failure", message: e instanceof Error ? e.message : String(e), error: e }
}

export class EffectEngine extends Core {
  readonly engine = "effect" as const
  private readonly scheduler = new KernelScheduler()
  private readonly fibers: Array<Fiber.RuntimeFiber<unknown, unknown> | undefined> = []
  private root: ActorRecord | undefined = undefined
  private tearingDown = false
  readonly clock: Clock.Clock

  constructor(options: CoreOptions) {
    super(options)
    this.clock = makeClock(this)
  }

  /** Makes `main` actor 0: its fiber, waiting for its first grant. */
  start(main: Program<unknown>): void {
    const root = this.newActor("main")
    this.root = root
    this.makeReady(root, 0)
    this.fibers[root.id] = Effect.runFork(this.actorFiber(root, main), { scheduler: this.scheduler })
    try {
      this.drain()
    } catch (e) {
      this.teardown()
      throw e
    }
  }

  /** Runs until the end or `pauseAt`; the actors' fibers are interrupted when the run ends (or throws). */
  advance(pauseAt = Infinity): boolean {
    let ended = true
    try {
      ended = this.loop(this.root!, pauseAt)
    } finally {
      if (ended) this.teardown()
    }
    return ended
  }

  override abort(): void {
    this.teardown()
  }

  rootExit(): ActorExit | undefined {
    return this.root?.exit
  }

  protected grant(a: ActorRecord): void {
    const resume = a.resume!
    a.resume = undefined
    resume(VOID)
    this.drain()
    if (a.state === ActorState.Running && this.violation === undefined) {
      this.recordViolation(
        "kernel.unscheduled-suspension",
        `actor ${a.name} suspended outside a kernel wait (an Effect Queue, Deferred or STM.retry in a step?): steps must block through host.block`,
        a.name
      )
    }
  }

  private drain(): void {
    const s = this.scheduler
    let i = 0
    while (i < s.tasks.length) s.tasks[i++]!()
    s.tasks.length = 0
  }

  /** The fiber of actor `a`: wait for the first grant, run the generator, record the exit. */
  private actorFiber(a: ActorRecord, program: Program<unknown>): Effect.Effect<void> {
    const firstGrant = Effect.async<void>((resume) => {
      a.resume = resume as Resume
    })
    return firstGrant.pipe(
      Effect.zipRight(Effect.suspend(() => this.drive(a, program()))),
      Effect.exit,
      Effect.flatMap((exit) =>
        Effect.sync(() => {
          if (this.tearingDown) return
          this.finishActor(a, exitOf(exit))
        })
      ),
      Effect.withClock(this.clock),
      Effect.withRandom(Random.make(Prng.derive(this.seed, a.id + 1)))
    )
  }

  /**
   * Runs `root` and the generators it calls (`Call`) on a stack of its own, as the `fast` engine
   * does: a return resumes the caller with the value, an exception is thrown into the caller;
   * every other operation becomes an Effect. Fails (dies) with what `root` throws.
   */
  private drive(a: ActorRecord, root: Gen<unknown>): Effect.Effect<unknown> {
    const callers: Array<Gen<unknown>> = []
    let gen = root
    const resume = (input: unknown, throwing: boolean): Effect.Effect<unknown> => {
      for (;;) {
        let res: IteratorResult<Op, unknown>
        try {
          res = throwing ? gen.throw(input) : gen.next(input)
        } catch (e) {
          if (callers.length === 0) return Effect.die(e)
          gen = callers.pop()!
          input = e
          throwing = true
          continue
        }
        throwing = false
        if (res.done === true) {
          if (callers.length === 0) return Effect.succeed(res.value)
          gen = callers.pop()!
          input = res.value
          continue
        }
        const op = res.value
        if (op.kind === OpKind.Call) {
          callers.push(gen)
          gen = (op as Call<unknown>).gen
          input = undefined
          continue
        }
        return Effect.flatMap(this.interpret(a, op), step)
      }
    }
    const step = (input: unknown): Effect.Effect<unknown> => resume(input, false)
    return step(undefined)
  }

  private park(a: ActorRecord, costNs: number): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      a.resume = resume as Resume
      this.parkPoint(a, costNs)
    })
  }

  private blockOn(a: ActorRecord, q: WaitQueue, ns: number): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      a.resume = resume as Resume
      this.blockActor(a, q, ns)
    })
  }

  private runStep(a: ActorRecord, step: Step<unknown>): Effect.Effect<unknown> {
    const attempt: Effect.Effect<unknown> = Effect.flatMap(
      step.runEffect !== undefined ? step.runEffect(this) : Effect.sync(() => step.run(this)),
      (r) => (r === BLOCKED ? Effect.zipRight(this.blockOn(a, this.blockQ!, Infinity), attempt) : Effect.succeed(r))
    )
    return attempt
  }

  private interpret(a: ActorRecord, op: Op): Effect.Effect<unknown> {
    switch (op.kind) {
      case OpKind.Step: {
        const step = op as Step<unknown>
        return step.point ? Effect.zipRight(this.park(a, step.costNs), this.runStep(a, step)) : this.runStep(a, step)
      }
      case OpKind.Sleep:
        return this.sleep(a, (op as Sleep).ns)
      case OpKind.WaitFor: {
        const w = op as WaitFor
        return Effect.map(this.blockOn(a, w.queue as WaitQueue, w.ns), () => a.timedOut)
      }
      case OpKind.Spawn: {
        const s = op as Spawn<unknown>
        return Effect.suspend(() => {
          const child = this.newActor(s.name)
          this.makeReady(child, this.now)
          return Effect.map(Effect.forkDaemon(this.actorFiber(child, s.program)), (fiber) => {
            this.fibers[child.id] = fiber
            return { id: child.id, name: child.name, record: child }
          })
        })
      }
      case OpKind.GetKernel:
        return Effect.succeed(this)
      case OpKind.Fail: {
        const f = op as Fail
        return Effect.zipRight(Effect.sync(() => this.haltActor(a, f.invariant, f.message)), Effect.never)
      }
      case OpKind.Call:
        return Effect.dieMessage("a Call reached interpret") // drive handles calls
    }
  }

  private sleep(a: ActorRecord, ns: number): Effect.Effect<void> {
    if (!Number.isFinite(ns)) return this.blockOn(a, new WaitQueue("forever"), Infinity)
    return Effect.async<void>((resume) => {
      a.resume = resume as Resume
      this.parkSleep(a, ns)
    })
  }

  /** An Effect `Clock.sleep` inside a step's Effect: a virtual sleep of the current actor. */
  sleepCurrent(ns: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      const a = this.current
      return a === undefined ? Effect.dieMessage("Clock.sleep outside an actor") : this.sleep(a, ns)
    })
  }

  private teardown(): void {
    if (this.tearingDown) return
    this.tearingDown = true
    for (const a of this.actors) {
      const f = this.fibers[a.id]
      if (f !== undefined && a.exit === undefined) f.unsafeInterruptAsFork(f.id())
    }
    this.drain()
    this.drain()
  }
}

const makeClock = (k: EffectEngine): Clock.Clock => ({
  [Clock.ClockTypeId]: Clock.ClockTypeId,
  unsafeCurrentTimeMillis: () => Math.floor(k.now / 1e6),
  currentTimeMillis: Effect.sync(() => Math.floor(k.now / 1e6)),
  unsafeCurrentTimeNanos: () => BigInt(k.now),
  currentTimeNanos: Effect.sync(() => BigInt(k.now)),
  sleep: (d: Duration.Duration) => k.sleepCurrent(Duration.isFinite(d) ? Number(Duration.unsafeToNanos(d)) : Infinity)
})
