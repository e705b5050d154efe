/**
 * Bad input, table-driven, against ONE in-process service: wrong types, unknown fields, huge and
 * negative values, missing or unknown `_tag`, garbage JSON, wrong content type, an oversized
 * body, bad tokens, unknown bugs / scenarios / settings, bad ids and indices in paths, bad query
 * parameters, bad comparison specs. Every case must get the 4xx it expects, with a JSON body that
 * names the field (or what is wrong) and carries no stack trace. Around the table: a valid
 * exploration is submitted and finished before the bad requests, and after them the service still
 * answers, that job is unchanged (state, runs, result), and no bad request created a job.
 */
import { HttpClient, HttpClientRequest, HttpServer } from "@effect/platform"
import { NodeContext, NodeHttpServer } from "@effect/platform-node"
import { expect, layer } from "@effect/vitest"
import { Runner, Scenario } from "@kvmlab/scenarios"
import { Duration, Effect, Layer } from "effect"
import { mkdtempSync } from "node:fs"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { MAX_BODY_BYTES } from "../src/Guard.js"
import * as Service from "../src/Service.js"

const TOKEN = "badinput-test-token"

const server = (data: string) =>
  Service.layer({ data, workers: 2, token: TOKEN, version: "test" }).pipe(
    Layer.provideMerge(NodeHttpServer.layerTest),
    Layer.provide(NodeContext.layer)
  )

/** The valid job every path that needs a real job id refers to (set by the first test). */
let jobId = "no-job-yet"

/** One malformed request and what the service must answer. */
interface Case {
  readonly name: string
  readonly method: "GET" | "POST"
  /** The path, or a function of the valid job's id. */
  readonly path: string | ((job: string) => string)
  /** The request's headers; when absent, the bearer token and `content-type: application/json`. */
  readonly headers?: Readonly<Record<string, string>>
  readonly body?: string | Uint8Array
  /** The expected status (any of them, when several are acceptable). */
  readonly status: number | ReadonlyArray<number>
  /** What the response body must match: the field named, or what is wrong. */
  readonly names: RegExp
  /**
   * Send it over a plain TCP socket and read whatever comes back, rather than with the HTTP
   * client (which reports a reset as a transport error even when an answer arrived first).
   */
  readonly raw?: boolean
}

const AUTH = { authorization: `Bearer ${TOKEN}` } as const
const JSON_TYPE = { "content-type": "application/json" } as const
const DEFAULT_HEADERS = { ...AUTH, ...JSON_TYPE }

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
/** The body names `f`: a `BadRequest`'s field, or a decode issue's path ending in it. */
const field = (f: string) => new RegExp(`"field":"${escape(f)}"|"path":\\[(?:[^\\]]*,)?"${escape(f)}"\\]`)

const json = (x: unknown) => JSON.stringify(x)
/** An exploration spec with the given fields over a valid base. */
const explore = (fields: Record<string, unknown>) => json({ _tag: "explore", scenario: "request-race", runs: 10, ...fields })
/** A comparison spec with the given fields over a valid base. */
const compare = (fields: Record<string, unknown>) => json({ _tag: "compare", scenario: "request-race", vary: { flush: ["native", "pv"] }, seeds: 2, ...fields })

/** A built-in scenario as a file (a JSON object), with some fields changed. */
const scenarioFile = (changes: Record<string, unknown>) => ({ ...(Scenario.encode(Runner.builtin("request-race")!) as Record<string, unknown>), ...changes })

/** A body over the limit: a valid spec whose variant carries one long value. */
const oversized = explore({ variant: { flush: "x".repeat(MAX_BODY_BYTES + 64 * 1024) } })

/** A scenario object nested 20,000 levels deep (about 40 kB: well under the body limit). */
const deep = `{"_tag":"explore","scenario":{"workload":${"[".repeat(20_000)}${"]".repeat(20_000)}}}`

