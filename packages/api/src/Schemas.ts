/**
 * The values the kvmlab service takes and gives, as Schemas: what a job asks for, a job's state,
 * its progress and its results. Limits are part of the schema (runs, seeds, list lengths, text
 * sizes), so a request beyond them is a 400 naming the field before anything runs, and unknown
 * fields are refused rather than silently dropped.
 */
import { Schema } from "effect"

/** Refuse fields a schema does not declare: a misspelt option must not be ignored. */
const strict = { parseOptions: { onExcessProperty: "error" } } as const

/** A 32-bit unsigned seed, as the command line takes it. */
export const Seed = Schema.Int.pipe(Schema.between(0, 0xffff_ffff))

/** The most runs one exploration makes through the service (the command line's bound). */
export const MAX_RUNS = 1_000_000_000
/** The most runs of one comparison (rows times seeds). */
export const MAX_COMPARE_RUNS = 1_000_000

/** A built-in scenario's name, or a scenario file's JSON object (validated by the server, with field paths). */
export const ScenarioRef = Schema.Union(
  Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
).annotations({ description: "a built-in scenario's name (GET /api/scenarios), or a scenario file as a JSON object" })

/** `key=value` settings, as `--variant` takes them. */
const Settings = Schema.Record({ key: Schema.String.pipe(Schema.maxLength(100)), value: Schema.String.pipe(Schema.maxLength(100)) })

const Bugs = Schema.Array(Schema.String.pipe(Schema.maxLength(100))).pipe(Schema.maxItems(32))

/** What an exploration job asks for: the same as `kvmlab explore`'s options. */
export class ExploreSpec extends Schema.TaggedClass<ExploreSpec>()("explore", {
  scenario: ScenarioRef,
  variant: Schema.optionalWith(Settings, { default: () => ({}) }),
  bugs: Schema.optionalWith(Bugs, { default: () => [] }),
  seed: Schema.optionalWith(Seed, { default: () => 1 }),
  runs: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, MAX_RUNS)), { default: () => 2000 }),
  strategy: Schema.optionalWith(Schema.Literal("random", "pct", "swarm"), { default: () => "random" as const }),
  depth: Schema.optional(Schema.Int.pipe(Schema.between(1, 64))),
  all: Schema.optionalWith(Schema.Boolean, { default: () => false })
}) {}

/** The settings a comparison varies: each key with its values (`--vary key=v1,v2`). */
const Vary = Schema.Record({
  key: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(100)),
  value: Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(100))).pipe(Schema.minItems(1), Schema.maxItems(64))
})

/**
 * What a comparison job asks for: the same as `kvmlab compare`'s options. Every combination of
 * `vary` is a row, run `seeds` times (seeds `seed`, `seed`+1, ...); the strategy defaults to
 * timed for a scenario with a virtual duration and random for the race scenarios.
 */
export class CompareSpec extends Schema.TaggedClass<CompareSpec>()("compare", {
  scenario: ScenarioRef,
  vary: Vary,
  variant: Schema.optionalWith(Settings, { default: () => ({}) }),
  bugs: Schema.optionalWith(Bugs, { default: () => [] }),
  seed: Schema.optionalWith(Seed, { default: () => 1 }),
  seeds: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 1_000_000)), { default: () => 3 }),
  strategy: Schema.optional(Schema.Literal("timed", "random", "pct", "swarm")),
  depth: Schema.optional(Schema.Int.pipe(Schema.between(1, 64)))
}) {}

/** What a run job asks for: the same as `kvmlab run`'s options (timed by default). */
export class RunSpec extends Schema.TaggedClass<RunSpec>()("run", {
  scenario: ScenarioRef,
  variant: Schema.optionalWith(Settings, { default: () => ({}) }),
  bugs: Schema.optionalWith(Bugs, { default: () => [] }),
  seed: Schema.optionalWith(Seed, { default: () => 1 }),
  strategy: Schema.optionalWith(Schema.Literal("timed", "random", "pct", "swarm"), { default: () => "timed" as const }),
  depth: Schema.optional(Schema.Int.pipe(Schema.between(1, 64))),
  maxSteps: Schema.optional(Schema.Int.pipe(Schema.between(1, 1_000_000_000)))
}) {}

/** What a replay job asks for: a replay token (as `kvmlab replay` takes it). */
export class ReplaySpec extends Schema.TaggedClass<ReplaySpec>()("replay", {
  token: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(1_000_000))
}) {}

/** What a job asks for (the kinds the service runs); a field it does not declare is refused. */
export const JobSpec = Schema.Union(ExploreSpec, CompareSpec, RunSpec, ReplaySpec).annotations(strict)
export type JobSpec = typeof JobSpec.Type

export const JobState = Schema.Literal("queued", "running", "done", "failed", "cancelled")
export type JobState = typeof JobState.Type

