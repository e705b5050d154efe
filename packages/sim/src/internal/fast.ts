/**
 * The `fast` engine: the core steps each actor's generator itself, synchronously. A granted
 * actor first finishes the step it parked on (a memory operation, a mailbox receive, ...), then
 * runs until its next scheduling point, wait or end. Nothing is allocated per step beyond the
 * operation objects the model code yields.
 */
import { type Gen, type Op, OpKind, type Program, type Spawn, type Step, type WaitFor } from "../Op.js"
import type { Call, Fail, Sleep } from "../Op.js"
import { type ActorExit, type ActorRecord, BLOCKED, Core, type CoreOptions, WaitQueue } from "./core.js"

const failure = (e: unknown): ActorExit => (process.env.KVMLAB_DEBUG ? console.error(e) : 0, { _tag: "failure", message: e instanceof Error ? e.message : String(e), error: e })

export class FastEngine extends Core {
  readonly engine = "fast" as const
  private root: ActorRecord | undefined = undefined

  constructor(options: CoreOptions) {
    super(options)
  }

  /** Makes `main` actor 0. */
  start(main: Program<unknown>): void {
    this.root = this.spawnActor("main", main)
  }

  advance(pauseAt = Infinity): boolean {
    return this.loop(this.root!, pauseAt)
  }

  rootExit(): ActorExit | undefined {
    return this.root?.exit
  }

  private spawnActor(name: string, program: Program<unknown>): ActorRecord {
    const a = this.newActor(name)
    a.gen = program() as Gen<unknown>
    this.makeReady(a, this.now)
    return a
  }

  protected grant(a: ActorRecord): void {
    let input: unknown
    const pending = a.pending
    if (pending !== undefined) {
      let r: unknown
      try {
        r = pending.run(this)
      } catch (e) {
        return this.finishActor(a, failure(e))
      }
      if (r === BLOCKED) return this.blockActor(a, this.blockQ!, Infinity)
      a.pending = undefined
      input = r
    } else input = a.resumeWithTimeout ? a.timedOut : undefined
    this.drive(a, input)
  }

  /**
   * Runs `a`'s generators from `input` until the actor parks, blocks, finishes or halts. `a.gen`
   * is the generator on top of the actor's stack, `a.callers` the ones below it (see `Call`): a
   * `Call` pushes its generator, a return pops it and resumes the caller with the value, an
   * exception is thrown into the caller (as `yield*` would); the bottom one returning or
   * throwing ends the actor.
   */
  private drive(a: ActorRecord, input: unknown): void {
    let gen = a.gen!
    let throwing = false
    a.resumeWithTimeout = false
    for (;;) {
      let res: IteratorResult<Op, unknown>
      try {
        res = throwing ? gen.throw(input) : gen.next(input)
      } catch (e) {
        const callers = a.callers
        if (callers === undefined || callers.length === 0) return this.finishActor(a, failure(e))
        a.gen = gen = callers.pop()!
        input = e
        throwing = true
        continue
      }
      throwing = false
      if (res.done === true) {
        const callers = a.callers
        if (callers === undefined || callers.length === 0) return this.finishActor(a, { _tag: "success", value: res.value })
        a.gen = gen = callers.pop()!
        input = res.value
        continue
      }
      const op = res.value
      switch (op.kind) {
        case OpKind.Step: {
          const step = op as Step<unknown>
          if (step.point) {
            a.pending = step
            return this.parkPoint(a, step.costNs)
          }
          let r: unknown
          try {
            r = step.run(this)
          } catch (e) {
            return this.finishActor(a, failure(e))
          }
          if (r === BLOCKED) {
            a.pending = step
            return this.blockActor(a, this.blockQ!, Infinity)
          }
          input = r
          continue
        }
        case OpKind.Call: {
          ;(a.callers ??= []).push(gen)
          a.gen = gen = (op as Call<unknown>).gen
          input = undefined
          continue
        }
        case OpKind.Sleep: {
          const ns = (op as Sleep).ns
          if (!Number.isFinite(ns)) return this.blockActor(a, new WaitQueue("forever"), Infinity)
          return this.parkSleep(a, ns)
        }
        case OpKind.WaitFor: {
          const w = op as WaitFor
          a.resumeWithTimeout = true
          return this.blockActor(a, w.queue as WaitQueue, w.ns)
        }
        case OpKind.Spawn: {
          const s = op as Spawn<unknown>
          const child = this.spawnActor(s.name, s.program)
          input = { id: child.id, name: child.name, record: child }
          continue
        }
        case OpKind.GetKernel:
          input = this
          continue
        case OpKind.Fail: {
          const f = op as Fail
          return this.haltActor(a, f.invariant, f.message)
        }
      }
    }
  }
}
