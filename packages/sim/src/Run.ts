/**
 * Running a program under the kernel: `run` takes a program, a seed, a strategy, bounds and an
 * engine, and returns its exit, the recorded decisions, the trace hash, the step count, the
 * virtual time reached and any violation, with a replay token that reproduces all of it on
 * either engine. `replay` runs a token again and fails loudly when the run diverges from it.
 */
import { Effect, Exit, ModuleVersion, Schema } from "effect"
import { type ActorExit, type Core, type CoreOptions, type Outcome, ReplayDivergence, type TraceEvent, type Violation } from "./internal/core.js"
import { EffectEngine } from "./internal/effect.js"
import { FastEngine } from "./internal/fast.js"
import type { Program } from "./Op.js"
import { seedProblem } from "./Prng.js"
import * as ReplayToken from "./ReplayToken.js"
import type { SearchStrategy, Strategy } from "./Strategy.js"

/**
 * Which engine runs the program: `fast` steps the generators itself (the default, for
 * exploration); `effect` runs every actor as an Effect fiber with state in STM and Effect
 * queues (the reference). Both give the same trace for the same seed.
 */
export const Engine = Schema.Literal("fast", "effect")
export type Engine = typeof Engine.Type

/** Options of one run. */
export interface RunOptions {
  /** 32-bit unsigned seed: it picks every interleaving and every random draw. */
  readonly seed: number
  /** Default `random`. A `replay` strategy takes seed, strategy and bounds from its token. */
  readonly strategy?: Strategy
  /** Maximum scheduling steps (default 1,000,000). */
  readonly maxSteps?: number
  /** Maximum virtual time in nanoseconds (default 2^53 - 1). */
  readonly maxTimeNs?: number
  /** Record trace events (default false; the hash is always computed). */
  readonly trace?: boolean
  /** A digest of the program or scenario, stored in the token and checked on replay. */
  readonly digest?: string
  /** Default `fast`. */
  readonly engine?: Engine
  /**
   * Decisions to take where they fit, else keep running the actor that ran last (a negative
   * entry: no preference). For shrinking: the run records the decisions it really took.
   */
  readonly guide?: ReadonlyArray<number>
  /**
   * `run` only: called between chunks of `pauseEvery` steps with how far the run has come; the
   * run goes on when it completes, and interrupting it there stops the run. Default:
   * `Effect.yieldNow()`, so other fibers run and an interruption is seen within a chunk. An app
   * that must see signals gives the event loop a turn here (and may draw progress). The pauses
   * change nothing in the run.
   */
  readonly onPause?: (at: RunProgress) => Effect.Effect<void>
  /** `run` only: steps between pauses (default 50,000: tens of milliseconds). */
  readonly pauseEvery?: number
}

/** How far a run has come: at a pause of `run`. */
export interface RunProgress {
  readonly steps: number
  readonly timeNs: number
  /** The run's bounds, to say how much is left. */
  readonly maxSteps: number
  readonly maxTimeNs: number
}

/** Raised for an option that is out of range; `field` names it. */
export class InvalidRunOptions extends Schema.TaggedError<InvalidRunOptions>()("InvalidRunOptions", {
  field: Schema.String,
  message: Schema.String
}) {}

/**
 * Raised when a replay does not reproduce its token: the message says where (the step and the
 * actor the token chose against those runnable, or the steps and trace hash at the end); the
 * `effect` versions of the token and of this build say whether another build made it.
 */
export class ReplayDiverged extends Schema.TaggedError<ReplayDiverged>()("ReplayDiverged", {
  message: Schema.String,
  tokenEffectVersion: Schema.String,
  effectVersion: Schema.String
}) {}

/** Everything one run produced. */
export interface RunResult<A> {
  /** How the main program ended, when it did. */
  readonly exit: Exit.Exit<A, unknown> | undefined
  readonly outcome: Outcome
  readonly violation: Violation | undefined
  readonly seed: number
  readonly strategy: SearchStrategy
  readonly engine: Engine
  /** The actor chosen at every decision with more than one runnable actor. */
  readonly decisions: ReadonlyArray<number>
  readonly traceHash: string
  readonly steps: number
  readonly timeNs: number
  /** Invariant name to the number of times it was checked. */
  readonly invariantChecks: Readonly<Record<string, number>>
  readonly trace: ReadonlyArray<TraceEvent>
  /** A replay token for this run (computed on first access). */
  readonly token: string
}

const DEFAULT_MAX_STEPS = 1_000_000
const DEFAULT_PAUSE_EVERY = 50_000

interface Resolved {
  readonly seed: number
  readonly strategy: SearchStrategy
  readonly maxSteps: number
  readonly maxTimeNs: number
  readonly digest: string
  readonly trace: boolean
  readonly engine: Engine
  readonly replay: ReplayToken.ReplayTokenData | undefined
  readonly guide: ReadonlyArray<number> | undefined
}