const cases: ReadonlyArray<Case> = [
  // Wrong types.
  { name: "runs as a string", method: "POST", path: "/api/jobs", body: explore({ runs: "500" }), status: 400, names: field("runs") },
  { name: "seed as a float", method: "POST", path: "/api/jobs", body: explore({ seed: 1.5 }), status: 400, names: field("seed") },
  { name: "bugs not an array", method: "POST", path: "/api/jobs", body: explore({ bugs: "A.noEntryBarrier" }), status: 400, names: field("bugs") },
  { name: "scenario as a number", method: "POST", path: "/api/jobs", body: explore({ scenario: 42 }), status: 400, names: field("scenario") },
  { name: "all as \"yes\"", method: "POST", path: "/api/jobs", body: explore({ all: "yes" }), status: 400, names: field("all") },
  { name: "strategy not one of the strategies", method: "POST", path: "/api/jobs", body: explore({ strategy: "dfs" }), status: 400, names: field("strategy") },
  { name: "variant as an array", method: "POST", path: "/api/jobs", body: explore({ variant: ["flush=pv"] }), status: 400, names: field("variant") },
  // Unknown fields.
  { name: "unknown top-level field", method: "POST", path: "/api/jobs", body: explore({ priority: 1 }), status: 400, names: field("priority") },
  { name: "misspelt field (stratgey)", method: "POST", path: "/api/jobs", body: explore({ stratgey: "pct" }), status: 400, names: field("stratgey") },
  { name: "comparison field on an exploration (vary)", method: "POST", path: "/api/jobs", body: explore({ vary: { flush: ["pv"] } }), status: 400, names: field("vary") },
  // Huge and negative values.
  { name: "runs 1e12", method: "POST", path: "/api/jobs", body: explore({ runs: 1e12 }), status: 400, names: field("runs") },
  { name: "runs 1e400 (Infinity once parsed)", method: "POST", path: "/api/jobs", body: `{"_tag":"explore","scenario":"request-race","runs":1e400}`, status: 400, names: field("runs") },
  { name: "seed 2^32", method: "POST", path: "/api/jobs", body: explore({ seed: 2 ** 32 }), status: 400, names: field("seed") },
  { name: "33 bug names", method: "POST", path: "/api/jobs", body: explore({ bugs: Array.from({ length: 33 }, (_, i) => `A.bug${i}`) }), status: 400, names: field("bugs") },
  { name: "a 201-character scenario name", method: "POST", path: "/api/jobs", body: explore({ scenario: "r".repeat(201) }), status: 400, names: field("scenario") },
  { name: "depth 65", method: "POST", path: "/api/jobs", body: explore({ strategy: "pct", depth: 65 }), status: 400, names: field("depth") },
  { name: "a 101-character variant value", method: "POST", path: "/api/jobs", body: explore({ variant: { flush: "p".repeat(101) } }), status: 400, names: field("variant") },
  { name: "runs negative", method: "POST", path: "/api/jobs", body: explore({ runs: -5 }), status: 400, names: field("runs") },
  { name: "runs 0", method: "POST", path: "/api/jobs", body: explore({ runs: 0 }), status: 400, names: field("runs") },
  { name: "seed negative", method: "POST", path: "/api/jobs", body: explore({ seed: -1 }), status: 400, names: field("seed") },
  // The tag.
  { name: "missing _tag", method: "POST", path: "/api/jobs", body: json({ scenario: "request-race", runs: 10 }), status: 400, names: field("_tag") },
  { name: "unknown _tag", method: "POST", path: "/api/jobs", body: json({ _tag: "fuzz", scenario: "request-race", runs: 10 }), status: 400, names: field("_tag") },
  // Not a spec at all.
  { name: "empty body", method: "POST", path: "/api/jobs", body: "", status: 400, names: /empty|JSON|body/i },
  { name: "garbage JSON", method: "POST", path: "/api/jobs", body: "{not json", status: 400, names: /JSON/i },
  { name: "truncated JSON", method: "POST", path: "/api/jobs", body: explore({}).slice(0, -5), status: 400, names: /JSON/i },
  { name: "a JSON array", method: "POST", path: "/api/jobs", body: json([{ _tag: "explore", scenario: "request-race" }]), status: 400, names: /object|array/i },
  { name: "JSON null", method: "POST", path: "/api/jobs", body: "null", status: 400, names: /object|null/i },
  {
    name: "wrong content type (text/plain)",
    method: "POST",
    path: "/api/jobs",
    headers: { ...AUTH, "content-type": "text/plain" },
    body: explore({}),
    status: [400, 415],
    names: /content-type|application\/json/i
  },
  {
    name: "oversized body (> MAX_BODY_BYTES)",
    method: "POST",
    path: "/api/jobs",
    body: oversized,
    status: [413, 400],
    names: /too large|size|limit|bytes/i,
    raw: true
  },
  { name: "a scenario object nested 20,000 deep", method: "POST", path: "/api/jobs", body: deep, status: 400, names: field("scenario") },
  { name: "runs as an array nested 20,000 deep", method: "POST", path: "/api/jobs", body: `{"_tag":"explore","scenario":"request-race","runs":${"[".repeat(20_000)}${"]".repeat(20_000)}}`, status: 400, names: field("runs") },
  // Bad tokens: mutations without the right bearer token are 401s.
  { name: "no Authorization header", method: "POST", path: "/api/jobs", headers: JSON_TYPE, body: explore({}), status: 401, names: /bearer token/i },
  { name: "wrong bearer token", method: "POST", path: "/api/jobs", headers: { ...JSON_TYPE, authorization: "Bearer not-the-token" }, body: explore({}), status: 401, names: /wrong bearer token/i },
  { name: "Authorization: Basic", method: "POST", path: "/api/jobs", headers: { ...JSON_TYPE, authorization: `Basic ${Buffer.from(`user:${TOKEN}`).toString("base64")}` }, body: explore({}), status: 401, names: /bearer/i },
  { name: "empty bearer token", method: "POST", path: "/api/jobs", headers: { ...JSON_TYPE, authorization: "Bearer " }, body: explore({}), status: 401, names: /bearer token/i },
  { name: "the token without \"Bearer \"", method: "POST", path: "/api/jobs", headers: { ...JSON_TYPE, authorization: TOKEN }, body: explore({}), status: 401, names: /bearer/i },
  { name: "cancel without a token", method: "POST", path: (id) => `/api/jobs/${id}/cancel`, headers: {}, status: 401, names: /bearer token/i },
  { name: "cancel with a wrong token", method: "POST", path: (id) => `/api/jobs/${id}/cancel`, headers: { authorization: "Bearer nope" }, status: 401, names: /wrong bearer token/i },
  // What the Schema cannot see: the service resolves names and settings.
  { name: "unknown bug switch", method: "POST", path: "/api/jobs", body: explore({ bugs: ["A.noSuchBug"] }), status: 400, names: field("bugs") },
  { name: "unknown scenario name", method: "POST", path: "/api/jobs", body: explore({ scenario: "no-such-scenario" }), status: 400, names: field("scenario") },
  { name: "scenario object with vms \"two\"", method: "POST", path: "/api/jobs", body: explore({ scenario: scenarioFile({ vms: "two" }) }), status: 400, names: field("scenario.vms") },
  { name: "scenario object with an unknown field", method: "POST", path: "/api/jobs", body: explore({ scenario: scenarioFile({ colour: "red" }) }), status: 400, names: field("scenario.colour") },
  { name: "variant setting that does not exist", method: "POST", path: "/api/jobs", body: explore({ variant: { noSuchSetting: "on" } }), status: 400, names: field("variant.noSuchSetting") },
  { name: "variant setting with a value it does not take", method: "POST", path: "/api/jobs", body: explore({ variant: { flush: "sideways" } }), status: 400, names: field("variant.flush") },
  { name: "depth without pct", method: "POST", path: "/api/jobs", body: explore({ strategy: "random", depth: 3 }), status: 400, names: field("depth") },
  // Bad ids and indices in paths.
  { name: "job id ..%2f..", method: "GET", path: "/api/jobs/..%2f..", status: [400, 404], names: /"id"|job/ },
  { name: "a 200-character job id", method: "GET", path: `/api/jobs/${"a".repeat(200)}`, status: [400, 404], names: /"id"|job/ },
  { name: "an uppercase job id", method: "GET", path: "/api/jobs/ABCDEF", status: [400, 404], names: /"id"|job/ },
  { name: "result of an uppercase job id", method: "GET", path: "/api/jobs/ABCDEF/result", status: [400, 404], names: /"id"|job/ },
  { name: "cancel an uppercase job id", method: "POST", path: "/api/jobs/ABCDEF/cancel", headers: AUTH, status: [400, 404], names: /"id"|job/ },
  { name: "violation -1", method: "GET", path: (id) => `/api/jobs/${id}/violations/-1/trace`, status: 400, names: field("n") },
  { name: "violation abc", method: "GET", path: (id) => `/api/jobs/${id}/violations/abc/trace`, status: 400, names: field("n") },
  { name: "violation 1.5", method: "GET", path: (id) => `/api/jobs/${id}/violations/1.5/trace`, status: 400, names: field("n") },
  { name: "violation 99999 (over the bound)", method: "GET", path: (id) => `/api/jobs/${id}/violations/99999/trace`, status: 400, names: field("n") },
  { name: "violation 7 of a job without it", method: "GET", path: (id) => `/api/jobs/${id}/violations/7/trace`, status: 404, names: /violation/ },
  { name: "a 201-character scenario name in the path", method: "GET", path: `/api/scenarios/${"s".repeat(201)}`, status: [400, 404], names: /"name"|scenario/ },
  { name: "an unknown route", method: "GET", path: "/api/nosuch", status: 404, names: /nosuch|route|not found/i },
  // Bad query parameters.
  { name: "?limit=0", method: "GET", path: "/api/jobs?limit=0", status: 400, names: field("limit") },
  { name: "?limit=abc", method: "GET", path: "/api/jobs?limit=abc", status: 400, names: field("limit") },
  { name: "?limit=501", method: "GET", path: "/api/jobs?limit=501", status: 400, names: field("limit") },
  { name: "?offset=-1", method: "GET", path: "/api/jobs?offset=-1", status: 400, names: field("offset") },
  { name: "?state=nope", method: "GET", path: "/api/jobs?state=nope", status: 400, names: field("state") },
  // Scenario validation (no token needed; nothing stored).
  { name: "validate: a scenario with vms 0", method: "POST", path: "/api/scenarios/validate", headers: JSON_TYPE, body: json(scenarioFile({ vms: 0 })), status: 400, names: field("vms") },
  { name: "validate: a scenario nested 20,000 deep", method: "POST", path: "/api/scenarios/validate", headers: JSON_TYPE, body: `{"workload":${"[".repeat(20_000)}${"]".repeat(20_000)}}`, status: 400, names: /"field":"(scenario|workload)/ },
  // Comparisons.
  { name: "compare: empty vary", method: "POST", path: "/api/jobs", body: compare({ vary: {} }), status: 400, names: field("vary") },
  { name: "compare: vary with 65 values", method: "POST", path: "/api/jobs", body: compare({ vary: { flush: Array.from({ length: 65 }, (_, i) => `v${i}`) } }), status: 400, names: field("flush") },
  { name: "compare: vary with no values", method: "POST", path: "/api/jobs", body: compare({ vary: { flush: [] } }), status: 400, names: field("flush") },
  { name: "compare: unknown vary key", method: "POST", path: "/api/jobs", body: compare({ vary: { noSuchKnob: ["1", "2"] } }), status: 400, names: field("vary.noSuchKnob") },
  { name: "compare: vary value a setting does not take", method: "POST", path: "/api/jobs", body: compare({ vary: { flush: ["native", "sideways"] } }), status: 400, names: field("vary.flush") },
  { name: "compare: seeds 0", method: "POST", path: "/api/jobs", body: compare({ seeds: 0 }), status: 400, names: field("seeds") },
  { name: "compare: seeds 1e7", method: "POST", path: "/api/jobs", body: compare({ seeds: 1e7 }), status: 400, names: field("seeds") },
  { name: "compare: seed 2^32", method: "POST", path: "/api/jobs", body: compare({ seed: 2 ** 32 }), status: 400, names: field("seed") },
  { name: "compare: exploration field (runs)", method: "POST", path: "/api/jobs", body: compare({ runs: 10 }), status: 400, names: field("runs") },
  { name: "compare: missing vary", method: "POST", path: "/api/jobs", body: json({ _tag: "compare", scenario: "request-race" }), status: 400, names: field("vary") }
]

interface Answer {
  readonly status: number
  readonly contentType: string
  readonly text: string
}

/** Sends a request as given (method, path, headers, body bytes) and reads the whole answer. */
const send = (method: "GET" | "POST", path: string, headers: Readonly<Record<string, string>>, body?: string | Uint8Array) =>
  Effect.gen(function*() {
    const http = yield* HttpClient.HttpClient
    const { "content-type": contentType, ...rest } = headers
    let request = HttpClientRequest.make(method)(path).pipe(HttpClientRequest.setHeaders(rest))
    if (body !== undefined) {
      const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body
      request = HttpClientRequest.bodyUint8Array(request, bytes, contentType ?? "application/octet-stream")
    }
    const res = yield* http.execute(request)
    const text = yield* res.text
    return { status: res.status, contentType: res.headers["content-type"] ?? "", text } satisfies Answer
  }).pipe(Effect.timeout(Duration.seconds(30)))

/** The body of a raw HTTP/1.1 answer: by content-length, or chunked, or to the end. */
const rawBody = (headers: Record<string, string>, rest: Buffer): string => {
  if ((headers["transfer-encoding"] ?? "").includes("chunked")) {
    const parts: Array<Buffer> = []
    let at = 0
    for (;;) {
      const eol = rest.indexOf("\r\n", at)
      if (eol < 0) break
      const size = parseInt(rest.subarray(at, eol).toString("latin1"), 16)
      if (!(size > 0)) break
      parts.push(rest.subarray(eol + 2, eol + 2 + size))
      at = eol + 2 + size + 2
    }
    return Buffer.concat(parts).toString("utf8")
  }
  const length = Number(headers["content-length"] ?? NaN)
  return (Number.isFinite(length) ? rest.subarray(0, length) : rest).toString("utf8")
}

/**
 * Sends a request over a plain TCP socket (`connection: close`), writes the whole body unless the
 * server stops reading, and parses whatever answer arrives before the connection ends.
 */
const sendRaw = (method: "GET" | "POST", path: string, headers: Readonly<Record<string, string>>, body?: string | Uint8Array) =>
  Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const address = server.address
    if (address._tag !== "TcpAddress") return yield* Effect.die(new Error("the test server is not on TCP"))
    const bytes = body === undefined ? new Uint8Array(0) : typeof body === "string" ? new TextEncoder().encode(body) : body
    const head = [
      `${method} ${path} HTTP/1.1`,
      `host: 127.0.0.1:${address.port}`,
      "connection: close",
      `content-length: ${bytes.length}`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)
    ].join("\r\n") + "\r\n\r\n"
    const received = yield* Effect.async<{ readonly data: Buffer; readonly error: string | undefined }>((resume) => {
      const chunks: Array<Buffer> = []
      let error: string | undefined
      const socket = connect({ host: address.hostname === "0.0.0.0" ? "127.0.0.1" : address.hostname, port: address.port }, () => {
        socket.write(head)
        socket.end(bytes)
      })
      socket.on("data", (d: Buffer) => chunks.push(d))
      socket.on("error", (e) => (error = String(e)))
      socket.on("close", () => resume(Effect.succeed({ data: Buffer.concat(chunks), error })))
      return Effect.sync(() => socket.destroy())
    })
    const split = received.data.indexOf("\r\n\r\n")
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(received.data.toString("latin1"))
    if (split < 0 || status === null) {
      return { status: 0, contentType: "", text: `no answer (${received.data.length} bytes before the connection ended${received.error === undefined ? "" : `; ${received.error}`})` } satisfies Answer
    }
    const headerLines = received.data.subarray(0, split).toString("latin1").split("\r\n").slice(1)
    const responseHeaders = Object.fromEntries(headerLines.map((l) => [l.slice(0, l.indexOf(":")).trim().toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]))
    return { status: Number(status[1]), contentType: responseHeaders["content-type"] ?? "", text: rawBody(responseHeaders, received.data.subarray(split + 4)) } satisfies Answer
  }).pipe(Effect.timeout(Duration.seconds(30)))

