/**
 * Campaigns on `@effect/cluster`. A job is cut into shards, and each shard is a persisted
 * message to its own `CampaignShard` entity (`<job>:<shard>`), so the cluster spreads shards over
 * its runners, delivers each at least once (again after a crash), and a runner that dies has its
 * shards run elsewhere. A shard's handler runs its part on the runner's worker threads and writes
 * the result (`Store.putShard`: once; a second delivery changes nothing).
 *
 * - An exploration of N runs: shard i is runs i*size .. i*size+size-1 (seeds seed+run), one
 *   `ExploreBlock`; the answer is `Explore.combine` of the stored blocks in shard order, the same
 *   merge `kvmlab explore` makes, so it does not depend on how shards were spread. Without `all`,
 *   shards after the first that found a violation are not needed.
 * - A comparison: shard i is row i (the i-th combination of `vary`), its `seeds` runs in seed
 *   order; the row's metrics are the means over its seeds, summed in seed order as `kvmlab
 *   compare` sums them.
 * - A run, or a replay of a token: one shard, one run, made on the runner's own thread in chunks
 *   (a turn of the event loop every 50,000 steps, so its HTTP requests are still answered).
 */
import { ClusterSchema, Entity, type Sharding } from "@effect/cluster"
import { Rpc } from "@effect/rpc"
import type { SqlError } from "@effect/sql/SqlError"
import { Api, Schemas } from "@kvmlab/api"
import { Progress } from "@kvmlab/cli"
import { type Dealer, Metrics, Perfetto, Runner, Scenario, WorkerProtocol } from "@kvmlab/scenarios"
import { Explore, type Strategy } from "@kvmlab/sim"
import { Clock, Context, Effect, Either, Layer, Option, Schedule, Schema, Stream } from "effect"
import { type JobRow, RunnerId, type ShardResult, Store } from "./Store.js"

/** One shard of a job, as a persisted cluster message. */
export const CampaignShard = Entity.make("CampaignShard", [
  Rpc.make("Run", { payload: { job: Schema.String, shard: Schema.Int } }).annotate(ClusterSchema.Persisted, true)
])

/** Where a runner makes its runs: its worker threads (`Dealer` of `@kvmlab/scenarios`). */
export class Runs extends Context.Tag("@kvmlab/service/Runs")<Runs, Dealer.Dealer>() {}

/**
 * The most runs one exploration shard holds: small enough that progress moves and work spreads
 * (a shard is about a second of one worker), large enough that a campaign of millions of runs
 * is hundreds of messages, not thousands (each is a stored message and an entity).
 */
export const MAX_SHARD_RUNS = 5000

/** Runs per exploration shard: about 32 shards per campaign, at most `MAX_SHARD_RUNS`. The answer does not depend on it. */
export const shardSize = (runs: number): number => Math.max(1, Math.min(MAX_SHARD_RUNS, Math.ceil(runs / 32)))

/** How often a progress stream looks at the store. */
const PROGRESS_POLL = "250 millis"

/** What every shard of a job runs, stored with the job. */
const Plan = Schema.parseJson(Schema.Union(
  // An `ExploreBlock` less its range.
  Schema.TaggedStruct("explore", {
    scenario: Schema.String,
    seed: Schema.Int,
    strategy: Schema.Unknown,
    all: Schema.Boolean,
    engine: Schema.Literal("fast", "effect")
  }),
  // The scenario of each row (canonical JSON, in the order of the combinations), and the runs of each.
  Schema.TaggedStruct("compare", {
    rows: Schema.Array(Schema.Struct({ variant: Schema.Record({ key: Schema.String, value: Schema.String }), scenario: Schema.String })),
    seed: Schema.Int,
    seeds: Schema.Int,
    strategy: Schema.Unknown,
    engine: Schema.Literal("fast", "effect")
  }),
  // One run of a scenario (canonical JSON).
  Schema.TaggedStruct("run", { scenario: Schema.String, seed: Schema.Int, strategy: Schema.Unknown, maxSteps: Schema.optional(Schema.Int) }),
  // One replay of a token.
  Schema.TaggedStruct("replay", { token: Schema.String })
))
type Plan = typeof Plan.Type

