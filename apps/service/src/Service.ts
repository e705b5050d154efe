/**
 * The service assembled, on the embedded default: one process, a SQLite file under the data
 * directory (jobs, shard results, and the cluster's messages and runner state), the cluster's
 * single runner in-process (`SingleRunner`: persisted messages, redelivered after a restart),
 * and the runs on worker threads, one per core. `layer` is everything but the HTTP server, so
 * the bin serves it on a port and the tests on a test server.
 */
import { SingleRunner } from "@effect/cluster"
import { SqliteClient, SqliteMigrator } from "@effect/sql-sqlite-node"
import { Workers } from "@kvmlab/cli"
import { Effect, Layer, Redacted } from "effect"
import { randomUUID } from "node:crypto"
import { join } from "node:path"
import { HttpLive, ServiceConfig } from "./Http.js"
import * as Jobs from "./Jobs.js"
import * as Metrics from "./Metrics.js"
import * as Store from "./Store.js"

export interface Options {
  /** The data directory: the SQLite file lives there. */
  readonly data: string
  /** Worker threads for the runs. */
  readonly workers: number
  /** The bearer token of mutating requests. */
  readonly token: string
  readonly version: string
}

/** The SQLite database of the embedded service, its tables made. */
const sqlite = (data: string) => {
  const client = SqliteClient.layer({ filename: join(data, "kvmlab.db") })
  return Layer.merge(client, SqliteMigrator.layer({ loader: Store.migrations }).pipe(Layer.provide(client)))
}

/** The runs of this runner: a pool of worker threads for the scope of the service. */
const runs = (workers: number) => Layer.scoped(Jobs.Runs, Effect.flatMap(Workers.Workers, (w) => w.dealer(workers)))

/**
 * The service less its HTTP server: the API's routes, the jobs, the cluster with its shard
 * entity, the store and the worker threads. Needs the platform (`NodeContext`) and an HTTP server.
 */
export const layer = (o: Options) => {
  const db = sqlite(o.data)
  const cluster = SingleRunner.layer({ runnerStorage: "sql" })
  const store = Store.layer
  const config = Layer.succeed(ServiceConfig, {
    token: Redacted.make(o.token),
    version: o.version,
    newJobId: Effect.sync(() => randomUUID())
  })
  const jobs = Jobs.layer
  const shards = Jobs.shardEntityLayer.pipe(Layer.provide(runs(o.workers)))
  return HttpLive.pipe(
    Layer.provide(jobs),
    Layer.provide(Metrics.layer),
    Layer.provide(shards),
    Layer.provide(config),
    Layer.provideMerge(cluster),
    Layer.provideMerge(store),
    Layer.provide(Workers.layerThreads),
    Layer.provideMerge(db)
  )
}
