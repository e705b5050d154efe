/**
 * `/metrics` in Prometheus's exposition format, with prom-client (the standard Node client):
 * what the store says at scrape time — jobs by state, runs made, runs per second over the last
 * ten seconds, shards queued, violations — so every API process of a multi-host service reports
 * the whole service; and a histogram of this process's HTTP request latencies, by method, route
 * (ids replaced by their parameter name, so the label set stays small) and status.
 */
import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type * as HttpApp from "@effect/platform/HttpApp"
import { SqlClient } from "@effect/sql"
import { Clock, Context, Effect, Layer, Runtime } from "effect"
import { Counter, Gauge, Histogram, Registry } from "prom-client"

type Row = { readonly [column: string]: unknown }

const STATES = ["queued", "running", "done", "failed", "cancelled"] as const

/** The window of `kvmlab_runs_per_second`. */
const RATE_WINDOW_MS = 10_000

export class ServiceMetrics extends Context.Tag("@kvmlab/service/Metrics")<ServiceMetrics, {
  readonly registry: Registry
  readonly observe: (method: string, route: string, status: number, seconds: number) => void
}>() {}

/** A request path as a route label: ids and names replaced by their parameter, anything else "other". */
export const routeOf = (path: string): string => {
  const p = path.split("?")[0]!
  if (p === "/" || p === "/health" || p === "/metrics" || p === "/openapi.json" || p === "/api/jobs" || p === "/api/scenarios" || p === "/api/scenarios/validate") return p
  if (p.startsWith("/docs")) return "/docs"
  if (p.startsWith("/dashboard/")) return "/dashboard/{file}"
  if (/^\/api\/scenarios\/[^/]+$/.test(p)) return "/api/scenarios/{name}"
  const job = /^\/api\/jobs\/[^/]+(\/cancel|\/result|\/events|\/violations\/[^/]+\/trace)?$/.exec(p)
  if (job !== null) return `/api/jobs/{id}${(job[1] ?? "").replace(/\/violations\/[^/]+/, "/violations/{n}")}`
  return "other"
}

export const layer: Layer.Layer<ServiceMetrics, never, SqlClient.SqlClient> = Layer.effect(
  ServiceMetrics,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const run = Runtime.runPromise(yield* Effect.runtime<never>())
    const query = <A>(e: Effect.Effect<A, unknown>) => run(Effect.orDie(e))
    /** The number in the one row (`n`) a query gives. */
    const single = async (q: Effect.Effect<ReadonlyArray<Row>, unknown>) => Number((await query(q))[0]?.n ?? 0)
    const registry = new Registry()
    new Gauge({
      name: "kvmlab_jobs",
      help: "Jobs by state",
      labelNames: ["state"],
      registers: [registry],
      async collect() {
        const rows = await query(sql`SELECT state, COUNT(*) AS n FROM kvmlab_jobs GROUP BY state`)
        for (const s of STATES) this.set({ state: s }, Number(rows.find((r) => r.state === s)?.n ?? 0))
      }
    })
    /** A counter whose value is a total the store keeps (a query giving one row, `n`). */
    const storedTotal = (name: string, help: string, total: Effect.Effect<ReadonlyArray<Row>, unknown>) =>
      new Counter({
        name,
        help,
        registers: [registry],
        async collect() {
          this.reset()
          this.inc(await single(total))
        }
      })
    storedTotal("kvmlab_runs_total", "Runs made by every job (stored shards)", sql`SELECT COALESCE(SUM(runs), 0) AS n FROM kvmlab_shards`)
    storedTotal("kvmlab_violations_total", "Runs that broke an invariant, over every job (stored shards)", sql`SELECT COALESCE(SUM(violations), 0) AS n FROM kvmlab_shards`)
    new Gauge({
      name: "kvmlab_runs_per_second",
      help: `Runs per second over the last ${RATE_WINDOW_MS / 1000} s (shards stored in that window)`,
      registers: [registry],
      async collect() {
        const since = (await run(Clock.currentTimeMillis)) - RATE_WINDOW_MS
        this.set((await single(sql`SELECT COALESCE(SUM(runs), 0) AS n FROM kvmlab_shards WHERE stored_at > ${since}`)) / (RATE_WINDOW_MS / 1000))
      }
    })
    new Gauge({
      name: "kvmlab_shards_queued",
      help: "Shards of queued and running jobs not yet stored (the queue depth)",
      registers: [registry],
      async collect() {
        this.set(await single(sql`SELECT COALESCE(SUM(j.shards_total), 0) - (SELECT COUNT(*) FROM kvmlab_shards s JOIN kvmlab_jobs k ON s.job_id = k.id
                                    WHERE k.state IN ('queued', 'running')) AS n FROM kvmlab_jobs j WHERE j.state IN ('queued', 'running')`))
      }
    })
    const latency = new Histogram({
      name: "kvmlab_http_request_duration_seconds",
      help: "HTTP request latency (to the response head), by method, route and status",
      labelNames: ["method", "route", "status"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry]
    })
    return {
      registry,
      observe: (method, route, status, seconds) => latency.observe({ method, route, status: String(status) }, seconds)
    }
  })
)

/** The server middleware that times every request into the latency histogram. */
export const timed = (metrics: Context.Tag.Service<ServiceMetrics>) => <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R | HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const start = yield* Clock.currentTimeNanos
    return yield* app.pipe(
      Effect.onExit((exit) =>
        Effect.flatMap(Clock.currentTimeNanos, (end) =>
          Effect.sync(() => {
            const status = exit._tag === "Success" ? exit.value.status : 500
            metrics.observe(request.method, routeOf(request.url), status, Number(end - start) / 1e9)
          })
        )
      )
    )
  })

/** The `/metrics` handler's response. */
export const exposition = Effect.flatMap(ServiceMetrics, (m) =>
  Effect.map(Effect.promise(() => m.registry.metrics()), (text) => HttpServerResponse.text(text, { contentType: m.registry.contentType })))