const planOf = (row: JobRow): Plan => Schema.decodeUnknownSync(Plan)(row.block)
/** Whether every shard counts (all but an exploration without `all`), or the job ends at the first violation. */
const allOf = (plan: Plan): boolean => plan._tag !== "explore" || plan.all

const ended = (state: JobRow["state"]) => state === "done" || state === "failed" || state === "cancelled"

/**
 * A scenario problem as a 400: the first issue, its path under the request's field. The settings
 * of `variant` and `vary` are named as the request names them: `flush` is the scenario's
 * `variant.flush`, `vms` its `vms`.
 */
const issueOf = (e: Scenario.ScenarioError, field: string): Api.BadRequest => {
  const first = e.issues[0]
  const path = field === "scenario" ? first?.path ?? "" : (first?.path ?? "").replace(/^variant\./, "")
  const where = /^bugs\.\d+$/.test(path) ? "bugs" : path === "" ? field : `${field}.${path}`
  return new Api.BadRequest({ field: where, message: first?.message ?? e.message })
}

/** The scenario a job asks for, with its variant settings and bug switches applied; bad input names its field. */
const scenarioOf = (spec: Schemas.ExploreSpec | Schemas.CompareSpec | Schemas.RunSpec): Either.Either<Scenario.Scenario, Api.BadRequest> => {
  let base: Scenario.Scenario
  if (typeof spec.scenario === "string") {
    const b = Runner.builtin(spec.scenario)
    if (b === undefined) {
      return Either.left(new Api.BadRequest({ field: "scenario", message: `no built-in scenario named ${JSON.stringify(spec.scenario)}; built-ins: ${Runner.builtinNames().join(", ")}` }))
    }
    base = b
  } else {
    const parsed = Either.flatMap(Scenario.decode(spec.scenario, "scenario"), (s) => Runner.validate(s, "scenario"))
    if (Either.isLeft(parsed)) return Either.left(issueOf(parsed.left, "scenario"))
    base = parsed.right
  }
  const s = Either.flatMap(Scenario.withOverrides(base, { set: Object.entries(spec.variant), bugs: spec.bugs }, "variant"), (x) => Runner.validate(x, "variant"))
  return Either.flatMap(Either.mapLeft(s, (e) => issueOf(e, "variant")), (x) => withinLimits(x, "scenario"))
}

/** The longest virtual time one run of a job may cover: a second of 128 vCPUs is minutes of a runner's core. */
export const MAX_DURATION_NS = 10_000_000_000
/** The most vCPUs (all VMs together) of one job's scenario. */
export const MAX_VCPUS = 1024

/** The service's own bounds on what one run may cost (a command-line run has none but the machine's). */
const withinLimits = (s: Scenario.Scenario, field: string): Either.Either<Scenario.Scenario, Api.BadRequest> =>
  s.durationNs > MAX_DURATION_NS
    ? Either.left(new Api.BadRequest({ field: `${field}.durationNs`, message: `${s.durationNs} ns of virtual time; the service runs at most ${MAX_DURATION_NS} (10 s) per run (kvmlab run has no such bound)` }))
    : s.vms * s.vcpusPerVm > MAX_VCPUS
    ? Either.left(new Api.BadRequest({ field: `${field}.vcpusPerVm`, message: `${s.vms} VMs x ${s.vcpusPerVm} vCPUs = ${s.vms * s.vcpusPerVm} vCPUs; the service takes at most ${MAX_VCPUS}` }))
    : Either.right(s)

/** The search strategy a spec names; `depth` belongs to pct alone. */
const strategyOf = (name: "timed" | "random" | "pct" | "swarm", depth: number | undefined): Either.Either<Strategy.SearchStrategy, Api.BadRequest> =>
  depth !== undefined && name !== "pct"
    ? Either.left(new Api.BadRequest({ field: "depth", message: `strategy ${name} ignores it; only pct takes a depth` }))
    : Either.right(name === "pct" ? { _tag: "pct", depth: depth ?? 3 } : { _tag: name })

/** The most runs of one comparison (rows times seeds), as `kvmlab compare` bounds it. */
const MAX_COMPARE_RUNS = Schemas.MAX_COMPARE_RUNS

