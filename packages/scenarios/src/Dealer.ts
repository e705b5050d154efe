/**
 * Where the runs of `explore` and `compare` are made: on this thread, or dealt to worker
 * threads. Exploration goes in blocks of consecutive seeds whose results merge in seed order
 * (`Explore.combine`), and comparison in single timed runs collected in order, so the answer is
 * the same for any number of workers: the same violations at the same run indices, the same
 * counts and distinct traces. The handlers here are what a worker thread runs; the app that
 * owns the threads wraps its pool as a `Dealer` (see `apps/cli/src/Workers.ts`).
 */
import { Explore, type Run, type Strategy } from "@kvmlab/sim"
import { Effect, Either } from "effect"
import { boundsOf, program, run, validate } from "./Runner.js"
import { parse, type Scenario } from "./Scenario.js"
import { type CompareRun, type ExploreBlock, WorkerRequestError } from "./WorkerProtocol.js"

/** Makes blocks of exploration runs and comparison runs, `workers` at a time. */
export interface Dealer {
  readonly workers: number
  readonly exploreBlock: (req: ExploreBlock) => Effect.Effect<Explore.BlockResult, WorkerRequestError>
  readonly compareRun: (req: CompareRun) => Effect.Effect<{ readonly metrics: Readonly<Record<string, number>>; readonly violations: number }, WorkerRequestError>
}

const scenarioOf = (text: string): Either.Either<Scenario, WorkerRequestError> =>
  Either.mapLeft(Either.flatMap(parse(text, "request"), (s) => validate(s, "request")), (e) => new WorkerRequestError({ message: e.message }))

/** A worker's answer to `ExploreBlock`. */
export const exploreBlock = (req: ExploreBlock): Effect.Effect<Explore.BlockResult, WorkerRequestError> =>
  Effect.flatMap(scenarioOf(req.scenario), (s) =>
    Effect.try({
      try: () => {
        const strategy = req.strategy as Strategy.SearchStrategy
        const o: Explore.BlockOptions = {
          seed: req.seed,
          strategy,
          digest: req.scenario,
          all: req.all,
          engine: req.engine,
          ...boundsOf(s, strategy),
          ...(req.maxSteps !== undefined ? { maxSteps: req.maxSteps } : {})
        }
        return Explore.runBlock(program(s), o, strategy, req.first, req.count)
      },
      catch: (e) => new WorkerRequestError({ message: e instanceof Error ? e.message : String(e) })
    }))

/** A worker's answer to `CompareRun`. */
export const compareRun = (req: CompareRun) =>
  Effect.flatMap(scenarioOf(req.scenario), (s) =>
    Effect.map(
      Effect.mapError(
        run(s, { seed: req.seed, strategy: req.strategy as Strategy.SearchStrategy, engine: req.engine as Run.Engine }),
        (e) => new WorkerRequestError({ message: e.message })
      ),
      (r) => ({ metrics: r.metrics, violations: r.violations.length })
    ))

/** Makes everything on this thread, one run after another. */
export const inProcess: Dealer = { workers: 1, exploreBlock, compareRun }

/**
 * How many runs a block holds: small enough that the workers stay busy and progress moves, and
 * that little is made past a violation; results do not depend on it.
 */
export const blockSize = (runs: number, workers: number): number => Math.max(1, Math.min(250, Math.ceil(runs / (workers * 8))))
