/**
 * What the service keeps, in SQL (SQLite on one host, PostgreSQL when several share the work):
 * jobs, and the result of each shard of a job as it completes. A shard's result is written once
 * (its primary key is the job and the shard index; a second write of the same shard, from a
 * message delivered again after a crash, changes nothing), so a completed shard is never lost
 * and never counted twice, and a job's progress and result are always what its stored shards
 * say. The cluster keeps its own tables (messages, runners) in the same database.
 */
import { Migrator, SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Layer, Option } from "effect"

/** The tables: created once, by the migrator, in every database the service uses. */
export const migrations = Migrator.fromRecord({
  "0001_jobs": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql`CREATE TABLE kvmlab_jobs (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        scenario TEXT NOT NULL,
        spec TEXT NOT NULL,
        block TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        runs_total INTEGER NOT NULL,
        shard_size INTEGER NOT NULL,
        shards_total INTEGER NOT NULL,
        error TEXT
      )`,
      sql`CREATE TABLE kvmlab_shards (
        job_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        runs INTEGER NOT NULL,
        stops INTEGER NOT NULL,
        invariants TEXT NOT NULL,
        violations INTEGER NOT NULL,
        stored_at BIGINT NOT NULL,
        runner TEXT NOT NULL,
        result TEXT NOT NULL,
        PRIMARY KEY (job_id, idx)
      )`
    ], { discard: true }))
})

/** A job's row, as stored. */
export interface JobRow {
  readonly id: string
  readonly seq: number
  readonly kind: "explore" | "compare" | "run" | "replay"
  /** The scenario's name. */
  readonly scenario: string
  /** The job's spec as submitted (JSON of `Schemas.JobSpec`'s encoded form). */
  readonly spec: string
  /** What every shard runs (`Jobs`' plan), as JSON. */
  readonly block: string
  readonly state: "queued" | "running" | "done" | "failed" | "cancelled"
  readonly createdAt: string
  readonly runsTotal: number
  readonly shardSize: number
  readonly shardsTotal: number
  readonly error: string | null
}

/** What a shard stores: its runs, whether it ends an exploration, what it broke, and its result as JSON. */
export interface ShardResult {
  readonly runs: number
  /** A violation that ends an exploration without `all`. */
  readonly stops: boolean
  /** The invariants broken (an exploration's). */
  readonly invariants: ReadonlyArray<string>
  /** Runs that broke an invariant. */
  readonly violations: number
  readonly result: string
}

/** A job's stored shards, summed: how far it has come. */
export interface Tally {
  readonly shardsDone: number
  readonly runsDone: number
  /** The lowest shard index whose block found a violation (which ends an exploration without `all`). */
  readonly firstStop: number | undefined
  /** Stored shards with an index up to `firstStop` (all of them when there is none). */
  readonly shardsThroughStop: number
  /** The invariants broken in the stored shards (up to `firstStop` without `all`). */
  readonly invariants: ReadonlyArray<string>
  /** Runs that broke an invariant in the stored shards (up to `firstStop` without `all`). */
  readonly violations: number
  /** The runners that stored the shards (host:pid). */
  readonly runners: ReadonlyArray<string>
}

const toRow = (r: Record<string, unknown>): JobRow => ({
  id: String(r.id),
  seq: Number(r.seq),
  kind: String(r.kind) as JobRow["kind"],
  scenario: String(r.scenario),
  spec: String(r.spec),
  block: String(r.block),
  state: String(r.state) as JobRow["state"],
  createdAt: String(r.created_at),
  runsTotal: Number(r.runs_total),
  shardSize: Number(r.shard_size),
  shardsTotal: Number(r.shards_total),
  error: r.error === null || r.error === undefined ? null : String(r.error)
})

/** The runner this process is, as shards record it: host and process id. */
export class RunnerId extends Context.Tag("@kvmlab/service/RunnerId")<RunnerId, string>() {}

export class Store extends Context.Tag("@kvmlab/service/Store")<Store, {
  readonly insertJob: (job: Omit<JobRow, "seq">) => Effect.Effect<JobRow, SqlError>
  readonly job: (id: string) => Effect.Effect<Option.Option<JobRow>, SqlError>
  readonly jobs: (o: { readonly state?: JobRow["state"] | undefined; readonly kind?: JobRow["kind"] | undefined; readonly offset: number; readonly limit: number }) => Effect.Effect<{ readonly rows: ReadonlyArray<JobRow>; readonly total: number }, SqlError>
  /** Moves a job to `state` unless it has already ended (done, failed, cancelled); true when it moved. */
  readonly setState: (id: string, state: JobRow["state"], error?: string) => Effect.Effect<boolean, SqlError>
  /** Stores a shard's result; false when it was stored already (a message delivered again). */
  readonly putShard: (id: string, idx: number, result: ShardResult, storedAtMs: number, runner: string) => Effect.Effect<boolean, SqlError>
  /** How far a job has come; without `all`, nothing after the first violating shard counts. */
  readonly tally: (id: string, all: boolean) => Effect.Effect<Tally, SqlError>
  /** The stored results of a job's shards (JSON), in shard order. */
  readonly results: (id: string) => Effect.Effect<ReadonlyArray<string>, SqlError>
  /** Jobs not yet ended: what a restarted service goes on with. */
  readonly unfinished: Effect.Effect<ReadonlyArray<JobRow>, SqlError>
}>() {}