/** GETs a path and parses its JSON body; fails the test on anything but 200. */
const getJson = (path: string) =>
  Effect.gen(function*() {
    const a = yield* send("GET", path, {})
    expect(a.status, `GET ${path}: ${a.text.slice(0, 500)}`).toBe(200)
    return JSON.parse(a.text) as Record<string, unknown>
  })

/** Sends a case's request, by the HTTP client or (`raw`) over a socket. */
const exchange = (c: Case, path: string): Effect.Effect<Answer, unknown, HttpClient.HttpClient | HttpServer.HttpServer> =>
  c.raw === true ? sendRaw(c.method, path, c.headers ?? DEFAULT_HEADERS, c.body) : send(c.method, path, c.headers ?? DEFAULT_HEADERS, c.body)

/** What is wrong with an answer to a case (empty: nothing). */
const problems = (c: Case, a: Answer): Array<string> => {
  const out: Array<string> = []
  const allowed = typeof c.status === "number" ? [c.status] : c.status
  if (!allowed.includes(a.status)) out.push(`status ${a.status}, expected ${allowed.join(" or ")}`)
  if (a.status < 400 || a.status > 499) out.push(`status ${a.status} is not a 4xx`)
  let parsed: unknown = undefined
  try {
    parsed = JSON.parse(a.text)
  } catch {
    out.push(`body is not JSON (content-type ${JSON.stringify(a.contentType)})`)
  }
  if (parsed !== undefined && (typeof parsed !== "object" || parsed === null)) out.push("body is JSON but not an object")
  if (!c.names.test(a.text)) out.push(`body does not match ${c.names}`)
  // A stack trace, raw or inside a JSON string.
  if (/(\n|\\n)\s+at /.test(a.text)) out.push("body carries a stack trace")
  return out
}

