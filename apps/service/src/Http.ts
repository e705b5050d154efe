/**
 * The HTTP side of the service: `@kvmlab/api`'s groups implemented over `Jobs`, the bearer token
 * checked on every mutating endpoint, Server-Sent Events for progress (resumable: a client that
 * reconnects with `Last-Event-ID` gets only the events after it), the OpenAPI document at
 * `/openapi.json` and Swagger UI at `/docs`.
 */
import { HttpApiBuilder, HttpApiSwagger, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Sse } from "@effect/experimental"
import { Api, Schemas } from "@kvmlab/api"
import { Runner, Scenario } from "@kvmlab/scenarios"
import { Clock, Context, Effect, Either, Layer, Redacted, Schema, Stream } from "effect"
import { DashboardLive } from "./Dashboard.js"
import { guard } from "./Guard.js"
import { Jobs } from "./Jobs.js"
import * as Metrics from "./Metrics.js"

/** The token mutating requests must carry, and how job ids are made. */
export class ServiceConfig extends Context.Tag("@kvmlab/service/ServiceConfig")<ServiceConfig, {
  readonly token: Redacted.Redacted<string>
  readonly version: string
  /** A new job id (the service's clock and a counter: sortable, unique within the service). */
  readonly newJobId: Effect.Effect<string>
}>() {}

/** Constant-time comparison of two strings, so a wrong token's timing says nothing about the right one. */
const sameToken = (a: string, b: string): boolean => {
  let diff = a.length ^ b.length
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a.charCodeAt(i) || 0) ^ (b.charCodeAt(i) || 0)
  return diff === 0
}

export const AuthorizationLive = Layer.effect(
  Api.Authorization,
  Effect.map(ServiceConfig, (config) =>
    Api.Authorization.of({
      bearer: (given) =>
        Redacted.value(given) === ""
          ? Effect.fail(new Api.Unauthorized({ message: "missing bearer token: send Authorization: Bearer <token> (the token kvmlab-service printed, or KVMLAB_TOKEN)" }))
          : sameToken(Redacted.value(given), Redacted.value(config.token))
          ? Effect.void
          : Effect.fail(new Api.Unauthorized({ message: "wrong bearer token" }))
    }))
)

const ScenariosLive = HttpApiBuilder.group(Api.KvmlabApi, "scenarios", (h) =>
  h
    .handle("list", () =>
      Effect.succeed(Runner.builtinNames().map((n) => {
        const s = Runner.builtin(n)!
        return new Schemas.ScenarioSummary({ name: n, kind: s.workload.kind, vms: s.vms, vcpusPerVm: s.vcpusPerVm, pcpus: s.pcpus, description: s.description ?? "" })
      })))
    .handle("show", ({ path }) => {
      const s = Runner.builtin(path.name)
      return s === undefined
        ? Effect.fail(new Api.NotFound({ what: "scenario", message: `no built-in scenario named ${JSON.stringify(path.name)}` }))
        : Effect.succeed(Scenario.encode(s))
    })
    .handle("validate", ({ payload }) => {
      const checked = Either.flatMap(Scenario.decode(payload, "scenario"), (s) => Runner.validate(s, "scenario"))
      if (Either.isRight(checked)) return Effect.succeed(Scenario.encode(checked.right))
      const first = checked.left.issues[0]
      return Effect.fail(new Api.BadRequest({ field: first === undefined || first.path === "" ? "scenario" : first.path, message: first?.message ?? checked.left.message }))
    }))

/** A stored-state failure is the service's own defect, reported as a 500 without its details. */
const orDie = <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.catchTag(e as Effect.Effect<A, E | { readonly _tag: "SqlError" }, R>, "SqlError", (x) => Effect.die(x)) as Effect.Effect<A, Exclude<E, { readonly _tag: "SqlError" }>, R>

/**
 * Server-Sent Events of a job's progress. Each event's id grows with the job (see
 * `Jobs.progress`), so a client that reconnects with `Last-Event-ID` gets only what is newer.
 */
const events = (id: string) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    yield* jobs.get(id).pipe(orDie) // 404 before the stream starts
    const request = yield* HttpServerRequest.HttpServerRequest
    const last = Number(request.headers["last-event-id"] ?? "0")
    const after = Number.isSafeInteger(last) && last > 0 ? last : -1
    const stream = jobs.progress(id).pipe(
      Stream.filter((e) => e.id > after),
      Stream.map((e) => Sse.encoder.write({ _tag: "Event", event: "progress", id: String(e.id), data: JSON.stringify(Schema.encodeSync(Schemas.Progress)(e.progress)) })),
      Stream.orDie,
      Stream.encodeText
    )
    return HttpServerResponse.stream(stream, { contentType: "text/event-stream", headers: { "cache-control": "no-cache" } })
  })

const JobsLive = HttpApiBuilder.group(Api.KvmlabApi, "jobs", (h) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const config = yield* ServiceConfig
    return h
      .handle("submit", ({ payload }) =>
        orDie(Effect.gen(function*() {
          const now = new Date(yield* Clock.currentTimeMillis).toISOString()
          return yield* jobs.submit(payload, now, yield* config.newJobId)
        })))
      .handle("list", ({ urlParams }) => orDie(jobs.list({ state: urlParams.state, kind: urlParams.kind, offset: urlParams.offset ?? 0, limit: urlParams.limit ?? 50 })))
      .handle("get", ({ path }) => orDie(jobs.get(path.id)))
      .handle("cancel", ({ path }) => orDie(jobs.cancel(path.id)))
      .handle("result", ({ path }) => orDie(jobs.result(path.id)))
      .handleRaw("events", ({ path }) => Effect.catchTag(events(path.id), "NotFound", (e) => Effect.fail(e)))
      .handle("trace", ({ path }) => orDie(jobs.trace(path.id, path.n)))
  }))

const HealthLive = HttpApiBuilder.group(Api.KvmlabApi, "health", (h) =>
  Effect.map(ServiceConfig, (config) =>
    h
      .handle("health", () => Effect.succeed({ status: "ok" as const, version: config.version }))
      .handleRaw("metrics", () => Metrics.exposition)))

/** The API, with the OpenAPI document and Swagger UI. */
export const ApiLive = HttpApiBuilder.api(Api.KvmlabApi).pipe(
  Layer.provide([ScenariosLive, JobsLive, HealthLive]),
  Layer.provide(AuthorizationLive)
)

/**
 * Everything the server serves: the API, `/openapi.json`, `/docs`, the dashboard, `/metrics`;
 * every request checked (`Guard`) and timed (`Metrics`).
 */
export const HttpLive = HttpApiBuilder.serve((app) => Effect.flatMap(Metrics.ServiceMetrics, (m) => Metrics.timed(m)(guard(app)))).pipe(
  Layer.provide(HttpApiSwagger.layer({ path: "/docs" })),
  Layer.provide(DashboardLive),
  Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
  Layer.provide(ApiLive)
)