/** A comparison's plan: every combination of `vary` validated as a scenario. */
const comparePlan = (spec: Schemas.CompareSpec, s: Scenario.Scenario) =>
  Effect.gen(function*() {
    const vary = Object.entries(spec.vary)
    if (vary.length === 0) return yield* new Api.BadRequest({ field: "vary", message: "give at least one setting to vary, as in {\"vms\": [\"1\", \"2\"]}" })
    for (const [key, values] of vary) {
      const twice = values.find((x, i) => values.indexOf(x) !== i)
      if (twice !== undefined) return yield* new Api.BadRequest({ field: `vary.${key}`, message: `value ${JSON.stringify(twice)} given twice` })
    }
    const total = vary.reduce((n, [, vs]) => n * vs.length, spec.seeds)
    if (total > MAX_COMPARE_RUNS) {
      return yield* new Api.BadRequest({ field: "vary", message: `${total} runs (every combination, times seeds ${spec.seeds}) is more than ${MAX_COMPARE_RUNS}` })
    }
    const strategy = yield* strategyOf(spec.strategy ?? (s.durationNs > 0 ? "timed" : "random"), spec.depth)
    const rows = []
    for (const c of Runner.combinations(vary)) {
      const checked = Either.flatMap(Scenario.withOverrides(s, { set: c }, "vary"), (x) => Runner.validate(x, "vary"))
      if (Either.isLeft(checked)) return yield* issueOf(checked.left, "vary")
      yield* withinLimits(checked.right, "vary")
      rows.push({ variant: Object.fromEntries(c), scenario: Scenario.canonical(checked.right) })
    }
    return { plan: { _tag: "compare" as const, rows, seed: spec.seed, seeds: spec.seeds, strategy, engine: "fast" as const }, runs: rows.length * spec.seeds, shardSize: spec.seeds, shards: rows.length }
  })

/** An exploration's plan: the strategy as every shard runs it (PCT's run length calibrated once, as `kvmlab explore` does). */
const explorePlan = (spec: Schemas.ExploreSpec, s: Scenario.Scenario) =>
  Effect.gen(function*() {
    const strategy = yield* strategyOf(spec.strategy, spec.depth)
    const digest = Scenario.canonical(s)
    const resolved = yield* Effect.try({
      try: () => Explore.runStrategy(Runner.program(s), { seed: spec.seed, strategy, digest, all: spec.all, ...Runner.boundsOf(s, strategy) }),
      catch: (e) => new Api.BadRequest({ field: "strategy", message: e instanceof Error ? e.message : String(e) })
    })
    const size = shardSize(spec.runs)
    return {
      plan: { _tag: "explore" as const, scenario: digest, seed: spec.seed, strategy: resolved, all: spec.all, engine: "fast" as const },
      runs: spec.runs,
      shardSize: size,
      shards: Math.ceil(spec.runs / size)
    }
  })

/** A run's plan: one shard, one run. */
const runPlan = (spec: Schemas.RunSpec, s: Scenario.Scenario) =>
  Effect.map(strategyOf(spec.strategy, spec.depth), (strategy) => ({
    plan: { _tag: "run" as const, scenario: Scenario.canonical(s), seed: spec.seed, strategy, ...(spec.maxSteps !== undefined ? { maxSteps: spec.maxSteps } : {}) },
    runs: 1,
    shardSize: 1,
    shards: 1
  }))

/** A replay's plan: the token, checked to decode (its scenario too) before it is stored. */
const replayPlan = (spec: Schemas.ReplaySpec) =>
  Either.match(Runner.scenarioOfToken(spec.token), {
    onLeft: (e) => Effect.fail(new Api.BadRequest({ field: "token", message: e._tag === "ScenarioError" ? e.issues[0]?.message ?? e.message : e.message })),
    onRight: (s) => Effect.succeed({ plan: { _tag: "replay" as const, token: spec.token }, runs: 1, shardSize: 1, shards: 1, scenario: s })
  })

/** The shards a job still needs: without `all`, none after the first that found a violation. */
const needed = (row: JobRow, all: boolean, firstStop: number | undefined) => (all || firstStop === undefined ? row.shardsTotal : firstStop + 1)

