/**
 * Exploration: many runs of one program with seeds counted up from a base seed, under one search
 * strategy, stopping at the first violation (or keeping the first run of each invariant with
 * `all`). Runs are made in blocks of consecutive seeds whose results merge in seed order, so a
 * caller can deal blocks to worker threads and get exactly what one thread gets: the same
 * violations at the same run indices, the same counts and distinct traces. Wall time for the
 * rates comes from the caller's `Clock` service, never from ambient time.
 */
import { Clock, Effect } from "effect"
import type { Outcome, Violation } from "./internal/core.js"
import type { Program } from "./Op.js"
import { type Engine, InvalidRunOptions, runSync } from "./Run.js"
import type { SearchStrategy } from "./Strategy.js"

/** Options of an exploration. */
export interface ExploreOptions extends BlockOptions {
  readonly runs: number
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
  /** Steps of the violating run. */
  readonly steps: number
}

/** What a block of consecutive runs found; blocks merge with `combine`. */
export interface BlockResult {
  /** Index of the block's first run. */
  readonly first: number
  /** Runs made: the whole block, or up to and including its first violation (without `all`). */
  readonly runs: number
  readonly steps: number
  readonly outcomes: Readonly<Record<Outcome, number>>
  readonly invariantChecks: Readonly<Record<string, number>>
  /** The distinct trace hashes of the block. */
  readonly traces: ReadonlyArray<string>
  /** The first violating run of each invariant in the block, with its count in the block. */
  readonly violations: ReadonlyArray<FoundViolation>
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

/** The options of the runs of a block (everything but the base seed's offset). */
export interface BlockOptions {
  /** Base seed; run i uses seed (seed + i) mod 2^32. */
  readonly seed: number
  readonly strategy: SearchStrategy
  readonly maxSteps?: number
  readonly maxTimeNs?: number
  readonly digest?: string
  /** Keep going after a violation, keeping the first run of each distinct invariant. */
  readonly all?: boolean
  /** Default `fast`. */
  readonly engine?: Engine
}

const emptyOutcomes = (): Record<Outcome, number> => ({ completed: 0, violation: 0, deadlock: 0, "step-bound": 0, "time-bound": 0 })

/** Checks the options every exploration shares. */
export const validate = (o: { readonly runs: number }): InvalidRunOptions | undefined =>
  !Number.isSafeInteger(o.runs) || o.runs < 1
    ? new InvalidRunOptions({ field: "runs", message: `must be a positive integer, got ${o.runs}` })
    : undefined

/**
 * The strategy the runs use. PCT needs the expected run length k, in scheduling decisions; when
 * the strategy does not give it, it is calibrated once from four `random` runs (seeds `seed` to
 * `seed + 3`): the most decisions any of them made. The same for every block and every worker,
 * so results do not depend on how the runs are dealt.
 */
export const runStrategy = (program: Program<unknown>, o: BlockOptions): SearchStrategy => {
  if (o.strategy._tag !== "pct" || o.strategy.steps !== undefined) return o.strategy
  let k = 1
  for (let i = 0; i < 4; i++) {
    const r = runSync(program, { ...bounds(o), seed: (o.seed + i) >>> 0, strategy: { _tag: "random" }, engine: o.engine ?? "fast" })
    k = Math.max(k, r.decisions.length)
  }
  return { ...o.strategy, steps: Math.min(k, 100_000_000) }
}

const bounds = (o: BlockOptions) => ({
  ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}),
  ...(o.maxTimeNs !== undefined ? { maxTimeNs: o.maxTimeNs } : {}),
  ...(o.digest !== undefined ? { digest: o.digest } : {})
})

/**
 * Makes runs `first` .. `first + count - 1` (seeds `seed + i`) with `strategy` (from
 * `runStrategy`); stops at the first violation unless `all`. Throws `InvalidRunOptions`.
 */