/** A job as the service reports it. */
export class Job extends Schema.Class<Job>("Job")({
  id: Schema.String,
  kind: Schema.Literal("explore", "compare", "run", "replay"),
  state: JobState,
  /** The scenario's name (a file's `name` field). */
  scenario: Schema.String,
  spec: JobSpec,
  /** When it was submitted, ISO 8601. */
  createdAt: Schema.String,
  runsTotal: Schema.Number,
  /** Runs whose results are stored: each shard's runs count once, when its result is written. */
  runsDone: Schema.Number,
  shardsTotal: Schema.Number,
  shardsDone: Schema.Number,
  /** An exploration's invariants broken so far; a comparison's runs that broke one. */
  violations: Schema.Number,
  /** The runners (host:pid) that ran its shards. */
  runners: Schema.Array(Schema.String),
  /** Why a failed job failed. */
  error: Schema.optional(Schema.String)
}) {}

/** One violation an exploration found: the run and seed, what broke, and the token that replays it. */
export class FoundViolation extends Schema.Class<FoundViolation>("FoundViolation")({
  invariant: Schema.String,
  message: Schema.String,
  /** The step of the run at which it broke, and the actor that found it. */
  step: Schema.Number,
  actor: Schema.String,
  replay: Schema.String,
  run: Schema.Number,
  seed: Schema.Number,
  steps: Schema.Number,
  count: Schema.Number
}) {}

/** An exploration's result, as `kvmlab explore --json` prints it (less the wall-clock rates, which depend on the machine). */
export class ExploreResult extends Schema.TaggedClass<ExploreResult>()("explore", {
  scenario: Schema.String,
  strategy: Schema.String,
  seed: Schema.Number,
  runs: Schema.Number,
  steps: Schema.Number,
  distinctTraces: Schema.Number,
  violations: Schema.Array(FoundViolation),
  outcomes: Schema.Record({ key: Schema.String, value: Schema.Number }),
  invariantChecks: Schema.Record({ key: Schema.String, value: Schema.Number })
}) {}

/** One row of a comparison: the settings of the row and the mean of each metric over its seeds. */
export class CompareRow extends Schema.Class<CompareRow>("CompareRow")({
  variant: Schema.Record({ key: Schema.String, value: Schema.String }),
  metrics: Schema.Record({ key: Schema.String, value: Schema.Number }),
  /** Runs of the row that broke an invariant. */
  violations: Schema.Number
}) {}

/** A comparison's result, as `kvmlab compare --json` prints it: rows in the order of the combinations, and each metric's unit. */
export class CompareResult extends Schema.TaggedClass<CompareResult>()("compare", {
  scenario: Schema.String,
  strategy: Schema.String,
  seeds: Schema.Number,
  rows: Schema.Array(CompareRow),
  metricUnits: Schema.Record({ key: Schema.String, value: Schema.String })
}) {}

/** A run's result (of a run or a replay job), as `kvmlab run --json` prints it; `replay` is its token. */
export class RunResult extends Schema.TaggedClass<RunResult>()("run", {
  scenario: Schema.String,
  variant: Schema.Record({ key: Schema.String, value: Schema.String }),
  bugs: Schema.Array(Schema.String),
  seed: Schema.Number,
  strategy: Schema.String,
  outcome: Schema.String,
  traceHash: Schema.String,
  steps: Schema.Number,
  timeNs: Schema.Number,
  replay: Schema.String,
  metrics: Schema.Record({ key: Schema.String, value: Schema.Number }),
  metricUnits: Schema.Record({ key: Schema.String, value: Schema.String }),
  violations: Schema.Array(FoundViolation)
}) {}

/** A job's result: an exploration's, a comparison's, or a run's (run and replay jobs). */
export const JobResult = Schema.Union(ExploreResult, CompareResult, RunResult)
export type JobResult = typeof JobResult.Type

/** A job's progress, as each Server-Sent Event carries it. */
export class Progress extends Schema.Class<Progress>("Progress")({
  id: Schema.String,
  state: JobState,
  runsDone: Schema.Number,
  runsTotal: Schema.Number,
  /** 0 to 100. */
  percent: Schema.Number,
  violations: Schema.Number,
  /** Runs per second since the job started, wall clock; 0 before the first shard. */
  runsPerSecond: Schema.Number,
  /** Seconds left at that rate; absent until there is a rate. */
  etaSeconds: Schema.optional(Schema.Number)
}) {}

/** A scenario in the catalogue. */
export class ScenarioSummary extends Schema.Class<ScenarioSummary>("ScenarioSummary")({
  name: Schema.String,
  kind: Schema.String,
  vms: Schema.Number,
  vcpusPerVm: Schema.Number,
  pcpus: Schema.Number,
  description: Schema.String
}) {}

/** A page of the job list. */
export class JobPage extends Schema.Class<JobPage>("JobPage")({
  jobs: Schema.Array(Job),
  total: Schema.Number,
  offset: Schema.Number,
  limit: Schema.Number
}) {}
