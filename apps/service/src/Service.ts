/**
 * The service assembled, in two set-ups.
 *
 * - Embedded (the default): one process, a SQLite file under the data directory (jobs, shard
 *   results, and the cluster's messages and runner state), the cluster's single runner
 *   in-process (`SingleRunner`: persisted messages, delivered again after a restart), and the
 *   runs on worker threads, one per core.
 * - Several hosts: every process shares one PostgreSQL database. `api` processes serve HTTP and
 *   are cluster clients only (they send shards, run none); `runner` processes hold the cluster's
 *   shards (`NodeClusterSocket`: runners reach each other over TCP, shard ownership in the
 *   database) and run them on their worker threads. A runner that dies loses its shard locks
 *   when they expire, and another runner takes its shards, with their unprocessed messages.
 *
 * `layer` is everything but the HTTP server, so the bin serves it on a port and the tests on a
 * test server; `runnerLayer` is a runner without HTTP.
 */
import { RunnerAddress, SingleRunner } from "@effect/cluster"
import { NodeClusterSocket } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { SqliteClient, SqliteMigrator } from "@effect/sql-sqlite-node"
import { Workers } from "@kvmlab/cli"
import { Effect, Layer, Option, Redacted } from "effect"
import { randomUUID } from "node:crypto"
import { hostname } from "node:os"
import { join } from "node:path"
import { HttpLive, ServiceConfig } from "./Http.js"
import * as Jobs from "./Jobs.js"
import * as Metrics from "./Metrics.js"
import * as Store from "./Store.js"

/** Where the service keeps its state: a SQLite file (one host), or a PostgreSQL database (several). */
export type Storage =
  | { readonly _tag: "sqlite"; readonly data: string }
  | { readonly _tag: "pg"; readonly url: string }

export interface Options {
  /** The data directory: the SQLite file of the embedded set-up lives there. */
  readonly data: string
  /** A PostgreSQL URL: the multi-host set-up, whose runners run the shards (default: SQLite under `data`). */
  readonly pg?: string | undefined
  /** Worker threads for the runs (of this process, when it runs shards). */
  readonly workers: number
  /** The bearer token of mutating requests. */
  readonly token: string
  readonly version: string
}

/**
 * How long a runner's shard locks last without a refresh: a runner that dies has its shards taken
 * over after this (the cluster's default is a minute; a campaign should not stall that long).
 */
const SHARD_LOCK_EXPIRATION = "10 seconds"

/**
 * How long a stopping service waits for a running shard to finish before interrupting it (the
 * cluster's default is 15 s per entity; a stop took 28 s under a campaign). An interrupted shard
 * stores nothing; its message stays unprocessed and runs again when a runner next holds it.
 */
const ENTITY_TERMINATION = "2 seconds"

/** The database, its tables made (by the process that serves HTTP; runners only use them). */
const database = (storage: Storage, migrate: boolean) => {
  if (storage._tag === "sqlite") {
    // WAL (the client's default) with synchronous=NORMAL: a commit is not flushed to disk on its
    // own, only at checkpoints, so the thousands of small writes of a campaign (its messages,
    // its shards) do not each wait for the disk. The database cannot be corrupted this way; a
    // power cut may lose the last commits, which the cluster delivers again.
    const client = Layer.effectDiscard(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`PRAGMA synchronous = NORMAL`)).pipe(
      Layer.provideMerge(SqliteClient.layer({ filename: join(storage.data, "kvmlab.db") }))
    )
    return migrate ? Layer.merge(client, SqliteMigrator.layer({ loader: Store.migrations }).pipe(Layer.provide(client))) : client
  }
  const client = PgClient.layer({ url: Redacted.make(storage.url) })
  return migrate ? Layer.merge(client, PgMigrator.layer({ loader: Store.migrations }).pipe(Layer.provide(client))) : client
}

/** The runs of this runner: a pool of worker threads for the scope of the service. */
const runs = (workers: number) => Layer.scoped(Jobs.Runs, Effect.flatMap(Workers.Workers, (w) => w.dealer(workers)))

/** Who stores a shard: this host and process (each shard records the runner that ran it). */
const identity = Layer.succeed(Store.RunnerId, `${hostname()}:${process.pid}`)

/** The shard entity on this process, with its worker threads. */
const shards = (workers: number) =>
  Jobs.shardEntityLayer.pipe(Layer.provide(runs(workers)), Layer.provide(Workers.layerThreads), Layer.provide(identity))

const config = (o: Options) =>
  Layer.succeed(ServiceConfig, {
    token: Redacted.make(o.token),
    version: o.version,
    newJobId: Effect.sync(() => randomUUID())
  })

/**
 * The service less its HTTP server: the API's routes, the jobs, the cluster and the store; with
 * SQLite also the shard entity and the worker threads (with PostgreSQL, `runner` processes run
 * the shards). Needs the platform (`NodeContext`) and an HTTP server.
 */
export const layer = (o: Options) => {
  const storage: Storage = o.pg === undefined ? { _tag: "sqlite", data: o.data } : { _tag: "pg", url: o.pg }
  const cluster = storage._tag === "sqlite"
    ? SingleRunner.layer({ runnerStorage: "sql", shardingConfig: { entityTerminationTimeout: ENTITY_TERMINATION } })
    : NodeClusterSocket.layer({ storage: "sql", clientOnly: true, shardingConfig: { shardLockExpiration: SHARD_LOCK_EXPIRATION, entityTerminationTimeout: ENTITY_TERMINATION } })
  const local = storage._tag === "sqlite" ? shards(o.workers) : Layer.empty
  return HttpLive.pipe(
    Layer.provide(Jobs.layer),
    Layer.provide(Metrics.layer),
    Layer.provide(local),
    Layer.provide(config(o)),
    Layer.provideMerge(cluster),
    Layer.provideMerge(Store.layer),
    Layer.provideMerge(database(storage, true))
  )
}

/** A runner of a multi-host service: no HTTP; it holds shards of the cluster and runs them. */
export const runnerLayer = (o: { readonly url: string; readonly host: string; readonly port: number; readonly workers: number }) =>
  shards(o.workers).pipe(
    Layer.provideMerge(NodeClusterSocket.layer({
      storage: "sql",
      shardingConfig: {
        runnerAddress: Option.some(RunnerAddress.make(o.host, o.port)),
        shardLockExpiration: SHARD_LOCK_EXPIRATION,
        entityTerminationTimeout: ENTITY_TERMINATION
      }
    })),
    Layer.provideMerge(Store.layer),
    Layer.provideMerge(database({ _tag: "pg", url: o.url }, false))
  )
