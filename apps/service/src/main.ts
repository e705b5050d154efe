/**
 * `kvmlab-service [--host H] [--port P] [--data DIR] [--workers N]`: the service on the embedded
 * default (SQLite under the data directory, the cluster's single runner in this process, runs on
 * worker threads). Binds 127.0.0.1 unless told otherwise. The bearer token of mutating requests
 * is KVMLAB_TOKEN, or the one in `<data>/token`, or a new one written there (mode 0600) and
 * printed once. Bad options and a port already in use are one line and exit 2; SIGINT/SIGTERM
 * stop it cleanly (the cluster's messages stay stored: a restart goes on with unfinished jobs).
 */
import { Command, Options } from "@effect/cli"
import { HttpServer } from "@effect/platform"
import { NodeContext, NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Inputs, Workers } from "@kvmlab/cli"
import { Cause, Console, Data, Effect, Exit, Layer, Option } from "effect"
import { randomBytes } from "node:crypto"
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import { homedir } from "node:os"
import { join, resolve } from "node:path"
import * as Service from "./Service.js"

/** The service's port unless --port says otherwise. */
export const DEFAULT_PORT = 8420
/** The data directory unless --data says otherwise. */
export const defaultData = (): string => join(homedir(), ".kvmlab", "service")

const VERSION = "0.1.0"

/** The token: KVMLAB_TOKEN, the data directory's, or a new one kept there (printed once). */
const tokenOf = (data: string): Effect.Effect<string> =>
  Effect.gen(function*() {
    const env = process.env.KVMLAB_TOKEN
    if (env !== undefined && env.trim() !== "") return env.trim()
    const file = join(data, "token")
    if (existsSync(file)) return readFileSync(file, "utf8").trim()
    const token = randomBytes(24).toString("base64url")
    writeFileSync(file, `${token}\n`, { mode: 0o600 })
    chmodSync(file, 0o600)
    yield* Console.log(`kvmlab-service: new bearer token (kept in ${file}; set KVMLAB_TOKEN to choose one): ${token}`)
    return token
  })

/** The PostgreSQL URL of the multi-host set-up: --pg, or KVMLAB_PG. */
const pgOption = Options.text("pg").pipe(
  Options.withPseudoName("url"),
  Options.optional,
  Options.withDescription("PostgreSQL URL shared by every process of a multi-host service (default: KVMLAB_PG; without either, SQLite under --data and shards run here)")
)
const pgOf = (o: Option.Option<string>): string | undefined => Option.getOrElse(o, () => process.env.KVMLAB_PG ?? "").trim() || undefined

/** `kvmlab-service runner`: holds shards of a multi-host service's cluster and runs them; no HTTP. */
const runner = Command.make("runner", {
  pg: pgOption,
  host: Options.text("runner-host").pipe(Options.withDefault("127.0.0.1"), Options.withDescription("the address other runners reach this one at (default 127.0.0.1)")),
  port: Inputs.integer("runner-port", 1, 65535).pipe(Options.withDefault(34431), Options.withDescription("the TCP port of this runner (default 34431)")),
  workers: Inputs.integer("workers", 1, 256).pipe(Options.withDefault(Workers.cores()), Options.withDescription("worker threads for the runs (default: the number of cores)"))
}, (o) =>
  Effect.gen(function*() {
    const url = pgOf(o.pg)
    if (url === undefined) return yield* Effect.fail(new StartError({ message: "a runner needs the shared database: give --pg postgres://... (or set KVMLAB_PG)" }))
    yield* Console.log(`kvmlab-service runner ${VERSION} on ${o.host}:${o.port} (pid ${process.pid}, ${o.workers} workers)`)
    return yield* Layer.launch(Service.runnerLayer({ url, host: o.host, port: o.port, workers: o.workers }).pipe(Layer.provide(NodeContext.layer)))
  })).pipe(Command.withDescription("a runner of a multi-host service: it holds shards of the cluster (ownership in PostgreSQL) and runs them on its cores"))

/** A failure to start, said in one line. */
class StartError extends Data.TaggedError("StartError")<{ readonly message: string }> {}

const serve = Command.make("kvmlab-service", {
  host: Options.text("host").pipe(Options.withDefault("127.0.0.1"), Options.withDescription("address to bind (default 127.0.0.1: this machine only)")),
  port: Inputs.integer("port", 0, 65535).pipe(Options.withDefault(DEFAULT_PORT), Options.withDescription(`port (default ${DEFAULT_PORT}; 0: any free port)`)),
  data: Options.text("data").pipe(Options.optional, Options.withDescription(`data directory: the SQLite file and the token (default ${defaultData()})`)),
  workers: Inputs.integer("workers", 1, 256).pipe(Options.withDefault(Workers.cores()), Options.withDescription("worker threads for the runs (default: the number of cores)")),
  pg: pgOption
}, (o) =>
  Effect.gen(function*() {
    const data = resolve(Option.getOrElse(o.data, defaultData))
    mkdirSync(data, { recursive: true })
    const token = yield* tokenOf(data)
    const pg = pgOf(o.pg)
    const server = NodeHttpServer.layer(createServer, { host: o.host, port: o.port })
    const app = Service.layer({ data, pg, workers: o.workers, token, version: VERSION }).pipe(
      Layer.provideMerge(server),
      Layer.provide(NodeContext.layer)
    )
    yield* Effect.flatMap(HttpServer.addressFormattedWith((address) =>
      Console.log(
        `kvmlab-service ${VERSION} listening on ${address} (${pg === undefined ? `data ${data}, ${o.workers} workers` : "PostgreSQL; kvmlab-service runner processes run the shards"}); API docs at ${address}/docs`
      )), () => Effect.never).pipe(
      Effect.provide(app)
    )
  })).pipe(
  Command.withDescription("the kvmlab service: campaigns over HTTP, stored in SQLite and run on this machine's cores, or with --pg shared with runners on several hosts"),
  Command.withSubcommands([runner])
)

const cli = Command.run(serve, { name: "kvmlab-service", version: VERSION })

/** A failure to start (the port taken, the data directory unwritable) as one line. */
const startFailure = (cause: Cause.Cause<unknown>): string => {
  type Described = { readonly code?: string; readonly message?: string; readonly cause?: Described }
  const e = Cause.squash(cause) as Described
  const inner: Described = e.cause ?? e
  return `kvmlab-service: cannot start: ${inner.code !== undefined ? `${inner.code}: ` : ""}${inner.message ?? String(e)}`
}

cli(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  Effect.exit,
  Effect.flatMap((exit) =>
    Effect.sync(() => {
      if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return
      // @effect/cli has printed a usage error already; anything else is a failure to start.
      const failure = Option.getOrUndefined(Cause.failureOption(exit.cause)) as { readonly _tag?: string } | undefined
      if (failure === undefined || !/^(CommandMismatch|CorrectedFlag|HelpRequested|InvalidArgument|InvalidValue|MissingValue|MissingFlag|MultipleValuesDetected|MissingSubcommand|NoBuiltInMatch|UnclusteredFlag)$/.test(failure._tag ?? "")) {
        process.stderr.write(`${startFailure(exit.cause)}\n`)
      }
      process.exitCode = 2
    })
  ),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
