/**
 * Campaigns on `@effect/cluster`. An exploration of N runs is cut into shards of consecutive
 * runs (by seed range: shard i runs i*size .. i*size+size-1 with seeds seed+run), and each shard
 * is a persisted message to its own `ExploreShard` entity (`<job>:<shard>`), so the cluster
 * spreads shards over its runners, delivers each at least once (again after a crash), and a
 * runner that dies has its shards run elsewhere. A shard's handler runs its block on the runner's
 * worker threads and writes the result (`Store.putShard`: once; a second delivery changes
 * nothing). The job's answer is `Explore.combine` of its stored blocks in shard order, the same
 * merge `kvmlab explore` makes, so it does not depend on how shards were spread.
 */
import { ClusterSchema, Entity, type Sharding } from "@effect/cluster"
import { Rpc } from "@effect/rpc"
import type { SqlError } from "@effect/sql/SqlError"
import { Api, Schemas } from "@kvmlab/api"
import { Dealer, Perfetto, Runner, Scenario, WorkerProtocol } from "@kvmlab/scenarios"
import { Explore, type Strategy } from "@kvmlab/sim"
import { Clock, Context, Effect, Either, Layer, Option, Schedule, Schema, Stream } from "effect"
import { type JobRow, Store } from "./Store.js"

/** One shard of a job, as a persisted cluster message. */
export const ExploreShard = Entity.make("ExploreShard", [
  Rpc.make("Run", { payload: { job: Schema.String, shard: Schema.Int } }).annotate(ClusterSchema.Persisted, true)
])

/** Where a runner makes its runs: its worker threads (`Dealer` of `@kvmlab/scenarios`). */
export class Runs extends Context.Tag("@kvmlab/service/Runs")<Runs, Dealer.Dealer>() {}

/** The most runs one shard holds: small enough that progress moves and work spreads, large enough that messages stay few. */
export const MAX_SHARD_RUNS = 1000

/** Runs per shard: about 32 shards per campaign, at most `MAX_SHARD_RUNS`. The answer does not depend on it. */
export const shardSize = (runs: number): number => Math.max(1, Math.min(MAX_SHARD_RUNS, Math.ceil(runs / 32)))

/** What every shard of a job runs, stored with the job: an `ExploreBlock` less its range. */
const BlockSpec = Schema.parseJson(Schema.Struct({
  scenario: Schema.String,
  seed: Schema.Int,
  strategy: Schema.Unknown,
  all: Schema.Boolean,
  engine: Schema.Literal("fast", "effect")
}))

/** How often a progress stream looks at the store. */
const PROGRESS_POLL = "250 millis"

const ended = (state: JobRow["state"]) => state === "done" || state === "failed" || state === "cancelled"

/** The scenario a job asks for, with its variant settings and bug switches applied; bad input names its field. */
const scenarioOf = (spec: Schemas.ExploreSpec): Either.Either<Scenario.Scenario, Api.BadRequest> => {
  const bad = (field: string, message: string) => Either.left(new Api.BadRequest({ field, message }))
  let base: Scenario.Scenario
  if (typeof spec.scenario === "string") {
    const b = Runner.builtin(spec.scenario)
    if (b === undefined) return bad("scenario", `no built-in scenario named ${JSON.stringify(spec.scenario)}; built-ins: ${Runner.builtinNames().join(", ")}`)
    base = b
  } else {
    const parsed = Either.flatMap(Scenario.parse(JSON.stringify(spec.scenario), "scenario"), (s) => Runner.validate(s, "scenario"))
    if (Either.isLeft(parsed)) return issueOf(parsed.left, "scenario")
    base = parsed.right
  }
  const s = Either.flatMap(Scenario.withOverrides(base, { set: Object.entries(spec.variant), bugs: spec.bugs }, "variant"), (x) => Runner.validate(x, "variant"))
  return Either.isLeft(s) ? issueOf(s.left, "variant") : Either.right(s.right)
}

/** A scenario problem as a 400: the first issue, its path under the request's field. */
const issueOf = (e: Scenario.ScenarioError, field: string): Either.Either<never, Api.BadRequest> => {
  const first = e.issues[0]
  const path = first?.path ?? ""
  const where = /^bugs\.\d+$/.test(path) ? "bugs" : path === "" ? field : `${field}.${path}`
  return Either.left(new Api.BadRequest({ field: where, message: first?.message ?? e.message }))
}

/** A job as the API reports it, from its row and its stored shards. */
const view = (row: JobRow) =>
  Effect.gen(function*() {
    const store = yield* Store
    const spec = Schema.decodeUnknownSync(Schema.parseJson(Schemas.JobSpec))(row.spec)
    const t = yield* store.tally(row.id, spec.all)
    return new Schemas.Job({
      id: row.id,
      kind: row.kind,
      state: row.state,
      scenario: row.scenario,
      spec,
      createdAt: row.createdAt,
      runsTotal: row.runsTotal,
      runsDone: t.runsDone,
      shardsTotal: row.shardsTotal,
      shardsDone: t.shardsDone,
      violations: t.invariants.length,
      ...(row.error !== null ? { error: row.error } : {})
    })
  })

