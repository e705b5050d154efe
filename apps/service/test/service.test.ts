/**
 * The service end to end over HTTP, in-process: a test server on a free port, the typed client
 * derived from `@kvmlab/api`, a SQLite file in a temporary folder, the cluster's single runner
 * and real worker threads. An exploration submitted to the service gives the same violations
 * and replay tokens as `Campaign.explore` with the same seed and runs; its progress events
 * arrive in order and end at 100%; bad requests are 400s naming the field; mutations without
 * the token are 401s.
 */
import { HttpApiClient, HttpClient, HttpClientRequest } from "@effect/platform"
import { NodeContext, NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Api, Schemas } from "@kvmlab/api"
import { Runner, Scenario } from "@kvmlab/scenarios"
import { Effect, Either, Layer, Stream } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Service from "../src/Service.js"
import { localCompare, localExplore } from "./fixtures/local.js"


/** The result of an exploration job (the API's result is an exploration's or a comparison's). */
const explored = (r: Schemas.JobResult): Schemas.ExploreResult => {
  if (r._tag !== "explore") throw new Error(`expected an exploration's result, got ${r._tag}`)
  return r
}

const TOKEN = "test-token"

const server = (data: string) =>
  Service.layer({ data, workers: 2, token: TOKEN, version: "test" }).pipe(
    Layer.provideMerge(NodeHttpServer.layerTest),
    Layer.provide(NodeContext.layer)
  )

/** The typed client, with or without the token. */
const client = (token: string | undefined) =>
  HttpApiClient.make(Api.KvmlabApi, {
    transformClient: token === undefined ? undefined : HttpClient.mapRequest(HttpClientRequest.bearerToken(token))
  })

/** The progress events of a job, as the SSE stream sends them (id and data). */
const events = (id: string) =>
  Effect.gen(function*() {
    const http = yield* HttpClient.HttpClient
    const res = yield* http.get(`/api/jobs/${id}/events`)
    const text = yield* res.stream.pipe(Stream.decodeText(), Stream.mkString)
    return text.split("\n\n").filter((b) => b.trim() !== "").map((block) => {
      const id = /^id: (.*)$/m.exec(block)?.[1]
      const data = /^data: (.*)$/m.exec(block)?.[1]
      return { id: Number(id), progress: JSON.parse(data ?? "null") as { percent: number; runsDone: number; state: string; violations: number } }
    })
  })

