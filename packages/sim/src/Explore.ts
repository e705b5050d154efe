/**
 * Exploration: many runs of one program with seeds counted up from a base seed, under one search
 * strategy, stopping at the first violation (or collecting one per invariant with `all`). Wall
 * time for the rates comes from the caller's `Clock` service, never from ambient time, so the
 * simulation stays deterministic and tests can pin the clock.
 */
import { Clock, Effect } from "effect"
import type { Outcome, Violation } from "./internal/kernel.js"
import { InvalidRunOptions, type RunResult, runSync } from "./Run.js"
import type { SimKernel } from "./Sim.js"
import type { SearchStrategy } from "./Strategy.js"

/** Options of an exploration. */
export interface ExploreOptions {
  /** Base seed; run i uses seed (seed + i) mod 2^32. */
  readonly seed: number
  readonly runs: number
  readonly strategy: SearchStrategy
  readonly maxSteps?: number
  readonly maxTimeNs?: number
  readonly digest?: string
  /** Keep going after a violation, keeping the first run of each distinct invariant. */
  readonly all?: boolean
  /** Called every `progressEvery` runs (default 100) with the runs done so far. */
  readonly onProgress?: (done: number, total: number) => Effect.Effect<void>
  readonly progressEvery?: number
}

/** A violating run: which run, its seed, what broke and how to replay it. */
export interface FoundViolation extends Violation {
  readonly run: number
  readonly seed: number
  readonly replay: string
  /** How many runs broke this invariant (with `all`). */
  readonly count: number
}

/** What an exploration found and how fast it went. */
export interface ExploreResult {
  readonly runs: number
  readonly steps: number
  readonly violations: ReadonlyArray<FoundViolation>
  readonly outcomes: Readonly<Record<Outcome, number>>
  /** Invariant name to checks made, over all runs. */
  readonly invariantChecks: Readonly<Record<string, number>>
  /** Distinct trace hashes seen: a floor on the distinct schedules explored. */
  readonly distinctTraces: number
  readonly wallNs: number
  readonly runsPerSecond: number
  readonly stepsPerSecond: number
}

/** Explores `program`; fails with `InvalidRunOptions` for bad options. */
export const explore = <A, E, R>(
  program: Effect.Effect<A, E, R>,
  options: ExploreOptions
): Effect.Effect<ExploreResult, InvalidRunOptions, Exclude<R, SimKernel>> =>
  Effect.gen(function*() {
    if (!Number.isSafeInteger(options.runs) || options.runs < 1) {
      return yield* new InvalidRunOptions({ field: "runs", message: `must be a positive integer, got ${options.runs}` })
    }
    const context = yield* Effect.context<Exclude<R, SimKernel>>()
    const provided = Effect.provide(program, context) as Effect.Effect<A, E, SimKernel>
    const start = yield* Clock.currentTimeNanos
    const outcomes: Record<Outcome, number> = { completed: 0, violation: 0, deadlock: 0, "step-bound": 0, "time-bound": 0 }
    const invariantChecks: Record<string, number> = {}
    const byInvariant = new Map<string, FoundViolation>()
    const traces = new Set<string>()
    const every = options.progressEvery ?? 100
    let steps = 0
    let runs = 0
    let pctSteps = options.strategy._tag === "pct" ? options.strategy.steps : undefined
    for (let i = 0; i < options.runs; i++) {
      const strategy: SearchStrategy = options.strategy._tag === "pct"
        ? { ...options.strategy, steps: pctSteps ?? Math.min(options.maxSteps ?? 1000, 1000) }
        : options.strategy
      const seed = (options.seed + i) >>> 0
      const r: RunResult<A, E> | InvalidRunOptions = yield* Effect.try({
        try: () =>
          runSync(provided, {
            seed,
            strategy,
            ...(options.maxSteps !== undefined ? { maxSteps: options.maxSteps } : {}),
            ...(options.maxTimeNs !== undefined ? { maxTimeNs: options.maxTimeNs } : {}),
            ...(options.digest !== undefined ? { digest: options.digest } : {})
          }),
        catch: (e) => {
          if (e instanceof InvalidRunOptions) return e
          throw e
        }
      })
      runs++
      steps += r.steps
      outcomes[r.outcome]++
      traces.add(r.traceHash)
      for (const [name, n] of Object.entries(r.invariantChecks)) invariantChecks[name] = (invariantChecks[name] ?? 0) + n
      // PCT needs the run length k; learn it as the longest run seen (Shuttle does the same).
      if (options.strategy._tag === "pct" && options.strategy.steps === undefined) pctSteps = Math.max(pctSteps ?? 1, r.steps)
      if (r.violation !== undefined) {
        const seen = byInvariant.get(r.violation.invariant)
        if (seen === undefined) byInvariant.set(r.violation.invariant, { ...r.violation, run: i, seed, replay: r.token, count: 1 })
        else byInvariant.set(r.violation.invariant, { ...seen, count: seen.count + 1 })
        if (!options.all) break
      }
      if (options.onProgress !== undefined && (i + 1) % every === 0) yield* options.onProgress(i + 1, options.runs)
    }
    const wallNs = Number((yield* Clock.currentTimeNanos) - start)
    const perSecond = (n: number) => (wallNs > 0 ? Math.round((n * 1e9) / wallNs) : 0)
    return {
      runs,
      steps,
      violations: [...byInvariant.values()],
      outcomes,
      invariantChecks,
      distinctTraces: traces.size,
      wallNs,
      runsPerSecond: perSecond(runs),
      stepsPerSecond: perSecond(steps)
    }
  })