layer(server(mkdtempSync(join(tmpdir(), "kvmlab-service-badinput-"))), { excludeTestServices: true, timeout: Duration.seconds(60) })(
  "bad input",
  (it) => {
    /** The valid job as it was before the bad requests: the job, its result, the job count. */
    let before: { readonly job: Record<string, unknown>; readonly result: unknown; readonly total: number } | undefined

    it.effect("before: a valid exploration is submitted and finishes", () =>
      Effect.gen(function*() {
        const submitted = yield* send("POST", "/api/jobs", DEFAULT_HEADERS, json({ _tag: "explore", scenario: "request-race", runs: 500 }))
        expect(submitted.status, submitted.text).toBe(201)
        jobId = (JSON.parse(submitted.text) as { id: string }).id
        let job = yield* getJson(`/api/jobs/${jobId}`)
        const deadline = Date.now() + 60_000
        while (job.state !== "done") {
          expect(job.state, JSON.stringify(job)).toMatch(/queued|running/)
          expect(Date.now(), `job ${jobId} did not finish in 60 s: ${JSON.stringify(job)}`).toBeLessThan(deadline)
          yield* Effect.sleep("100 millis")
          job = yield* getJson(`/api/jobs/${jobId}`)
        }
        expect(job).toMatchObject({ state: "done", runsDone: 500 })
        const result = yield* getJson(`/api/jobs/${jobId}/result`)
        const page = yield* getJson("/api/jobs")
        expect(page.total).toBe(1)
        before = { job, result, total: page.total as number }
      }), 90_000)

    it.effect(`the table has at least 30 cases (${cases.length})`, () => Effect.sync(() => expect(cases.length).toBeGreaterThanOrEqual(30)))

    for (const c of cases) {
      it.effect(`${c.method} ${typeof c.path === "string" ? c.path.slice(0, 60) : c.path(":id")}: ${c.name}`, () =>
        Effect.gen(function*() {
          const path = typeof c.path === "string" ? c.path : c.path(jobId)
          const answer = yield* exchange(c, path).pipe(
            Effect.catchAll((e) => Effect.succeed({ status: 0, contentType: "", text: `no answer: ${String(e)}${e instanceof Error && e.cause !== undefined ? ` (${String(e.cause)})` : ""}` } satisfies Answer))
          )
          const request = `${c.method} ${path.slice(0, 120)}${c.body === undefined ? "" : ` body ${typeof c.body === "string" ? JSON.stringify(c.body.slice(0, 200)) : `${c.body.length} bytes`}${(c.body.length > 200 ? " ..." : "")}`}`
          expect(problems(c, answer), `case "${c.name}": ${request}\n  -> ${answer.status} ${answer.contentType} ${answer.text.slice(0, 1500)}`).toEqual([])
        }))
    }

    it.effect("after: the service still serves, the valid job is unchanged, no bad request made a job", () =>
      Effect.gen(function*() {
        expect(before, "the valid job was not set up").toBeDefined()
        const health = yield* getJson("/health")
        expect(health.status).toBe("ok")
        const job = yield* getJson(`/api/jobs/${jobId}`)
        expect(job).toMatchObject({ state: before!.job.state, runsDone: before!.job.runsDone, shardsDone: before!.job.shardsDone, violations: before!.job.violations })
        expect(job).toEqual(before!.job)
        expect(yield* getJson(`/api/jobs/${jobId}/result`)).toEqual(before!.result)
        const page = yield* getJson("/api/jobs?limit=500")
        expect(page.total, `jobs now: ${JSON.stringify((page.jobs as Array<{ id: string; spec: unknown }>).map((j) => [j.id, j.spec]))}`).toBe(before!.total)
        // And it still takes good input.
        const scenarios = yield* send("GET", "/api/scenarios", {})
        expect(scenarios.status).toBe(200)
      }), 60_000)
  }
)