describe("the service", () => {
  it.scopedLive("an exploration over HTTP finds what kvmlab explore finds, with progress to 100%", () =>
    Effect.gen(function*() {
      const api = yield* client(TOKEN)
      const job = yield* api.jobs.submit({ payload: new Schemas.ExploreSpec({ scenario: "request-race", bugs: ["A.noEntryBarrier"], seed: 7, runs: 3000, all: true }) })
      expect(job.state).toMatch(/queued|running/)
      expect(job.shardsTotal).toBeGreaterThan(1)
      const evs = yield* events(job.id)
      
      // Ids grow with the job (4 x shards stored + 0 queued, 1 running, 3 ended).
      expect(evs.every((e, i) => i === 0 || e.id > evs[i - 1]!.id)).toBe(true)
      expect(evs.at(-1)!.id).toBe(4 * job.shardsTotal + 3)
      const runs = evs.map((e) => e.progress.runsDone)
      expect([...runs].sort((a, b) => a - b)).toEqual(runs)
      expect(evs.at(-1)!.progress).toMatchObject({ percent: 100, state: "done", runsDone: 3000 })
      const result = explored(yield* api.jobs.result({ path: { id: job.id } }))

      const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("request-race")!, { bugs: ["A.noEntryBarrier"] }))
      const local = yield* localExplore(s, { seed: 7, runs: 3000, strategy: { _tag: "random" }, all: true })
      expect(result.runs).toBe(local.runs)
      expect(result.distinctTraces).toBe(local.distinctTraces)
      expect(result.violations.map((v) => [v.invariant, v.run, v.count, v.replay])).toEqual(local.violations.map((v) => [v.invariant, v.run, v.count, v.replay]))
      expect(result.violations.length).toBeGreaterThan(0)
      const again = yield* api.jobs.get({ path: { id: job.id } })
      expect(again).toMatchObject({ state: "done", runsDone: 3000, shardsDone: job.shardsTotal, violations: local.violations.length })
      const trace = (yield* api.jobs.trace({ path: { id: job.id, n: 0 } })) as { traceEvents: Array<{ name: string }> }
      expect(trace.traceEvents.some((e) => e.name === `VIOLATION ${result.violations[0]!.invariant}`)).toBe(true)
      expect(yield* Effect.flip(api.jobs.trace({ path: { id: job.id, n: 99 } }))).toMatchObject({ _tag: "NotFound", what: "violation" })
      // Prometheus exposition: what the store says, and this process's request latencies.
      const http = yield* HttpClient.HttpClient
      const metrics = yield* Effect.flatMap(http.get("/metrics"), (r) => r.text)
      expect(metrics).toMatch(/^kvmlab_jobs\{state="done"\} 1$/m)
      expect(metrics).toMatch(/^kvmlab_runs_total 3000$/m)
      expect(metrics).toMatch(new RegExp(`^kvmlab_violations_total ${local.violations.reduce((n, v) => n + v.count, 0)}$`, "m"))
      expect(metrics).toMatch(/^kvmlab_shards_queued 0$/m)
      expect(metrics).toMatch(/^kvmlab_http_request_duration_seconds_count\{method="POST",route="\/api\/jobs",status="201"\} 1$/m)
      expect(metrics).toMatch(/^kvmlab_http_request_duration_seconds_bucket\{le="0.05",method="GET",route="\/api\/jobs\/\{id\}\/result",status="200"\} \d+$/m)
      const page = yield* api.jobs.list({ urlParams: {} })
      expect(page.jobs.map((j) => j.id)).toContain(job.id)
    }).pipe(Effect.provide(server(mkdtempSync(join(tmpdir(), "kvmlab-service-"))))))

  it.scopedLive("without all, the exploration stops at the first violation, as kvmlab explore does", () =>
    Effect.gen(function*() {
      const api = yield* client(TOKEN)
      const job = yield* api.jobs.submit({ payload: new Schemas.ExploreSpec({ scenario: "request-race", bugs: ["A.noEntryBarrier"], seed: 1, runs: 20000 }) })
      const evs = yield* events(job.id)
      expect(evs.at(-1)!.progress).toMatchObject({ percent: 100, state: "done" })
      const result = explored(yield* api.jobs.result({ path: { id: job.id } }))
      const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("request-race")!, { bugs: ["A.noEntryBarrier"] }))
      const local = yield* localExplore(s, { seed: 1, runs: 20000, strategy: { _tag: "random" } })
      expect(result.violations.map((v) => [v.invariant, v.run, v.replay])).toEqual(local.violations.map((v) => [v.invariant, v.run, v.replay]))
      expect(result.runs).toBe(local.runs)
      expect(result.runs).toBeLessThan(20000)
    }).pipe(Effect.provide(server(mkdtempSync(join(tmpdir(), "kvmlab-service-"))))))

  it.scopedLive("a comparison over HTTP gives kvmlab compare's rows: the same means, in the same order", () =>
    Effect.gen(function*() {
      const api = yield* client(TOKEN)
      const vary = { flush: ["native", "pv"], vms: ["1", "2"] }
      const job = yield* api.jobs.submit({ payload: new Schemas.CompareSpec({ scenario: "tlb-shootdown", vary, seeds: 2, variant: { durationNs: "20000000" } }) })
      expect(job).toMatchObject({ kind: "compare", shardsTotal: 4, runsTotal: 8 })
      const evs = yield* events(job.id)
      expect(evs.at(-1)!.progress).toMatchObject({ percent: 100, state: "done", runsDone: 8 })
      const result = yield* api.jobs.result({ path: { id: job.id } })
      if (result._tag !== "compare") throw new Error(`expected a comparison's result, got ${result._tag}`)
      const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("tlb-shootdown")!, { set: [["durationNs", "20000000"]] }))
      const local = yield* localCompare(s, { vary: Object.entries(vary), seeds: 2, seed: 1 })
      expect(result.rows.map((r) => ({ variant: r.variant, metrics: r.metrics, violations: r.violations }))).toEqual(local.rows)
      expect(result.metricUnits.ipis_per_shootdown).toBe("per shootdown, mean over the run's shootdowns")
      expect(yield* Effect.flip(api.jobs.trace({ path: { id: job.id, n: 0 } }))).toMatchObject({ _tag: "NotFound", what: "violation" })
      const empty = yield* Effect.flip(api.jobs.submit({ payload: new Schemas.CompareSpec({ scenario: "tlb-shootdown", vary: {} }) }))
      expect(empty).toMatchObject({ _tag: "BadRequest", field: "vary" })
      const unknown = yield* Effect.flip(api.jobs.submit({ payload: new Schemas.CompareSpec({ scenario: "tlb-shootdown", vary: { colour: ["red"] } }) }))
      expect(unknown).toMatchObject({ _tag: "BadRequest", field: "vary.colour" })
    }).pipe(Effect.provide(server(mkdtempSync(join(tmpdir(), "kvmlab-service-"))))))

  it.scopedLive("a run and a replay as jobs give kvmlab run's and kvmlab replay's result; the run's trace", () =>
    Effect.gen(function*() {
      const api = yield* client(TOKEN)
      const job = yield* api.jobs.submit({ payload: new Schemas.RunSpec({ scenario: "request-race", bugs: ["A.noEntryBarrier"], strategy: "random", seed: 4 }) })
      expect(job).toMatchObject({ kind: "run", runsTotal: 1, shardsTotal: 1 })
      const evs = yield* events(job.id)
      expect(evs.at(-1)!.progress).toMatchObject({ percent: 100, state: "done", runsDone: 1 })
      const result = yield* api.jobs.result({ path: { id: job.id } })
      if (result._tag !== "run") throw new Error(`expected a run's result, got ${result._tag}`)
      const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("request-race")!, { bugs: ["A.noEntryBarrier"] }))
      const local = yield* Runner.run(s, { seed: 4, strategy: { _tag: "random" } })
      expect(result).toMatchObject({ traceHash: local.traceHash, steps: local.steps, outcome: local.outcome, replay: local.token, metrics: local.metrics })
      expect(result.violations.map((v) => v.invariant)).toEqual(local.violations.map((v) => v.invariant))
      const trace = (yield* api.jobs.trace({ path: { id: job.id, n: 0 } })) as { traceEvents: ReadonlyArray<unknown> }
      expect(trace.traceEvents.length).toBeGreaterThan(10)
      expect(yield* Effect.flip(api.jobs.trace({ path: { id: job.id, n: 1 } }))).toMatchObject({ _tag: "NotFound" })

      const again = yield* api.jobs.submit({ payload: new Schemas.ReplaySpec({ token: result.replay }) })
      expect(again).toMatchObject({ kind: "replay", scenario: "request-race" })
      expect((yield* events(again.id)).at(-1)!.progress).toMatchObject({ state: "done" })
      const replayed = yield* api.jobs.result({ path: { id: again.id } })
      expect(replayed).toMatchObject({ _tag: "run", traceHash: local.traceHash, steps: local.steps })
      const damaged = yield* Effect.flip(api.jobs.submit({ payload: new Schemas.ReplaySpec({ token: result.replay.slice(0, 40) }) }))
      expect(damaged).toMatchObject({ _tag: "BadRequest", field: "token" })
      const kinds = yield* api.jobs.list({ urlParams: { kind: "replay" } })
      expect(kinds.jobs.map((j) => j.id)).toEqual([again.id])
    }).pipe(Effect.provide(server(mkdtempSync(join(tmpdir(), "kvmlab-service-"))))))

  it.scopedLive("cancel stops the remaining shards: the job ends cancelled, and no shard is stored after", () =>
    Effect.gen(function*() {
      const api = yield* client(TOKEN)
      const job = yield* api.jobs.submit({ payload: new Schemas.ExploreSpec({ scenario: "request-race", runs: 200_000, all: true }) })
      const cancelled = yield* api.jobs.cancel({ path: { id: job.id } })
      expect(cancelled.state).toBe("cancelled")
      // Shards already running finish (and are stored); none starts after. Wait until nothing moves.
      let last = -1
      let now = (yield* api.jobs.get({ path: { id: job.id } })).shardsDone
      while (now !== last) {
        last = now
        yield* Effect.sleep("2 seconds")
        now = (yield* api.jobs.get({ path: { id: job.id } })).shardsDone
      }
      expect(now).toBeLessThan(job.shardsTotal / 4)
      expect((yield* events(job.id)).at(-1)!.progress.state).toBe("cancelled")
      const noToken = yield* client(undefined)
      expect(yield* Effect.flip(noToken.jobs.cancel({ path: { id: job.id } }))).toMatchObject({ _tag: "Unauthorized" })
    }).pipe(Effect.provide(server(mkdtempSync(join(tmpdir(), "kvmlab-service-"))))))

  it.scopedLive("progress events resume after Last-Event-ID", () =>
    Effect.gen(function*() {
      const api = yield* client(TOKEN)
      const job = yield* api.jobs.submit({ payload: new Schemas.ExploreSpec({ scenario: "request-race", runs: 3000, all: true }) })
      const all = yield* events(job.id)
      expect(all.length).toBeGreaterThan(2)
      const http = yield* HttpClient.HttpClient
      const after = (last: number) =>
        Effect.flatMap(http.execute(HttpClientRequest.get(`/api/jobs/${job.id}/events`).pipe(HttpClientRequest.setHeader("last-event-id", String(last)))), (res) =>
          Effect.map(res.stream.pipe(Stream.decodeText(), Stream.mkString), (text) => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]))))
      // Reconnected after an earlier event, the client gets the newer ones (here, the end); after the last, none.
      const final = all.at(-1)!.id
      expect(yield* after(all[0]!.id)).toEqual([final])
      expect(yield* after(final)).toEqual([])
    }).pipe(Effect.provide(server(mkdtempSync(join(tmpdir(), "kvmlab-service-"))))))

  it.scopedLive("bad requests are 400s naming the field; mutations without the token are 401s", () =>
    Effect.gen(function*() {
      const api = yield* client(TOKEN)
      const noToken = yield* client(undefined)
      const unauthorized = yield* Effect.flip(noToken.jobs.submit({ payload: new Schemas.ExploreSpec({ scenario: "request-race" }) }))
      expect(unauthorized).toMatchObject({ _tag: "Unauthorized" })
      const wrong = yield* client("nope")
      expect(yield* Effect.flip(wrong.jobs.submit({ payload: new Schemas.ExploreSpec({ scenario: "request-race" }) }))).toMatchObject({ _tag: "Unauthorized", message: "wrong bearer token" })
      const unknown = yield* Effect.flip(api.jobs.submit({ payload: new Schemas.ExploreSpec({ scenario: "nosuch" }) }))
      expect(unknown).toMatchObject({ _tag: "BadRequest", field: "scenario" })
      const bug = yield* Effect.flip(api.jobs.submit({ payload: new Schemas.ExploreSpec({ scenario: "request-race", bugs: ["X"] }) }))
      expect(bug).toMatchObject({ _tag: "BadRequest", field: "bugs" })
      const depth = yield* Effect.flip(api.jobs.submit({ payload: new Schemas.ExploreSpec({ scenario: "request-race", depth: 2 }) }))
      expect(depth).toMatchObject({ _tag: "BadRequest", field: "depth" })
      const missing = yield* Effect.flip(api.jobs.get({ path: { id: "no-such-job" } }))
      expect(missing).toMatchObject({ _tag: "NotFound" })
      // Raw requests: a field the schema does not have, a value out of range, garbage JSON.
      const http = yield* HttpClient.HttpClient
      const post = (body: string) =>
        Effect.flatMap(
          http.execute(HttpClientRequest.post("/api/jobs").pipe(HttpClientRequest.bearerToken(TOKEN), HttpClientRequest.bodyText(body, "application/json"))),
          (r) => Effect.map(r.text, (text) => ({ status: r.status, text }))
        )
      const excess = yield* post(JSON.stringify({ _tag: "explore", scenario: "request-race", rnus: 5 }))
      expect(excess.status).toBe(400)
      expect(excess.text).toContain("rnus")
      const huge = yield* post(JSON.stringify({ _tag: "explore", scenario: "request-race", runs: 1e12 }))
      expect(huge.status).toBe(400)
      expect(huge.text).toContain("runs")
      const garbage = yield* post("{not json")
      expect(garbage.status).toBe(400)
      // The service's own bounds on one run's cost.
      const long = yield* Effect.flip(api.jobs.submit({ payload: new Schemas.RunSpec({ scenario: "tlb-shootdown", variant: { durationNs: "20000000000" } }) }))
      expect(long).toMatchObject({ _tag: "BadRequest", field: "scenario.durationNs" })
      const wide = yield* Effect.flip(api.jobs.submit({ payload: new Schemas.CompareSpec({ scenario: "tlb-shootdown", vary: { vcpusPerVm: ["16", "256"] }, variant: { vms: "8" } }) }))
      expect(wide).toMatchObject({ _tag: "BadRequest", field: "vary.vcpusPerVm" })
      const health = yield* api.health.health()
      expect(health.status).toBe("ok")
    }).pipe(Effect.provide(server(mkdtempSync(join(tmpdir(), "kvmlab-service-"))))))
})
