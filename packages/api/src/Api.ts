/**
 * The kvmlab service's HTTP API, declared once: the server implements these groups, the typed
 * client (`HttpApiClient.make(KvmlabApi, { baseUrl })`) and the OpenAPI document derive from it.
 * Every mutating endpoint needs the bearer token (`Authorization` middleware); a request that
 * does not decode is a 400 whose issues name the field (`HttpApiDecodeError`, from the Schema).
 */
import { HttpApi, HttpApiEndpoint, HttpApiError, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, HttpApiSecurity, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Job, JobPage, JobResult, JobSpec, JobState, ScenarioSummary } from "./Schemas.js"

/** Bad input the Schema could not see (an unknown scenario, a bug switch that does not fit it): which field, and what is wrong. */
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", {
  field: Schema.String,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 400 })) {}

/** No such job or scenario. */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  what: Schema.String,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 404 })) {}

/** A mutating request without the bearer token, or with another. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  message: Schema.String
}, HttpApiSchema.annotations({ status: 401 })) {}

/** The bearer token every mutating endpoint needs (`Authorization: Bearer <token>`). */
export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("Authorization", {
  failure: Unauthorized,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

const jobId = HttpApiSchema.param("id", Schema.String.pipe(Schema.pattern(/^[0-9a-z-]{1,64}$/)))
const violationIndex = HttpApiSchema.param("n", Schema.NumberFromString.pipe(Schema.int(), Schema.between(0, 10_000)))
const scenarioName = HttpApiSchema.param("name", Schema.String.pipe(Schema.maxLength(200)))

/** The text of an event stream (each event's data is a `Progress` as JSON). */
const EventStream = Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/event-stream" }))

export class ScenariosGroup extends HttpApiGroup.make("scenarios")
  .add(HttpApiEndpoint.get("list", "/api/scenarios").addSuccess(Schema.Array(ScenarioSummary)))
  .add(HttpApiEndpoint.get("show")`/api/scenarios/${scenarioName}`.addSuccess(Schema.Unknown).addError(NotFound))
  .add(
    HttpApiEndpoint.post("validate", "/api/scenarios/validate")
      .setPayload(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
      .addSuccess(Schema.Unknown)
      .addError(BadRequest)
  )
  .annotate(OpenApi.Description, "The scenario catalogue, and validation of scenario files (errors with field paths)")
{}

export class JobsGroup extends HttpApiGroup.make("jobs")
  .add(
    HttpApiEndpoint.post("submit", "/api/jobs")
      .setPayload(JobSpec)
      .addSuccess(Job, { status: 201 })
      .addError(BadRequest)
      .middleware(Authorization)
  )
  .add(
    HttpApiEndpoint.get("list", "/api/jobs")
      .setUrlParams(Schema.Struct({
        state: Schema.optional(JobState),
        kind: Schema.optional(Schema.Literal("explore", "compare", "run", "replay")),
        offset: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(0, 1_000_000_000))),
        limit: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 500)))
      }))
      .addSuccess(JobPage)
  )
  .add(HttpApiEndpoint.get("get")`/api/jobs/${jobId}`.addSuccess(Job).addError(NotFound))
  .add(HttpApiEndpoint.post("cancel")`/api/jobs/${jobId}/cancel`.addSuccess(Job).addError(NotFound).middleware(Authorization))
  .add(HttpApiEndpoint.get("result")`/api/jobs/${jobId}/result`.addSuccess(JobResult).addError(NotFound).addError(HttpApiError.Conflict))
  .add(HttpApiEndpoint.get("events")`/api/jobs/${jobId}/events`.addSuccess(EventStream).addError(NotFound))
  .add(
    HttpApiEndpoint.get("trace")`/api/jobs/${jobId}/violations/${violationIndex}/trace`
      .addSuccess(Schema.Unknown.annotations({ description: "Chrome/Perfetto trace-event JSON of the violation's run (open it in ui.perfetto.dev)" }))
      .addError(NotFound)
  )
  .annotate(OpenApi.Description, "Campaigns: submit, list, follow (Server-Sent Events, resumable with Last-Event-ID), cancel, results")
{}

export class HealthGroup extends HttpApiGroup.make("health")
  .add(HttpApiEndpoint.get("health", "/health").addSuccess(Schema.Struct({ status: Schema.Literal("ok"), version: Schema.String })))
  .add(
    HttpApiEndpoint.get("metrics", "/metrics")
      .addSuccess(Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/plain; version=0.0.4" })))
      .annotate(OpenApi.Description, "Prometheus exposition: jobs by state, runs, runs/s, queued shards, violations, HTTP latency histograms")
  )
{}

export class KvmlabApi extends HttpApi.make("kvmlab")
  .add(ScenariosGroup)
  .add(JobsGroup)
  .add(HealthGroup)
  .annotate(OpenApi.Title, "kvmlab")
  .annotate(OpenApi.Description, "Campaigns of deterministic runs of the x86 KVM coordination models")
{}