export const layer: Layer.Layer<Store, never, SqlClient.SqlClient> = Layer.effect(
  Store,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const job = (id: string) => Effect.map(sql`SELECT * FROM kvmlab_jobs WHERE id = ${id}`, (rs) => Option.map(Option.fromNullable(rs[0]), toRow))
    return {
      insertJob: (j) =>
        sql.withTransaction(Effect.gen(function*() {
          const [{ n }] = (yield* sql`SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM kvmlab_jobs`) as unknown as [{ n: number }]
          yield* sql`INSERT INTO kvmlab_jobs ${
            sql.insert({
              id: j.id,
              seq: Number(n),
              kind: j.kind,
              scenario: j.scenario,
              spec: j.spec,
              block: j.block,
              state: j.state,
              created_at: j.createdAt,
              runs_total: j.runsTotal,
              shard_size: j.shardSize,
              shards_total: j.shardsTotal,
              error: j.error
            })
          }`
          return { ...j, seq: Number(n) }
        })),
      job,
      jobs: (o) =>
        Effect.gen(function*() {
          const where = sql.and([
            ...(o.state === undefined ? [] : [sql`state = ${o.state}`]),
            ...(o.kind === undefined ? [] : [sql`kind = ${o.kind}`])
          ])
          const rows = yield* sql`SELECT * FROM kvmlab_jobs WHERE ${where} ORDER BY seq DESC LIMIT ${o.limit} OFFSET ${o.offset}`
          const [{ n }] = (yield* sql`SELECT COUNT(*) AS n FROM kvmlab_jobs WHERE ${where}`) as unknown as [{ n: number }]
          return { rows: rows.map(toRow), total: Number(n) }
        }),
      setState: (id, state, error) =>
        Effect.map(
          sql`UPDATE kvmlab_jobs SET state = ${state}, error = ${error ?? null}
              WHERE id = ${id} AND state NOT IN ('done', 'failed', 'cancelled') RETURNING id`,
          (rs) => rs.length > 0
        ),
      putShard: (id, idx, r, storedAtMs, runner) =>
        Effect.map(
          sql`INSERT INTO kvmlab_shards (job_id, idx, runs, stops, invariants, violations, stored_at, runner, result)
              VALUES (${id}, ${idx}, ${r.runs}, ${r.stops ? 1 : 0}, ${r.invariants.join(",")}, ${r.violations}, ${storedAtMs}, ${runner}, ${r.result})
              ON CONFLICT (job_id, idx) DO NOTHING RETURNING idx`,
          (rs) => rs.length > 0
        ),
      tally: (id, all) =>
        Effect.gen(function*() {
          // Aggregates on the primary key's prefix: a job of thousands of shards is a few index
          // reads, not thousands of rows (each shard's handler asks, so this must stay cheap).
          const [head] = yield* sql`SELECT COUNT(*) AS shards, MIN(CASE WHEN stops = 1 THEN idx END) AS first_stop FROM kvmlab_shards WHERE job_id = ${id}`
          const firstStop = head?.first_stop === null || head?.first_stop === undefined ? undefined : Number(head.first_stop)
          // (the largest 32-bit integer: PostgreSQL types the parameter as the column, an INTEGER)
          const last = all || firstStop === undefined ? 2_147_483_647 : firstStop
          const [counted] = yield* sql`SELECT COUNT(*) AS shards, COALESCE(SUM(runs), 0) AS runs, COALESCE(SUM(violations), 0) AS violations
                                       FROM kvmlab_shards WHERE job_id = ${id} AND idx <= ${last}`
          const broken = yield* sql`SELECT DISTINCT invariants FROM kvmlab_shards WHERE job_id = ${id} AND idx <= ${last} AND invariants <> ''`
          const runners = yield* sql`SELECT DISTINCT runner FROM kvmlab_shards WHERE job_id = ${id}`
          return {
            shardsDone: Number(head?.shards ?? 0),
            runsDone: Number(counted?.runs ?? 0),
            firstStop,
            shardsThroughStop: Number(counted?.shards ?? 0),
            invariants: [...new Set(broken.flatMap((r) => String(r.invariants).split(",")))].sort(),
            violations: Number(counted?.violations ?? 0),
            runners: runners.map((r) => String(r.runner)).sort()
          }
        }),
      results: (id) => Effect.map(sql`SELECT result FROM kvmlab_shards WHERE job_id = ${id} ORDER BY idx`, (rs) => rs.map((r) => String(r.result))),
      unfinished: Effect.map(sql`SELECT * FROM kvmlab_jobs WHERE state IN ('queued', 'running') ORDER BY seq`, (rs) => rs.map(toRow))
    }
  })
)