const resolve = (o: RunOptions): Resolved | InvalidRunOptions | ReplayToken.InvalidReplayToken => {
  const bad = (field: string, message: string) => new InvalidRunOptions({ field, message })
  const digest = o.digest ?? ""
  const trace = o.trace ?? false
  const engine = o.engine ?? "fast"
  if (engine !== "fast" && engine !== "effect") return bad("engine", `expected fast or effect, got ${String(engine)}`)
  if (o.strategy?._tag === "replay") {
    const data = ReplayToken.decode(o.strategy.token)
    if (data instanceof ReplayToken.InvalidReplayToken) return data
    if (o.digest !== undefined && data.digest !== o.digest) {
      return new ReplayToken.InvalidReplayToken({
        message: `the token was made for another program or scenario (made by another version, or edited): ${digestDifference(data.digest, o.digest)}`
      })
    }
    return { ...data, digest: data.digest, trace, engine, replay: data, guide: undefined }
  }
  const seedIssue = seedProblem(o.seed)
  if (seedIssue !== undefined) return bad("seed", seedIssue)
  const maxSteps = o.maxSteps ?? DEFAULT_MAX_STEPS
  if (!Number.isSafeInteger(maxSteps) || maxSteps < 1) return bad("maxSteps", `must be a positive integer, got ${maxSteps}`)
  const maxTimeNs = o.maxTimeNs ?? Number.MAX_SAFE_INTEGER
  if (!Number.isSafeInteger(maxTimeNs) || maxTimeNs < 0) {
    return bad("maxTimeNs", `must be a non-negative integer, got ${maxTimeNs}`)
  }
  const strategy = o.strategy ?? { _tag: "random" }
  if (strategy._tag === "pct" && !(Number.isInteger(strategy.depth) && strategy.depth >= 1)) {
    return bad("strategy.depth", `must be an integer >= 1, got ${strategy.depth}`)
  }
  return { seed: o.seed, strategy, maxSteps, maxTimeNs, digest, trace, engine, replay: undefined, guide: o.guide }
}

/** Where two digests differ, short enough for one line: a digest can be a whole scenario. */
const digestDifference = (token: string, here: string): string => {
  let i = 0
  while (i < token.length && i < here.length && token[i] === here[i]) i++
  const at = (d: string) => (i >= d.length ? "its end" : `'${d.slice(i, i + 30)}${d.length > i + 30 ? "…" : ""}'`)
  return `its digest differs from this one's at character ${i + 1}: the token has ${at(token)} where this one has ${at(here)}`
}

/** The `effect` version recorded in tokens (traces do not depend on it, but it helps diagnose). */
export const effectVersion = (): string => ModuleVersion.getCurrentVersion()

/** A divergence's hint when the token was made by another `effect` version. */
const versionNote = (t: ReplayToken.ReplayTokenData): string =>
  t.effectVersion === effectVersion() ? "" : ` (the token was made with effect ${t.effectVersion}, this is ${effectVersion()})`

/**
 * Runs a program synchronously under the kernel and returns its result. For hot loops
 * (`explore`, benchmarks); most callers want `run`. Throws on invalid options and on a replay
 * that diverges (`ReplayDivergence`).
 */
export const runSync = <A>(program: Program<A>, options: RunOptions): RunResult<A> => {
  const r = resolve(options)
  if (!("seed" in r)) throw r
  const kernel = begin(program, r)
  divergence(r, () => kernel.advance())
  return finish<A>(kernel, r)
}

const toExit = <A>(e: ActorExit | undefined): Exit.Exit<A, unknown> | undefined =>
  e === undefined ? undefined : e._tag === "success" ? Exit.succeed(e.value as A) : Exit.die(e.error)

/** The kernel of the run, its main program started. */
const begin = (program: Program<unknown>, r: Resolved): Core => {
  const options: CoreOptions = {
    seed: r.seed,
    strategy: r.strategy,
    maxSteps: r.maxSteps,
    maxTimeNs: r.maxTimeNs,
    trace: r.trace,
    replay: r.replay?.decisions ?? r.guide,
    guide: r.guide !== undefined
  }
  const kernel = r.engine === "effect" ? new EffectEngine(options) : new FastEngine(options)
  divergence(r, () => kernel.start(program))
  return kernel
}

/** Runs `f`, naming the token's effect version in a replay's divergence. */
const divergence = <B>(r: Resolved, f: () => B): B => {
  try {
    return f()
  } catch (e) {
    throw r.replay !== undefined && e instanceof ReplayDivergence ? new ReplayDivergence(`${e.message}${versionNote(r.replay)}`) : e
  }
}