/** Runs shard `shard` of an exploration: one block of consecutive runs. */
const exploreShard = (row: JobRow, plan: Extract<Plan, { _tag: "explore" }>, shard: number) =>
  Effect.gen(function*() {
    const first = shard * row.shardSize
    const block = yield* (yield* Runs).exploreBlock(
      new WorkerProtocol.ExploreBlock({
        scenario: plan.scenario,
        seed: plan.seed,
        strategy: plan.strategy as Strategy.Strategy,
        all: plan.all,
        engine: plan.engine,
        first,
        count: Math.min(row.shardSize, row.runsTotal - first)
      })
    )
    const encoded = Schema.encodeSync(Schema.parseJson(WorkerProtocol.BlockResult))(block as typeof WorkerProtocol.BlockResult.Type)
    return {
      runs: block.runs,
      stops: block.violations.length > 0,
      invariants: block.violations.map((v) => v.invariant),
      violations: block.violations.reduce((n, v) => n + v.count, 0),
      result: encoded
    } satisfies ShardResult
  })

/** What a comparison's row stores: the metrics summed in seed order, and the runs with a violation. */
const RowSums = Schema.parseJson(Schema.Struct({ sums: Schema.Record({ key: Schema.String, value: Schema.Number }), violations: Schema.Int }))

/** Runs shard `shard` of a comparison: row `shard`, each of its seeds in turn. */
const compareShard = (plan: Extract<Plan, { _tag: "compare" }>, shard: number) =>
  Effect.gen(function*() {
    const dealer = yield* Runs
    const row = plan.rows[shard]!
    const sums: Record<string, number> = {}
    let violations = 0
    for (let k = 0; k < plan.seeds; k++) {
      const r = yield* dealer.compareRun(new WorkerProtocol.CompareRun({ scenario: row.scenario, seed: (plan.seed + k) >>> 0, strategy: plan.strategy as Strategy.Strategy, engine: plan.engine }))
      for (const [name, x] of Object.entries(r.metrics)) sums[name] = (sums[name] ?? 0) + x
      violations += r.violations
    }
    return { runs: plan.seeds, stops: false, invariants: [], violations, result: Schema.encodeSync(RowSums)({ sums, violations }) } satisfies ShardResult
  })

/** A run as a run job's result. */
const runResult = (r: Runner.ScenarioRun) =>
  new Schemas.RunResult({
    scenario: r.scenario,
    variant: r.variant as Record<string, string>,
    bugs: r.bugs,
    seed: r.seed,
    strategy: r.strategy,
    outcome: r.outcome,
    traceHash: r.traceHash,
    steps: r.steps,
    timeNs: r.timeNs,
    replay: r.token,
    metrics: r.metrics,
    metricUnits: Metrics.unitsOf(r.metrics),
    violations: r.violations.map((v) => new Schemas.FoundViolation({ invariant: v.invariant, message: v.message, step: v.step, actor: v.actor, replay: v.replay, run: 0, seed: r.seed, steps: r.steps, count: 1 }))
  })

/** Runs the one run of a run or replay job, on this thread in chunks. */
const oneRun = (plan: Extract<Plan, { _tag: "run" | "replay" }>) =>
  Effect.gen(function*() {
    // A turn of the event loop between chunks: the runner's HTTP requests are answered meanwhile.
    const onPause = () => Progress.eventLoopTurn
    const r = plan._tag === "replay"
      ? yield* Runner.replay(plan.token, { onPause })
      : yield* Effect.flatMap(
        Either.match(Either.flatMap(Scenario.parse(plan.scenario, "plan"), (x) => Runner.validate(x, "plan")), { onLeft: Effect.die, onRight: Effect.succeed }),
        (s) => Runner.run(s, { seed: plan.seed, strategy: plan.strategy as Strategy.SearchStrategy, onPause, ...(plan.maxSteps !== undefined ? { maxSteps: plan.maxSteps } : {}) })
      )
    const result = runResult(r)
    return {
      runs: 1,
      stops: false,
      invariants: r.violations.map((v) => v.invariant),
      violations: r.violations.length > 0 ? 1 : 0,
      result: JSON.stringify(Schema.encodeSync(Schemas.RunResult)(result))
    } satisfies ShardResult
  })

