/**
 * What the server checks before the API sees a request, so every refusal is a JSON object that
 * names what was wrong (the API's own decoding names the field of a well-formed body):
 *
 * - a body over `MAX_BODY_BYTES` (by its Content-Length) is a 413 at once, before it is read;
 * - the bodies of `POST /api/jobs` and `POST /api/scenarios/validate` must be JSON objects: not
 *   empty, not another content type, parseable, an object (not an array), and nested at most
 *   `MAX_DEPTH` levels (a deeper one would exhaust the stack of whatever walks it);
 * - a path no route matches is a 404 naming it.
 */
import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import * as HttpApp from "@effect/platform/HttpApp"
import { Effect, Option } from "effect"

/** The largest request body read: a scenario file is about 1 kB, a job spec less. */
export const MAX_BODY_BYTES = 1 << 20

/** The deepest nesting of a request body: a scenario file has 3 levels. */
export const MAX_DEPTH = 32

/** The requests that carry a JSON body. */
const JSON_BODIES = new Set(["/api/jobs", "/api/scenarios/validate"])

const pathOf = (r: HttpServerRequest.HttpServerRequest): string => r.url.split("?")[0]!

const refuse = (status: number, field: string, message: string) =>
  HttpServerResponse.unsafeJson({ _tag: status === 413 ? "PayloadTooLarge" : status === 415 ? "UnsupportedMediaType" : "BadRequest", field, message }, { status })

/**
 * The path to the first place where `v` nests deeper than `limit`, or undefined (iterative: a deep
 * value cannot overflow the stack here).
 */
const tooDeep = (v: unknown, limit: number): ReadonlyArray<string> | undefined => {
  const stack: Array<readonly [unknown, ReadonlyArray<string>]> = [[v, []]]
  while (stack.length > 0) {
    const [x, path] = stack.pop()!
    if (path.length >= limit) return path
    if (typeof x === "object" && x !== null) for (const [k, child] of Object.entries(x)) stack.push([child, [...path, k]])
  }
  return undefined
}

const kindOf = (v: unknown): string => (Array.isArray(v) ? "an array" : v === null ? "null" : `a ${typeof v}`)

/** Checks a JSON body: a response refusing it, or undefined when the API may decode it. */
const checkBody = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function*() {
    const type = request.headers["content-type"] ?? ""
    if (!/^application\/json\s*(;|$)/i.test(type)) {
      return refuse(415, "content-type", `expected application/json, got ${type === "" ? "no content type" : JSON.stringify(type)}`)
    }
    const text = yield* Effect.either(request.text)
    if (text._tag === "Left") return refuse(400, "body", `unreadable: ${text.left.message}`)
    if (text.right.trim() === "") return refuse(400, "body", "empty; expected a JSON object")
    let parsed: unknown
    try {
      parsed = JSON.parse(text.right)
    } catch (e) {
      return refuse(400, "body", `not JSON: ${e instanceof Error ? e.message : String(e)}`)
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return refuse(400, "body", `expected a JSON object, got ${kindOf(parsed)}`)
    const deep = tooDeep(parsed, MAX_DEPTH)
    if (deep !== undefined) {
      return refuse(400, deep[0]!, `nested more than ${MAX_DEPTH} levels deep (at ${deep.slice(0, 6).join(".")}${deep.length > 6 ? "..." : ""}); a job or scenario file nests 3`)
    }
    return undefined
  })

/** The server middleware: the checks above, then the app. */
export const guard = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<never, R | HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const length = Number(request.headers["content-length"] ?? "0")
    if (Number.isFinite(length) && length > MAX_BODY_BYTES) {
      return refuse(413, "body", `is ${length} bytes; at most ${MAX_BODY_BYTES} (a job or a scenario file is a few kB)`)
    }
    const path = pathOf(request)
    if (request.method === "POST" && JSON_BODIES.has(path)) {
      const refused = yield* checkBody(request)
      if (refused !== undefined) return refused
    }
    // The router answers a path it has no route for (or a parameter longer than it takes) with a
    // 404 that says nothing; the response is replaced just before it is sent.
    yield* HttpApp.appendPreResponseHandler((r, response) =>
      Effect.succeed(
        response.status === 404 && !/json/.test(response.headers["content-type"] ?? response.body.contentType ?? "")
          ? HttpServerResponse.unsafeJson({ _tag: "NotFound", what: "route", message: `no route ${r.method} ${pathOf(r).length > 80 ? `${pathOf(r).slice(0, 80)}...` : pathOf(r)}` }, { status: 404 })
          : response
      )
    )
    // A body without a Content-Length (chunked) is cut at the same size as it is read.
    return yield* HttpServerRequest.withMaxBodySize(app, Option.some(MAX_BODY_BYTES))
  }) as HttpApp.Default<never, R | HttpServerRequest.HttpServerRequest>