/** The result of a run that has ended; for a replay, checked against its token. */
const finish = <A>(kernel: Core, r: Resolved): RunResult<A> => {
  const invariantChecks: Record<string, number> = {}
  for (const inv of kernel.invariants) invariantChecks[inv.name] = (invariantChecks[inv.name] ?? 0) + inv.checks
  for (const [name, box] of kernel.eventChecks) invariantChecks[name] = (invariantChecks[name] ?? 0) + box.n
  const traceHash = kernel.hash.digest()
  const result = {
    exit: toExit<A>(kernel.rootExit()),
    outcome: kernel.outcome,
    violation: kernel.violation,
    seed: r.seed,
    strategy: r.strategy,
    engine: r.engine,
    decisions: kernel.decisions,
    traceHash,
    steps: kernel.steps,
    timeNs: kernel.now,
    invariantChecks,
    trace: kernel.trace
  }
  // `token`, computed on first access, is an accessor whose getter is one shared function, not a
  // `get token()` written in the literal: V8 gives an object literal with its own getter closure
  // an object V8 cannot collect young (each run's kernel then survived the minor GCs up to the
  // next full one: a third of what `explore` allocated was promoted).
  Object.defineProperty(result, TOKEN, { value: { r, steps: kernel.steps, traceHash, decisions: kernel.decisions, token: undefined } })
  Object.defineProperty(result, "token", { get: tokenOf, enumerable: true, configurable: true })
  const done = result as typeof result & { readonly token: string }
  if (r.replay !== undefined) checkReplay(r.replay, done, kernel.replayLeftover())
  return done
}

/** Where a result keeps what its `token` is made of (non-enumerable: not copied, not printed). */
const TOKEN = Symbol("token")

interface TokenSource {
  readonly r: Resolved
  readonly steps: number
  readonly traceHash: string
  readonly decisions: ReadonlyArray<number>
  token: string | undefined
}

/** The getter of every result's `token`: encoded once, on first access. */
function tokenOf(this: { readonly [TOKEN]: TokenSource }): string {
  const t = this[TOKEN]
  t.token ??= ReplayToken.encode({
    seed: t.r.seed,
    strategy: t.r.strategy,
    maxSteps: t.r.maxSteps,
    maxTimeNs: t.r.maxTimeNs,
    digest: t.r.digest,
    effectVersion: effectVersion(),
    steps: t.steps,
    traceHash: t.traceHash,
    decisions: t.decisions
  })
  return t.token
}

const checkReplay = (t: ReplayToken.ReplayTokenData, got: RunResult<unknown>, leftover: number): void => {
  const version = versionNote(t)
  if (leftover !== 0) throw new ReplayDivergence(`replay diverged: ${leftover} recorded decisions were not used${version}`)
  if (got.steps !== t.steps || got.traceHash !== t.traceHash) {
    throw new ReplayDivergence(
      `replay diverged: expected ${t.steps} steps and trace ${t.traceHash}, got ${got.steps} steps and trace ${got.traceHash}${version}`
    )
  }
}

/**
 * Runs `program` under the kernel. With `strategy: { _tag: "replay", token }` the seed,
 * strategy and bounds come from the token, and a run that diverges fails with `ReplayDiverged`.
 */
export const run = <A>(
  program: Program<A>,
  options: RunOptions
): Effect.Effect<RunResult<A>, InvalidRunOptions | ReplayToken.InvalidReplayToken | ReplayDiverged> =>
  Effect.suspend((): Effect.Effect<RunResult<A>, InvalidRunOptions | ReplayToken.InvalidReplayToken | ReplayDiverged> => {
    const r = resolve(options)
    if (!("seed" in r)) return Effect.fail(r)
    const every = options.pauseEvery ?? DEFAULT_PAUSE_EVERY
    if (!Number.isSafeInteger(every) || every < 1) return Effect.fail(new InvalidRunOptions({ field: "pauseEvery", message: `must be a positive integer, got ${every}` }))
    const onPause = options.onPause ?? (() => Effect.yieldNow())
    const diverged = (e: unknown) => {
      if (e instanceof ReplayDivergence) {
        return new ReplayDiverged({ message: e.message, tokenEffectVersion: r.replay?.effectVersion ?? effectVersion(), effectVersion: effectVersion() })
      }
      throw e
    }
    return Effect.acquireUseRelease(
      Effect.try({ try: () => begin(program, r), catch: diverged }),
      (kernel) =>
        Effect.gen(function*() {
          while (!(yield* Effect.try({ try: () => divergence(r, () => kernel.advance(kernel.steps + every)), catch: diverged }))) {
            yield* onPause({ steps: kernel.steps, timeNs: kernel.now, maxSteps: r.maxSteps, maxTimeNs: r.maxTimeNs })
          }
          return yield* Effect.try({ try: () => finish<A>(kernel, r), catch: diverged })
        }),
      // A run stopped at a pause (interrupted) frees what its engine holds; an ended run already has.
      (kernel) => Effect.sync(() => kernel.abort())
    )
  })

/** Replays a token against `program`; the same as `run` with the `replay` strategy. */
export const replay = <A>(
  program: Program<A>,
  token: string,
  options?: Pick<RunOptions, "trace" | "digest" | "engine" | "onPause" | "pauseEvery">
) => run(program, { seed: 0, strategy: { _tag: "replay", token }, ...options })