/**
 * Runs one shard: unless its job has ended, or (an exploration without `all`) a lower shard
 * already found the violation that ends it. Writes the result, then ends the job when every
 * shard it needs is in.
 */
export const runShard = (job: string, shard: number) =>
  Effect.gen(function*() {
    const store = yield* Store
    const row = Option.getOrUndefined(yield* store.job(job))
    if (row === undefined || ended(row.state) || shard < 0 || shard >= row.shardsTotal) return
    const plan = planOf(row)
    const all = allOf(plan)
    const before = yield* store.tally(job, all)
    if (shard >= needed(row, all, before.firstStop)) return
    if (row.state === "queued") yield* store.setState(job, "running")
    const result = plan._tag === "explore"
      ? yield* exploreShard(row, plan, shard)
      : plan._tag === "compare"
      ? yield* compareShard(plan, shard)
      : yield* oneRun(plan).pipe(
        // A replay that diverges (a token from another build) fails its job with the reason.
        Effect.catchAll((e) => Effect.fail(new WorkerProtocol.WorkerRequestError({ message: e.message })))
      )
    yield* store.putShard(job, shard, result, yield* Clock.currentTimeMillis, yield* RunnerId)
    const after = yield* store.tally(job, all)
    if (after.shardsThroughStop >= needed(row, all, after.firstStop)) yield* store.setState(job, "done")
  }).pipe(
    // A shard that cannot run (a worker's error) fails its job with the reason; the job is not retried forever.
    Effect.catchTag("WorkerRequestError", (e) => Effect.flatMap(Store, (s) => s.setState(job, "failed", e.message))),
    Effect.orDie
  )

/**
 * The entity on a runner: each message runs its shard. A campaign sends all its shards at once,
 * and the cluster starts an entity for each; only twice as many as the runner has worker threads
 * go on at a time (the rest wait here before touching the store), so a runner of thousands of
 * waiting shards still answers its HTTP requests promptly.
 */
export const shardEntityLayer = Layer.unwrapEffect(Effect.gen(function*() {
  const context = yield* Effect.context<Store | Runs | RunnerId>()
  // One semaphore for every shard entity of the runner, made here and not in the entity's build
  // (which runs once per entity): with one per entity, every shard of a campaign read its job's
  // row at once, at submission, so a cancel stopped none of them.
  const active = yield* Effect.makeSemaphore(2 * Context.get(context, Runs).workers)
  return CampaignShard.toLayer({ Run: ({ payload }) => active.withPermits(1)(Effect.provide(runShard(payload.job, payload.shard), context)) })
}))

/** The service's jobs: what the HTTP handlers call. */
export class Jobs extends Context.Tag("@kvmlab/service/Jobs")<Jobs, {
  readonly submit: (spec: Schemas.JobSpec, now: string, id: string) => Effect.Effect<Schemas.Job, Api.BadRequest | SqlError>
  readonly get: (id: string) => Effect.Effect<Schemas.Job, Api.NotFound | SqlError>
  readonly list: (o: { readonly state?: Schemas.JobState | undefined; readonly kind?: Schemas.Job["kind"] | undefined; readonly offset: number; readonly limit: number }) => Effect.Effect<Schemas.JobPage, SqlError>
  readonly cancel: (id: string) => Effect.Effect<Schemas.Job, Api.NotFound | SqlError>
  readonly result: (id: string) => Effect.Effect<Schemas.JobResult, Api.NotFound | SqlError>
  /** The Perfetto trace of an exploration's violation `n` (0 is the first), made by replaying its token with tracing on. */
  readonly trace: (id: string, n: number) => Effect.Effect<unknown, Api.NotFound | SqlError>
  /**
   * The job's progress: a snapshot whenever it changes (polled from the store, which every
   * runner writes), until the job ends; the last element is its end. Each carries an id that
   * only grows as the job goes on (4 x shards stored, plus 0 queued, 1 running, 3 ended), the
   * same whoever asks and whenever: a client that reconnects resumes after the last id it saw.
   */
  readonly progress: (id: string) => Stream.Stream<{ readonly id: number; readonly progress: Schemas.Progress }, Api.NotFound | SqlError>
}>() {}

