/**
 * The multi-run commands: `explore` (many seeds under a search strategy, stopping at the first
 * violation unless `all`) and `compare` (every combination of varied settings, timed or under a
 * search strategy, metrics averaged over seeds). Runs are made by a `Dealer` — this thread or a
 * pool of worker threads — and the results do not depend on which.
 */
import { Explore, type Run, Strategy } from "@kvmlab/sim"
import { Clock, Effect, Either, Ref } from "effect"
import * as Dealer from "./Dealer.js"
import { boundsOf, combinations, type CompareRow, type Metrics, program, validate } from "./Runner.js"
import { canonical, type Scenario, type ScenarioError, withOverrides } from "./Scenario.js"
import { CompareRun, ExploreBlock, type WorkerRequestError } from "./WorkerProtocol.js"

export interface ExploreOptions {
  readonly seed: number
  readonly runs: number
  readonly strategy: Strategy.SearchStrategy
  readonly all?: boolean
  readonly maxSteps?: number
  /** Default `fast`. */
  readonly engine?: Run.Engine
  /** Default: this thread. */
  readonly dealer?: Dealer.Dealer
  /**
   * After each block: runs done, runs asked for, and how many runs from the first are all done
   * (blocks finish out of order on several workers): an interrupted exploration resumes there.
   */
  readonly onProgress?: (done: number, total: number, prefix: number) => Effect.Effect<void>
}

/** One violation an exploration found: which run (run i uses seed `seed + i`), what broke, how to replay. */
export interface ExploreViolation extends Explore.FoundViolation {}

export interface ScenarioExplore {
  readonly scenario: string
  readonly strategy: string
  readonly engine: Run.Engine
  readonly workers: number
  readonly seed: number
  readonly runs: number
  readonly steps: number
  readonly violations: ReadonlyArray<ExploreViolation>
  readonly outcomes: Readonly<Record<string, number>>
  readonly invariantChecks: Readonly<Record<string, number>>
  readonly distinctTraces: number
  readonly wallNs: number
  readonly runsPerSecond: number
  readonly stepsPerSecond: number
}

/**
 * Explores a scenario: runs i = 0 .. runs-1 with seeds `seed + i`, in blocks dealt to the
 * dealer's workers; without `all`, stops at the first violation (the lowest-numbered violating
 * run is the one reported, whatever the number of workers).
 */
export const explore = (s: Scenario, o: ExploreOptions): Effect.Effect<ScenarioExplore, Run.InvalidRunOptions | WorkerRequestError> =>
  Effect.gen(function*() {
    const bad = Explore.validate(o)
    if (bad !== undefined) return yield* bad
    const start = yield* Clock.currentTimeNanos
    const dealer = o.dealer ?? Dealer.inProcess
    const engine = o.engine ?? "fast"
    const all = o.all === true
    const digest = canonical(s)
    const blockOptions: Explore.BlockOptions = {
      seed: o.seed,
      strategy: o.strategy,
      digest,
      all,
      engine,
      ...boundsOf(s, o.strategy),
      ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {})
    }
    const strategy = yield* Effect.try({
      try: () => Explore.runStrategy(program(s), blockOptions),
      catch: (e) => (e instanceof Error ? e : new Error(String(e)))
    }).pipe(Effect.orDie)
    const size = Dealer.blockSize(o.runs, dealer.workers)
    const firsts: Array<number> = []
    for (let first = 0; first < o.runs; first += size) firsts.push(first)
    // The lowest violating run seen so far: blocks that start after it are not needed.
    const stopAt = yield* Ref.make(Infinity)
    const done = yield* Ref.make(0)
    // Blocks finished, by their first run, and the runs from 0 that are all done.
    const finished = new Set<number>()
    let prefix = 0
    const results = yield* Effect.forEach(firsts, (first) =>
      Effect.gen(function*() {
        if (first > (yield* Ref.get(stopAt))) return undefined
        const b = yield* dealer.exploreBlock(
          new ExploreBlock({
            scenario: digest,
            seed: o.seed,
            strategy,
            ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}),
            all,
            engine,
            first,
            count: Math.min(size, o.runs - first)
          })
        )
        if (Explore.stops(b, all)) {
          const run = Math.min(...b.violations.map((v) => v.run))
          yield* Ref.update(stopAt, (x) => Math.min(x, run))
        }
        const n = yield* Ref.updateAndGet(done, (x) => x + b.runs)
        finished.add(first)
        while (finished.has(prefix)) prefix = Math.min(o.runs, prefix + size)
        if (o.onProgress !== undefined) yield* o.onProgress(n, o.runs, prefix)
        return b
      }), { concurrency: dealer.workers })
    const c = Explore.combine(results.filter((b): b is Explore.BlockResult => b !== undefined), all)
    const wallNs = Number((yield* Clock.currentTimeNanos) - start)
    return {
      scenario: s.name,
      strategy: Strategy.format(o.strategy),
      engine,
      workers: dealer.workers,
      seed: o.seed,
      ...c,
      ...Explore.rates(c.runs, c.steps, wallNs)
    }
  })

