/** The API as declared: its OpenAPI document lists every endpoint, and mutations need the bearer token. */
import { OpenApi } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import { Api, Schemas } from "../src/index.js"

describe("the kvmlab API", () => {
  it("lists every endpoint in its OpenAPI document; submit and cancel need the bearer token, reads do not", () => {
    const doc = OpenApi.fromApi(Api.KvmlabApi)
    expect(Object.keys(doc.paths).sort()).toEqual([
      "/api/jobs", "/api/jobs/{id}", "/api/jobs/{id}/cancel", "/api/jobs/{id}/events", "/api/jobs/{id}/result", "/api/jobs/{id}/violations/{n}/trace",
      "/api/scenarios", "/api/scenarios/validate", "/api/scenarios/{name}", "/health", "/metrics"
    ])
    expect(doc.paths["/api/jobs"]!.post!.security).toEqual([{ bearer: [] }])
    expect(doc.paths["/api/jobs/{id}/cancel"]!.post!.security).toEqual([{ bearer: [] }])
    expect(doc.paths["/api/jobs"]!.get!.security).toEqual([])
  })

  it("a job spec takes the explore options with their defaults, and refuses unknown fields and values out of range", () => {
    const decode = Schema.decodeUnknownEither(Schemas.JobSpec)
    const compare = decode({ _tag: "compare", scenario: "tlb-shootdown", vary: { vms: ["1", "2"] } })
    expect(Either.getOrThrow(compare)).toMatchObject({ _tag: "compare", seeds: 3, seed: 1, vary: { vms: ["1", "2"] } })
    expect(Either.isLeft(decode({ _tag: "compare", scenario: "tlb-shootdown", vary: { vms: [] } }))).toBe(true)
    const ok = decode({ _tag: "explore", scenario: "request-race" })
    expect(Either.getOrThrow(ok)).toMatchObject({ scenario: "request-race", seed: 1, runs: 2000, strategy: "random", all: false, bugs: [] })
    expect(Either.isLeft(decode({ _tag: "explore", scenario: "request-race", rnus: 5 }))).toBe(true)
    expect(Either.isLeft(decode({ _tag: "explore", scenario: "request-race", runs: 0 }))).toBe(true)
    expect(Either.isLeft(decode({ _tag: "explore", scenario: "request-race", seed: 2 ** 32 }))).toBe(true)
    expect(Either.isLeft(decode({ _tag: "explore", scenario: "" }))).toBe(true)
    expect(Either.isLeft(decode({ _tag: "explore", scenario: "request-race", bugs: Array.from({ length: 33 }, () => "x") }))).toBe(true)
  })
})