export const layer: Layer.Layer<Jobs, never, Store | Sharding.Sharding> = Layer.effect(
  Jobs,
  Effect.gen(function*() {
    const store = yield* Store
    const makeClient = yield* CampaignShard.client
    const notFound = (id: string) => new Api.NotFound({ what: "job", message: `no job ${id}` })
    const getRow = (id: string) => Effect.flatMap(store.job(id), Option.match({ onNone: () => Effect.fail(notFound(id)), onSome: Effect.succeed }))
    const specOf = (row: JobRow) => Schema.decodeUnknownSync(Schema.parseJson(Schemas.JobSpec))(row.spec)

    /** A job as the API reports it, from its row and its stored shards. */
    const view = (row: JobRow) =>
      Effect.gen(function*() {
        const plan = planOf(row)
        const t = yield* store.tally(row.id, allOf(plan))
        return new Schemas.Job({
          id: row.id,
          kind: row.kind,
          state: row.state,
          scenario: row.scenario,
          spec: specOf(row),
          createdAt: row.createdAt,
          runsTotal: row.runsTotal,
          runsDone: t.runsDone,
          shardsTotal: row.shardsTotal,
          shardsDone: t.shardsDone,
          violations: plan._tag === "explore" ? t.invariants.length : t.violations,
          runners: t.runners,
          ...(row.error !== null ? { error: row.error } : {})
        })
      })

    /** Sends every shard of a job to its entity (persisted; a shard already stored is skipped by its handler). */
    const dispatch = (row: JobRow) =>
      Effect.forEach(
        Array.from({ length: row.shardsTotal }, (_, i) => i),
        (shard) => makeClient(`${row.id}:${shard}`).Run({ job: row.id, shard }, { discard: true }),
        { discard: true, concurrency: 16 }
      ).pipe(Effect.orDie)

    const submit = (spec: Schemas.JobSpec, now: string, id: string) =>
      Effect.gen(function*() {
        const { p, name } = spec._tag === "replay"
          ? yield* Effect.map(replayPlan(spec), (p) => ({ p, name: p.scenario.name }))
          : yield* Effect.gen(function*() {
            const s = yield* scenarioOf(spec)
            const p = spec._tag === "explore" ? yield* explorePlan(spec, s) : spec._tag === "compare" ? yield* comparePlan(spec, s) : yield* runPlan(spec, s)
            return { p, name: s.name }
          })
        const row = yield* store.insertJob({
          id,
          kind: spec._tag,
          scenario: name,
          spec: JSON.stringify(Schema.encodeSync(Schemas.JobSpec)(spec)),
          block: Schema.encodeSync(Plan)(p.plan),
          state: "queued",
          createdAt: now,
          runsTotal: p.runs,
          shardSize: p.shardSize,
          shardsTotal: p.shards,
          error: null
        })
        yield* dispatch(row)
        return yield* view(row)
      })

    /** A job's answer: an exploration's stored blocks merged in seed order, or a comparison's rows. */
    const resultOf = (id: string): Effect.Effect<Schemas.JobResult, Api.NotFound | SqlError> =>
      Effect.gen(function*() {
        const row = yield* getRow(id)
        const plan = planOf(row)
        const spec = specOf(row)
        const shards = yield* store.results(id)
        if (plan._tag === "run" || plan._tag === "replay") {
          if (shards.length === 0) return yield* new Api.NotFound({ what: "result", message: `job ${id} has not run yet (${row.state})` })
          return Schema.decodeUnknownSync(Schema.parseJson(Schemas.RunResult))(shards[0]!)
        }
        if (plan._tag === "compare") {
          const sums = shards.map((r) => Schema.decodeUnknownSync(RowSums)(r))
          const rows = plan.rows.slice(0, sums.length).map((r, i) =>
            new Schemas.CompareRow({
              variant: r.variant,
              metrics: Object.fromEntries(Object.entries(sums[i]!.sums).map(([name, x]) => [name, x / plan.seeds])),
              violations: sums[i]!.violations
            })
          )
          return new Schemas.CompareResult({
            scenario: row.scenario,
            strategy: (plan.strategy as { _tag: string; depth?: number })._tag + ((plan.strategy as { depth?: number }).depth !== undefined ? `:${(plan.strategy as { depth: number }).depth}` : ""),
            seeds: plan.seeds,
            rows,
            metricUnits: Metrics.unitsOf(Object.assign({}, ...rows.map((r) => r.metrics)))
          })
        }
        const blocks = shards.map((r) => Schema.decodeUnknownSync(Schema.parseJson(WorkerProtocol.BlockResult))(r) as Explore.BlockResult)
        const c = Explore.combine(blocks, plan.all)
        return new Schemas.ExploreResult({
          scenario: row.scenario,
          strategy: spec._tag === "explore" && spec.strategy === "pct" ? `pct:${spec.depth ?? 3}` : spec._tag === "explore" ? spec.strategy : "random",
          seed: spec._tag === "replay" ? 0 : spec.seed,
          runs: c.runs,
          steps: c.steps,
          distinctTraces: c.distinctTraces,
          violations: c.violations.map((v) => new Schemas.FoundViolation({ invariant: v.invariant, message: v.message, step: v.step, actor: v.actor, replay: v.replay, run: v.run, seed: v.seed, steps: v.steps, count: v.count })),
          outcomes: c.outcomes,
          invariantChecks: c.invariantChecks
        })
      })

    return {
      submit,
      get: (id) => Effect.flatMap(getRow(id), view),
      list: (o) =>
        Effect.gen(function*() {
          const page = yield* store.jobs(o)
          return new Schemas.JobPage({ jobs: yield* Effect.forEach(page.rows, view), total: page.total, offset: o.offset, limit: o.limit })
        }),
      cancel: (id) =>
        Effect.gen(function*() {
          yield* getRow(id)
          yield* store.setState(id, "cancelled")
          return yield* Effect.flatMap(getRow(id), view)
        }),
      result: resultOf,
      trace: (id, n) =>
        Effect.gen(function*() {
          const r = yield* resultOf(id)
          if (r._tag === "compare") return yield* new Api.NotFound({ what: "violation", message: `job ${id} is a comparison: its runs have metrics, not counterexamples` })
          // A run or replay job's trace is its run's, violation or not (n 0); an exploration's, its violation n's.
          const token = r._tag === "run" ? (n === 0 ? r.replay : undefined) : r.violations[n]?.replay
          if (token === undefined) {
            const count = r._tag === "run" ? 1 : r.violations.length
            return yield* new Api.NotFound({ what: "violation", message: `job ${id} has ${count} ${r._tag === "run" ? "run" : `violation${count === 1 ? "" : "s"}`}; no ${n}` })
          }
          const run = yield* Runner.replay(token, { trace: true, onPause: () => Progress.eventLoopTurn }).pipe(Effect.orDie)
          return Perfetto.fromTrace(run.trace, { timed: run.strategy === "timed", title: `${run.scenario} seed ${run.seed} ${run.strategy}`, violation: run.violations[0] })
        }),
      progress: (id) => {
        const snapshot = Effect.gen(function*() {
          const row = yield* getRow(id)
          const all = allOf(planOf(row))
          const t = yield* store.tally(id, all)
          const runsTotal = Math.min(row.runsTotal, needed(row, all, t.firstStop) * row.shardSize)
          const seconds = Math.max(0, ((yield* Clock.currentTimeMillis) - Date.parse(row.createdAt)) / 1000)
          const rate = seconds > 0 ? t.runsDone / seconds : 0
          const progress = new Schemas.Progress({
            id,
            state: row.state,
            runsDone: t.runsDone,
            runsTotal,
            percent: row.state === "done" ? 100 : Math.min(99, Math.floor((100 * t.runsDone) / Math.max(1, runsTotal))),
            violations: row.kind === "explore" ? t.invariants.length : t.violations,
            runsPerSecond: Math.round(rate),
            ...(!ended(row.state) && rate > 0 ? { etaSeconds: Math.round((runsTotal - t.runsDone) / rate) } : {})
          })
          return { id: 4 * t.shardsDone + (ended(row.state) ? 3 : row.state === "running" ? 1 : 0), progress }
        })
        return Stream.repeatEffectWithSchedule(snapshot, Schedule.spaced(PROGRESS_POLL)).pipe(
          Stream.changesWith((a, b) => a.id === b.id),
          Stream.takeUntil((p) => ended(p.progress.state))
        )
      }
    }
  })
)