const notFound = (id: string) => new Api.NotFound({ what: "job", message: `no job ${id}` })

const getRow = (id: string) => Effect.flatMap(Store, (s) => Effect.flatMap(s.job(id), Option.match({ onNone: () => Effect.fail(notFound(id)), onSome: Effect.succeed })))

/** The shards a job still needs: without `all`, none after the first that found a violation. */
const needed = (row: JobRow, all: boolean, firstStop: number | undefined) => (all || firstStop === undefined ? row.shardsTotal : firstStop + 1)

/**
 * Runs one shard: unless its job has ended, or (without `all`) a lower shard already found the
 * violation that ends it. Writes the result, then ends the job when every shard it needs is in.
 */
export const runShard = (job: string, shard: number) =>
  Effect.gen(function*() {
    const store = yield* Store
    const row = Option.getOrUndefined(yield* store.job(job))
    if (row === undefined || ended(row.state)) return
    const spec = Schema.decodeUnknownSync(BlockSpec)(row.block)
    const before = yield* store.tally(job, spec.all)
    if (shard >= needed(row, spec.all, before.firstStop)) return
    if (row.state === "queued") yield* store.setState(job, "running")
    const first = shard * row.shardSize
    const dealer = yield* Runs
    const block = yield* dealer.exploreBlock(
      new WorkerProtocol.ExploreBlock({
        scenario: spec.scenario,
        seed: spec.seed,
        strategy: spec.strategy as Strategy.Strategy,
        all: spec.all,
        engine: spec.engine,
        first,
        count: Math.min(row.shardSize, row.runsTotal - first)
      })
    )
    yield* store.putShard(job, shard, block)
    const after = yield* store.tally(job, spec.all)
    if (after.shardsThroughStop >= needed(row, spec.all, after.firstStop)) yield* store.setState(job, "done")
  }).pipe(
    // A shard that cannot run (a worker's error) fails its job with the reason; the job is not retried forever.
    Effect.catchTag("WorkerRequestError", (e) => Effect.flatMap(Store, (s) => s.setState(job, "failed", e.message))),
    Effect.orDie
  )

/** The entity on a runner: each message runs its shard. */
export const shardEntityLayer = ExploreShard.toLayer(Effect.gen(function*() {
  const context = yield* Effect.context<Store | Runs>()
  return { Run: ({ payload }) => Effect.provide(runShard(payload.job, payload.shard), context) }
}))

/** The service's jobs: what the HTTP handlers call. */
export class Jobs extends Context.Tag("@kvmlab/service/Jobs")<Jobs, {
  readonly submit: (spec: Schemas.JobSpec, now: string, id: string) => Effect.Effect<Schemas.Job, Api.BadRequest | SqlError>
  readonly get: (id: string) => Effect.Effect<Schemas.Job, Api.NotFound | SqlError>
  readonly list: (o: { readonly state?: Schemas.JobState | undefined; readonly offset: number; readonly limit: number }) => Effect.Effect<Schemas.JobPage, SqlError>
  readonly cancel: (id: string) => Effect.Effect<Schemas.Job, Api.NotFound | SqlError>
  readonly result: (id: string) => Effect.Effect<Schemas.ExploreResult, Api.NotFound | SqlError>
  /** The Perfetto trace of a job's violation `n` (0 is the first), made by replaying its token with tracing on. */
  readonly trace: (id: string, n: number) => Effect.Effect<unknown, Api.NotFound | SqlError>
  /**
   * The job's progress: a snapshot whenever it changes (polled from the store, which every
   * runner writes), until the job ends; the last element is its end.
   */
  readonly progress: (id: string) => Stream.Stream<Schemas.Progress, Api.NotFound | SqlError>
}>() {}