export interface CompareOptions {
  readonly vary: ReadonlyArray<readonly [string, ReadonlyArray<string>]>
  readonly seeds: number
  readonly seed: number
  /** Default `timed` (costs advance virtual time); a search strategy compares what schedules do. */
  readonly strategy?: Strategy.SearchStrategy
  readonly engine?: Run.Engine
  readonly dealer?: Dealer.Dealer
  readonly onProgress?: (done: number, total: number) => Effect.Effect<void>
  /**
   * Called with each row (and its index) once all its seeds are done, rows in any order: what a
   * caller interrupted part way can still show.
   */
  readonly onRow?: (row: CompareRow, index: number) => Effect.Effect<void>
}

/** Runs every combination of `vary` over `seeds` seeds and averages the metrics per row. */
export const compare = (
  s: Scenario,
  o: CompareOptions
): Effect.Effect<{ readonly rows: ReadonlyArray<CompareRow> }, ScenarioError | WorkerRequestError> =>
  Effect.gen(function*() {
    const combos = combinations(o.vary)
    const scenarios: Array<Scenario> = []
    for (const c of combos) {
      const checked = Either.flatMap(withOverrides(s, { set: c }, "--vary"), (x) => validate(x, "--vary"))
      if (Either.isLeft(checked)) return yield* Effect.fail(checked.left)
      scenarios.push(checked.right)
    }
    const dealer = o.dealer ?? Dealer.inProcess
    const strategy = o.strategy ?? { _tag: "timed" }
    const engine = o.engine ?? "fast"
    const jobs = scenarios.flatMap((sc, row) => Array.from({ length: o.seeds }, (_, k) => ({ row, sc, seed: (o.seed + k) >>> 0 })))
    const done = yield* Ref.make(0)
    type Result = { readonly metrics: Readonly<Record<string, number>>; readonly violations: number }
    const results: Array<Result | undefined> = jobs.map(() => undefined)
    const left = combos.map(() => o.seeds)
    // A row's mean over its seeds, in seed order whatever order the runs ended in.
    const rowOf = (row: number): CompareRow => {
      const mine = results.slice(row * o.seeds, (row + 1) * o.seeds) as ReadonlyArray<Result>
      const sums: Metrics = {}
      for (const r of mine) for (const [name, x] of Object.entries(r.metrics)) sums[name] = (sums[name] ?? 0) + x
      const metrics: Metrics = {}
      for (const [name, x] of Object.entries(sums)) metrics[name] = x / o.seeds
      return { variant: Object.fromEntries(combos[row]!), metrics, violations: mine.reduce((n, r) => n + r.violations, 0) }
    }
    yield* Effect.forEach(jobs, (j, i) =>
      Effect.flatMap(dealer.compareRun(new CompareRun({ scenario: canonical(j.sc), seed: j.seed, strategy, engine })), (r) =>
        Effect.suspend(() => {
          results[i] = r
          const rowDone = --left[j.row]! === 0 && o.onRow !== undefined ? o.onRow(rowOf(j.row), j.row) : Effect.void
          return Effect.zipRight(rowDone, Effect.flatMap(Ref.updateAndGet(done, (x) => x + 1), (n) => o.onProgress?.(n, jobs.length) ?? Effect.void))
        })), { concurrency: dealer.workers, discard: true })
    return { rows: combos.map((_, row) => rowOf(row)) }
  })
