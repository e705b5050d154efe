/**
 * What the worker threads of `explore` and `compare` are asked to do, as Schema-tagged requests
 * (the `@effect/platform` serialized worker protocol): a block of consecutive exploration runs,
 * or one timed run of a comparison. A scenario travels as its canonical JSON, the same text a
 * replay token digests, so a worker rebuilds exactly the scenario the coordinator validated.
 */
import { Run, Strategy } from "@kvmlab/sim"
import { Schema } from "effect"

const Count = Schema.Int.pipe(Schema.nonNegative())

/** The first violating run of one invariant in a block. */
export const FoundViolation = Schema.Struct({
  invariant: Schema.String,
  message: Schema.String,
  step: Count,
  timeNs: Schema.Number,
  actor: Schema.String,
  run: Count,
  seed: Count,
  replay: Schema.String,
  count: Count,
  steps: Count
})

/** What a block of runs found (`Explore.BlockResult`). */
export const BlockResult = Schema.Struct({
  first: Count,
  runs: Count,
  steps: Count,
  outcomes: Schema.Struct({
    completed: Count,
    violation: Count,
    deadlock: Count,
    "step-bound": Count,
    "time-bound": Count
  }),
  invariantChecks: Schema.Record({ key: Schema.String, value: Count }),
  traces: Schema.Array(Schema.String),
  violations: Schema.Array(FoundViolation)
})

/** A request a worker could not serve (a scenario or option that does not decode). */
export class WorkerRequestError extends Schema.TaggedError<WorkerRequestError>()("WorkerRequestError", {
  message: Schema.String
}) {}

/** Runs `first` .. `first + count - 1` of an exploration. */
export class ExploreBlock extends Schema.TaggedRequest<ExploreBlock>()("ExploreBlock", {
  failure: WorkerRequestError,
  success: BlockResult,
  payload: {
    /** The scenario's canonical JSON. */
    scenario: Schema.String,
    seed: Count,
    /** Resolved: PCT's run length already calibrated. */
    strategy: Strategy.Strategy,
    maxSteps: Schema.optional(Count),
    all: Schema.Boolean,
    engine: Run.Engine,
    first: Count,
    count: Count
  }
}) {}

/** One run of a comparison row: its metrics and how many violations it found. */
export class CompareRun extends Schema.TaggedRequest<CompareRun>()("CompareRun", {
  failure: WorkerRequestError,
  success: Schema.Struct({
    metrics: Schema.Record({ key: Schema.String, value: Schema.Number }),
    violations: Count
  }),
  payload: {
    scenario: Schema.String,
    seed: Count,
    strategy: Strategy.Strategy,
    engine: Run.Engine
  }
}) {}

/** Every request a worker serves. */
export const Request = Schema.Union(ExploreBlock, CompareRun)
export type Request = typeof Request.Type
