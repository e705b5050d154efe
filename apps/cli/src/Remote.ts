/**
 * The command line as a client of kvmlab-service: `explore` and `compare` with `--server URL`
 * submit the job through the client derived from `@kvmlab/api`, follow its progress over
 * Server-Sent Events and print its result as a local run prints it; `--detach` prints the job id
 * and returns. `kvmlab jobs [ID] --server URL` lists jobs or shows one. The token comes from
 * `--token` or `KVMLAB_TOKEN`. A service that cannot be reached, a refused token or a refused
 * request is one line naming the server and the problem (exit 2), like every other bad input.
 */
import { Sse } from "@effect/experimental"
import { FetchHttpClient, HttpApiClient, HttpClient, HttpClientRequest } from "@effect/platform"
import { Api, Schemas } from "@kvmlab/api"
import { Effect, Option, Schema, Stream } from "effect"
import { BadInput } from "./Exit.js"
import type * as Progress from "./Progress.js"

/** Where the service is, and the token of mutating requests. */
export interface Server {
  readonly url: string
  readonly token: string | undefined
}

/** The server of `--server URL` with `--token` or KVMLAB_TOKEN; the URL checked before anything is sent. */
export const serverOf = (url: string, token: Option.Option<string>): Effect.Effect<Server, BadInput> => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return Effect.fail(new BadInput({ field: "--server", message: `not a URL: ${JSON.stringify(url)}; expected one like http://127.0.0.1:8420` }))
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return Effect.fail(new BadInput({ field: "--server", message: `expected an http or https URL, got ${parsed.protocol}` }))
  }
  const t = Option.getOrElse(token, () => process.env.KVMLAB_TOKEN ?? "").trim()
  return Effect.succeed({ url: parsed.href.replace(/\/$/, ""), token: t === "" ? undefined : t })
}

/** A job's spec, of the kind named: the fields as the API's schema takes them (defaults filled in). */
export const spec = <K extends "explore" | "compare" | "run">(
  kind: K,
  fields: K extends "explore" ? ConstructorParameters<typeof Schemas.ExploreSpec>[0] : K extends "compare" ? ConstructorParameters<typeof Schemas.CompareSpec>[0]
    : ConstructorParameters<typeof Schemas.RunSpec>[0]
): Schemas.JobSpec =>
  kind === "explore"
    ? new Schemas.ExploreSpec(fields as ConstructorParameters<typeof Schemas.ExploreSpec>[0])
    : kind === "compare"
    ? new Schemas.CompareSpec(fields as ConstructorParameters<typeof Schemas.CompareSpec>[0])
    : new Schemas.RunSpec(fields as ConstructorParameters<typeof Schemas.RunSpec>[0])

/** A job, and a page of jobs, as JSON (`kvmlab jobs --json`). */
export const encodeJob = Schema.encodeSync(Schemas.Job)
export const encodePage = Schema.encodeSync(Schemas.JobPage)

/** A failure talking to the service, as the one line the user reads. */
const failure = (server: Server) => (e: unknown): BadInput => {
  const tagged = e as { readonly _tag?: string; readonly message?: string; readonly field?: string; readonly issues?: ReadonlyArray<{ readonly path: ReadonlyArray<unknown>; readonly message: string }> }
  switch (tagged._tag) {
    case "Unauthorized":
      return new BadInput({ field: "--token", message: `${server.url} refused it: ${tagged.message} (give --token, or set KVMLAB_TOKEN)` })
    case "BadRequest":
      return new BadInput({ field: `${server.url}: ${tagged.field}`, message: tagged.message ?? "refused" })
    case "HttpApiDecodeError": {
      const first = tagged.issues?.[0]
      return new BadInput({ field: `${server.url}: ${first?.path.join(".") ?? "request"}`, message: first?.message ?? tagged.message ?? "refused" })
    }
    case "NotFound":
      return new BadInput({ field: "job", message: `${server.url}: ${tagged.message}` })
    case "RequestError":
      return new BadInput({ field: "--server", message: `cannot reach ${server.url}: ${(e as { cause?: { message?: string } }).cause?.message ?? tagged.message ?? "no answer"} (is kvmlab-service running?)` })
    default:
      return new BadInput({ field: "--server", message: `${server.url}: ${tagged.message ?? String(e)}` })
  }
}

const client = (server: Server) =>
  HttpApiClient.make(Api.KvmlabApi, {
    baseUrl: server.url,
    transformClient: server.token === undefined ? undefined : HttpClient.mapRequest(HttpClientRequest.bearerToken(server.token))
  })

/** Runs `f` with the typed client of the service; every failure is one `BadInput` line. */
const withClient = <A, E>(server: Server, f: (api: Effect.Effect.Success<ReturnType<typeof client>>) => Effect.Effect<A, E, HttpClient.HttpClient>) =>
  Effect.flatMap(client(server), f).pipe(
    Effect.mapError(failure(server)),
    Effect.provide(FetchHttpClient.layer)
  )

/** Submits a job. */
export const submit = (server: Server, spec: Schemas.JobSpec) =>
  withClient(server, (api) => {
    switch (spec._tag) {
      case "explore":
        return api.jobs.submit({ payload: spec })
      case "compare":
        return api.jobs.submit({ payload: spec })
      case "run":
        return api.jobs.submit({ payload: spec })
      case "replay":
        return api.jobs.submit({ payload: spec })
    }
  })

/** A job. */
export const job = (server: Server, id: string) => withClient(server, (api) => api.jobs.get({ path: { id } }))

/** A page of jobs. */
export const jobs = (server: Server) => withClient(server, (api) => api.jobs.list({ urlParams: {} }))

/** A job's result. */
export const result = (server: Server, id: string) => withClient(server, (api) => api.jobs.result({ path: { id } }))

const ProgressJson = Schema.parseJson(Schema.Struct({ runsDone: Schema.Number, runsTotal: Schema.Number, state: Schema.String }))

/**
 * Follows a job's progress events until it ends, ticking `progress` in runs; gives its final
 * state. A dropped connection is taken up again after the last event seen (`Last-Event-ID`).
 */
export const follow = (server: Server, id: string, progress: Progress.Progress): Effect.Effect<string, BadInput> =>
  Effect.gen(function*() {
    const http = yield* HttpClient.HttpClient
    let last = ""
    let state = "queued"
    for (let attempt = 0; attempt < 5 && state !== "done" && state !== "failed" && state !== "cancelled"; attempt++) {
      const request = HttpClientRequest.get(`${server.url}/api/jobs/${id}/events`).pipe(last === "" ? (r) => r : HttpClientRequest.setHeader("last-event-id", last))
      const response = yield* http.execute(request)
      yield* response.stream.pipe(
        Stream.decodeText(),
        Stream.pipeThroughChannel(Sse.makeChannel()),
        Stream.runForEach((event) =>
          Effect.suspend(() => {
            last = event.id ?? last
            const p = Schema.decodeUnknownSync(ProgressJson)(event.data)
            state = p.state
            return progress.tick(p.runsDone)
          })
        )
      )
    }
    return state
  }).pipe(Effect.mapError(failure(server)), Effect.provide(FetchHttpClient.layer))