export const layer: Layer.Layer<Jobs, never, Store | Sharding.Sharding> = Layer.effect(
  Jobs,
  Effect.gen(function*() {
    const store = yield* Store
    const makeClient = yield* ExploreShard.client
    const provide = <A, E>(e: Effect.Effect<A, E, Store>) => Effect.provideService(e, Store, store)

    const submit = (spec: Schemas.JobSpec, now: string, id: string) =>
      Effect.gen(function*() {
        const s = yield* scenarioOf(spec)
        if (spec.depth !== undefined && spec.strategy !== "pct") {
          return yield* new Api.BadRequest({ field: "depth", message: `strategy ${spec.strategy} ignores it; only pct takes a depth` })
        }
        const strategy: Strategy.SearchStrategy = spec.strategy === "pct" ? { _tag: "pct", depth: spec.depth ?? 3 } : { _tag: spec.strategy }
        const digest = Scenario.canonical(s)
        // The strategy as every shard runs it (PCT's run length calibrated once), as `kvmlab explore` does.
        const resolved = yield* Effect.try({
          try: () => Explore.runStrategy(Runner.program(s), { seed: spec.seed, strategy, digest, all: spec.all, ...Runner.boundsOf(s, strategy) }),
          catch: (e) => new Api.BadRequest({ field: "strategy", message: e instanceof Error ? e.message : String(e) })
        })
        const size = shardSize(spec.runs)
        const row = yield* store.insertJob({
          id,
          kind: "explore",
          scenario: s.name,
          spec: JSON.stringify(Schema.encodeSync(Schemas.JobSpec)(spec)),
          block: Schema.encodeSync(BlockSpec)({ scenario: digest, seed: spec.seed, strategy: resolved, all: spec.all, engine: "fast" }),
          state: "queued",
          createdAt: now,
          runsTotal: spec.runs,
          shardSize: size,
          shardsTotal: Math.ceil(spec.runs / size),
          error: null
        })
        yield* dispatch(row)
        return yield* provide(view(row))
      })

    /** Sends every shard of a job to its entity (persisted; a shard already stored is skipped by its handler). */
    const dispatch = (row: JobRow) =>
      Effect.forEach(
        Array.from({ length: row.shardsTotal }, (_, i) => i),
        (shard) => makeClient(`${row.id}:${shard}`).Run({ job: row.id, shard }, { discard: true }),
        { discard: true, concurrency: 16 }
      ).pipe(Effect.orDie)

    /** A job's answer: its stored blocks merged in seed order. */
    const resultOf = (id: string) =>
      provide(Effect.gen(function*() {
        const row = yield* getRow(id)
        const spec = Schema.decodeUnknownSync(BlockSpec)(row.block)
        const c = Explore.combine(yield* store.blocks(id), spec.all)
        const job = Schema.decodeUnknownSync(Schema.parseJson(Schemas.JobSpec))(row.spec)
        return new Schemas.ExploreResult({
          scenario: row.scenario,
          strategy: job.strategy === "pct" ? `pct:${job.depth ?? 3}` : job.strategy,
          seed: job.seed,
          runs: c.runs,
          steps: c.steps,
          distinctTraces: c.distinctTraces,
          violations: c.violations.map((v) => new Schemas.FoundViolation({ invariant: v.invariant, message: v.message, replay: v.replay, run: v.run, seed: v.seed, steps: v.steps, count: v.count })),
          outcomes: c.outcomes,
          invariantChecks: c.invariantChecks
        })
      }))

    return {
      submit,
      get: (id) => provide(Effect.flatMap(getRow(id), view)),
      list: (o) =>
        provide(Effect.gen(function*() {
          const page = yield* store.jobs(o)
          return new Schemas.JobPage({ jobs: yield* Effect.forEach(page.rows, view), total: page.total, offset: o.offset, limit: o.limit })
        })),
      cancel: (id) =>
        provide(Effect.gen(function*() {
          yield* getRow(id)
          yield* store.setState(id, "cancelled")
          return yield* Effect.flatMap(getRow(id), view)
        })),
      result: (id) => resultOf(id),
      trace: (id, n) =>
        Effect.gen(function*() {
          const r = yield* resultOf(id)
          const v = r.violations[n]
          if (v === undefined) return yield* new Api.NotFound({ what: "violation", message: `job ${id} has ${r.violations.length} violation${r.violations.length === 1 ? "" : "s"}; no violation ${n}` })
          const run = yield* Runner.replay(v.replay, { trace: true }).pipe(Effect.orDie)
          return Perfetto.fromTrace(run.trace, { timed: run.strategy === "timed", title: `${run.scenario} seed ${run.seed} ${run.strategy}`, violation: run.violations[0] })
        }),
      progress: (id) => {
        const snapshot = provide(Effect.gen(function*() {
          const row = yield* getRow(id)
          const spec = Schema.decodeUnknownSync(BlockSpec)(row.block)
          const t = yield* store.tally(id, spec.all)
          const need = needed(row, spec.all, t.firstStop)
          const runsTotal = Math.min(row.runsTotal, need * row.shardSize)
          const seconds = Math.max(0, ((yield* Clock.currentTimeMillis) - Date.parse(row.createdAt)) / 1000)
          const rate = seconds > 0 ? t.runsDone / seconds : 0
          const finished = ended(row.state)
          return new Schemas.Progress({
            id,
            state: row.state,
            runsDone: t.runsDone,
            runsTotal,
            percent: row.state === "done" ? 100 : Math.min(99, Math.floor((100 * t.runsDone) / Math.max(1, runsTotal))),
            violations: t.invariants.length,
            runsPerSecond: Math.round(rate),
            ...(!finished && rate > 0 ? { etaSeconds: Math.round((runsTotal - t.runsDone) / rate) } : {})
          })
        }))
        return Stream.repeatEffectWithSchedule(snapshot, Schedule.spaced(PROGRESS_POLL)).pipe(
          Stream.changesWith((a, b) => a.runsDone === b.runsDone && a.state === b.state && a.violations === b.violations),
          Stream.takeUntil((p) => ended(p.state))
        )
      }
    }
  })
)