export const runBlock = (program: Program<unknown>, o: BlockOptions, strategy: SearchStrategy, first: number, count: number): BlockResult => {
  const outcomes = emptyOutcomes()
  const invariantChecks: Record<string, number> = {}
  const byInvariant = new Map<string, FoundViolation>()
  const traces = new Set<string>()
  const b = bounds(o)
  const engine = o.engine ?? "fast"
  let steps = 0
  let runs = 0
  for (let i = first; i < first + count; i++) {
    const seed = (o.seed + i) >>> 0
    const r = runSync(program, { seed, strategy, engine, ...b })
    runs++
    steps += r.steps
    outcomes[r.outcome]++
    traces.add(r.traceHash)
    for (const name in r.invariantChecks) invariantChecks[name] = (invariantChecks[name] ?? 0) + r.invariantChecks[name]!
    if (r.violation !== undefined) {
      const seen = byInvariant.get(r.violation.invariant)
      if (seen === undefined) byInvariant.set(r.violation.invariant, { ...r.violation, run: i, seed, replay: r.token, count: 1, steps: r.steps })
      else byInvariant.set(r.violation.invariant, { ...seen, count: seen.count + 1 })
      if (o.all !== true) break
    }
  }
  return { first, runs, steps, outcomes, invariantChecks, traces: [...traces], violations: [...byInvariant.values()] }
}

/** Whether a block ends the exploration (a violation, without `all`). */
export const stops = (b: BlockResult, all: boolean): boolean => !all && b.violations.length > 0

/**
 * Merges blocks in seed order, as one thread would have made them: without `all`, nothing after
 * the first block that found a violation counts.
 */
export const combine = (blocks: ReadonlyArray<BlockResult>, all: boolean) => {
  const sorted = [...blocks].sort((a, b) => a.first - b.first)
  const outcomes = emptyOutcomes()
  const invariantChecks: Record<string, number> = {}
  const byInvariant = new Map<string, FoundViolation>()
  const traces = new Set<string>()
  let runs = 0
  let steps = 0
  for (const b of sorted) {
    runs += b.runs
    steps += b.steps
    for (const k in b.outcomes) outcomes[k as Outcome] += b.outcomes[k as Outcome]
    for (const name in b.invariantChecks) invariantChecks[name] = (invariantChecks[name] ?? 0) + b.invariantChecks[name]!
    for (const t of b.traces) traces.add(t)
    for (const v of b.violations) {
      const seen = byInvariant.get(v.invariant)
      byInvariant.set(v.invariant, seen === undefined ? v : { ...seen, count: seen.count + v.count })
    }
    if (stops(b, all)) break
  }
  return { runs, steps, outcomes, invariantChecks, distinctTraces: traces.size, violations: [...byInvariant.values()] }
}

/** Rates from a run count, a step count and the wall time. */
export const rates = (runs: number, steps: number, wallNs: number) => {
  const perSecond = (n: number) => (wallNs > 0 ? Math.round((n * 1e9) / wallNs) : 0)
  return { wallNs, runsPerSecond: perSecond(runs), stepsPerSecond: perSecond(steps) }
}

/** Explores `program` on this thread; fails with `InvalidRunOptions` for bad options. */
export const explore = <A>(program: Program<A>, options: ExploreOptions): Effect.Effect<ExploreResult, InvalidRunOptions> =>
  Effect.gen(function*() {
    const bad = validate(options)
    if (bad !== undefined) return yield* bad
    const start = yield* Clock.currentTimeNanos
    const every = Math.max(1, options.progressEvery ?? 100)
    const all = options.all === true
    const strategy = yield* Effect.try({
      try: () => runStrategy(program, options),
      catch: (e) => {
        if (e instanceof InvalidRunOptions) return e
        throw e
      }
    })
    const blocks: Array<BlockResult> = []
    for (let first = 0; first < options.runs; first += every) {
      const count = Math.min(every, options.runs - first)
      const b = yield* Effect.try({
        try: () => runBlock(program, options, strategy, first, count),
        catch: (e) => {
          if (e instanceof InvalidRunOptions) return e
          throw e
        }
      })
      blocks.push(b)
      if (stops(b, all)) break
      if (options.onProgress !== undefined) yield* options.onProgress(first + count, options.runs)
    }
    const c = combine(blocks, all)
    const wallNs = Number((yield* Clock.currentTimeNanos) - start)
    return { ...c, ...rates(c.runs, c.steps, wallNs) }
  })
