/**
 * Running a program under the kernel: `run` takes a program, a seed, a strategy and bounds, and
 * returns its exit, the recorded decisions, the trace hash, the step count, the virtual time
 * reached and any violation, with a replay token that reproduces all of it. `replay` runs a
 * token again and fails loudly when the run diverges from it.
 */
import { Effect, ModuleVersion, Schema } from "effect"
import type { Exit } from "effect"
import { Kernel, type Outcome, ReplayDivergence, type TraceEvent, type Violation } from "./internal/kernel.js"
import { seedProblem } from "./Prng.js"
import * as ReplayToken from "./ReplayToken.js"
import { SimKernel } from "./Sim.js"
import type { SearchStrategy, Strategy } from "./Strategy.js"

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
}

/** Raised for an option that is out of range; `field` names it. */
export class InvalidRunOptions extends Schema.TaggedError<InvalidRunOptions>()("InvalidRunOptions", {
  field: Schema.String,
  message: Schema.String
}) {}

/** Raised when a replay does not reproduce its token. */
export class ReplayDiverged extends Schema.TaggedError<ReplayDiverged>()("ReplayDiverged", {
  message: Schema.String
}) {}

/** Everything one run produced. */
export interface RunResult<A, E> {
  /** How the main program ended, when it did. */
  readonly exit: Exit.Exit<A, E> | undefined
  readonly outcome: Outcome
  readonly violation: Violation | undefined
  readonly seed: number
  readonly strategy: SearchStrategy
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

interface Resolved {
  readonly seed: number
  readonly strategy: SearchStrategy
  readonly maxSteps: number
  readonly maxTimeNs: number
  readonly digest: string
  readonly trace: boolean
  readonly replay: ReplayToken.ReplayTokenData | undefined
}

const resolve = (o: RunOptions): Resolved | InvalidRunOptions | ReplayToken.InvalidReplayToken => {
  const bad = (field: string, message: string) => new InvalidRunOptions({ field, message })
  const digest = o.digest ?? ""
  const trace = o.trace ?? false
  if (o.strategy?._tag === "replay") {
    const data = ReplayToken.decode(o.strategy.token)
    if (data instanceof ReplayToken.InvalidReplayToken) return data
    if (o.digest !== undefined && data.digest !== o.digest) {
      return new ReplayToken.InvalidReplayToken({
        message: `the token was made for ${data.digest || "an unnamed program"}, not ${o.digest || "this one"}`
      })
    }
    return { ...data, digest: data.digest, trace, replay: data }
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
  return { seed: o.seed, strategy, maxSteps, maxTimeNs, digest, trace, replay: undefined }
}

/** The `effect` version recorded in tokens (traces do not depend on it, but it helps diagnose). */
export const effectVersion = (): string => ModuleVersion.getCurrentVersion()

/**
 * Runs a program synchronously under the kernel and returns its result. For hot loops
 * (`explore`, benchmarks); most callers want `run`. Throws on invalid options.
 */
export const runSync = <A, E>(program: Effect.Effect<A, E, SimKernel>, options: RunOptions): RunResult<A, E> => {
  const r = resolve(options)
  if (!("seed" in r)) throw r
  return execute(program, r)
}

const execute = <A, E>(program: Effect.Effect<A, E, SimKernel>, r: Resolved): RunResult<A, E> => {
  const kernel = new Kernel({
    seed: r.seed,
    strategy: r.strategy,
    maxSteps: r.maxSteps,
    maxTimeNs: r.maxTimeNs,
    trace: r.trace,
    replay: r.replay?.decisions
  })
  kernel.execute(Effect.provideService(program, SimKernel, kernel))
  const invariantChecks: Record<string, number> = {}
  for (const inv of kernel.invariants) invariantChecks[inv.name] = (invariantChecks[inv.name] ?? 0) + inv.checks
  for (const [name, n] of kernel.eventChecks) invariantChecks[name] = (invariantChecks[name] ?? 0) + n
  const traceHash = kernel.hash.digest()
  let token: string | undefined
  const result: RunResult<A, E> = {
    exit: kernel.mainExit as Exit.Exit<A, E> | undefined,
    outcome: kernel.outcome,
    violation: kernel.violation,
    seed: r.seed,
    strategy: r.strategy,
    decisions: kernel.decisions,
    traceHash,
    steps: kernel.steps,
    timeNs: kernel.now,
    invariantChecks,
    trace: kernel.trace,
    get token() {
      token ??= ReplayToken.encode({
        seed: r.seed,
        strategy: r.strategy,
        maxSteps: r.maxSteps,
        maxTimeNs: r.maxTimeNs,
        digest: r.digest,
        effectVersion: effectVersion(),
        steps: kernel.steps,
        traceHash,
        decisions: kernel.decisions
      })
      return token
    }
  }
  if (r.replay !== undefined) checkReplay(r.replay, result, kernel.replayLeftover())
  return result
}

const checkReplay = (t: ReplayToken.ReplayTokenData, got: RunResult<unknown, unknown>, leftover: number): void => {
  const version = t.effectVersion === effectVersion() ? "" : ` (the token was made with effect ${t.effectVersion}, this is ${effectVersion()})`
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
export const run = <A, E, R>(
  program: Effect.Effect<A, E, R>,
  options: RunOptions
): Effect.Effect<RunResult<A, E>, InvalidRunOptions | ReplayToken.InvalidReplayToken | ReplayDiverged, Exclude<R, SimKernel>> =>
  Effect.contextWithEffect((context): Effect.Effect<
    RunResult<A, E>,
    InvalidRunOptions | ReplayToken.InvalidReplayToken | ReplayDiverged
  > => {
    const r = resolve(options)
    if (!("seed" in r)) return Effect.fail(r)
    return Effect.try({
      try: () => execute(Effect.provide(program, context) as Effect.Effect<A, E, SimKernel>, r),
      catch: (e) => {
        if (e instanceof ReplayDivergence) return new ReplayDiverged({ message: e.message })
        throw e
      }
    })
  })

/** Replays a token against `program`; the same as `run` with the `replay` strategy. */
export const replay = <A, E, R>(program: Effect.Effect<A, E, R>, token: string, options?: { readonly trace?: boolean; readonly digest?: string }) =>
  run(program, { seed: 0, strategy: { _tag: "replay", token }, ...options })
