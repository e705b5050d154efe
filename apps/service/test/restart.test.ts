/**
 * The service killed with SIGKILL in the middle of a campaign and started again on the same data
 * directory: the campaign completes, every run counted exactly once (no shard lost, none counted
 * twice), and the answer is the one an uninterrupted exploration gives. The service is the real
 * bin in a child process (started with `spawn`, never a blocking call).
 */
import { FetchHttpClient, HttpApiClient, HttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Api, Schemas } from "@kvmlab/api"
import { Runner, Scenario } from "@kvmlab/scenarios"
import { Effect, Either } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { localExplore } from "./fixtures/local.js"


/** The result of an exploration job (the API's result is an exploration's or a comparison's). */
const explored = (r: Schemas.JobResult): Schemas.ExploreResult => {
  if (r._tag !== "explore") throw new Error(`expected an exploration's result, got ${r._tag}`)
  return r
}

const bin = fileURLToPath(new URL("../bin/kvmlab-service.mjs", import.meta.url))
const TOKEN = "restart-test-token"

/** Starts the service on a free port; gives the process and its base URL once it listens. */
const start = (data: string) =>
  Effect.async<{ readonly p: ChildProcess; readonly url: string }, Error>((resume) => {
    const p = spawn(process.execPath, [bin, "--port", "0", "--data", data, "--workers", "2"], { env: { ...process.env, KVMLAB_TOKEN: TOKEN } })
    let out = ""
    let err = ""
    p.stdout.on("data", (d) => {
      out += d
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
      if (m !== null) resume(Effect.succeed({ p, url: m[1]! }))
    })
    p.stderr.on("data", (d) => (err += d))
    p.on("exit", (code) => resume(Effect.fail(new Error(`kvmlab-service exited ${code} before listening: ${err}`))))
  })

/** Kills a process with SIGKILL and waits for it to be gone. */
const kill9 = (p: ChildProcess) =>
  Effect.async<void>((resume) => {
    p.on("exit", () => resume(Effect.void))
    p.kill("SIGKILL")
  })

const clientAt = (url: string) =>
  HttpApiClient.make(Api.KvmlabApi, { baseUrl: url, transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(TOKEN)) }).pipe(
    Effect.provide(FetchHttpClient.layer)
  )

/** Polls a job until `done` holds of it; gives the job as it was then. */
const until = (url: string, id: string, done: (j: Schemas.Job) => boolean) =>
  Effect.gen(function*() {
    const api = yield* clientAt(url)
    for (;;) {
      const j = yield* api.jobs.get({ path: { id } }).pipe(Effect.provide(FetchHttpClient.layer))
      if (done(j)) return j
      yield* Effect.sleep("200 millis")
    }
  })

describe("kill -9 in the middle of a campaign", () => {
  it.live("the restarted service completes it: every run counted once, the same answer", () =>
    Effect.gen(function*() {
      const data = mkdtempSync(join(tmpdir(), "kvmlab-service-restart-"))
      const runs = 40_000
      const spec = new Schemas.ExploreSpec({ scenario: "request-race", bugs: ["A.noEntryBarrier"], seed: 3, runs, all: true })
      const first = yield* start(data)
      const job = yield* Effect.flatMap(clientAt(first.url), (api) => api.jobs.submit({ payload: spec }).pipe(Effect.provide(FetchHttpClient.layer)))
      expect(job.shardsTotal).toBeGreaterThan(4)
      // Killed once some shards are stored and most are not.
      const part = yield* until(first.url, job.id, (j) => j.shardsDone > 0)
      yield* kill9(first.p)
      expect(part.shardsDone).toBeLessThan(job.shardsTotal)
      const second = yield* start(data)
      const done = yield* until(second.url, job.id, (j) => j.state === "done" || j.state === "failed").pipe(Effect.timeout("100 seconds"))
      const result = explored(yield* Effect.flatMap(clientAt(second.url), (api) => api.jobs.result({ path: { id: job.id } }).pipe(Effect.provide(FetchHttpClient.layer))))
      yield* kill9(second.p)
      expect(done).toMatchObject({ state: "done", runsDone: runs, shardsDone: job.shardsTotal })
      const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("request-race")!, { bugs: ["A.noEntryBarrier"] }))
      const local = yield* localExplore(s, { seed: 3, runs, strategy: { _tag: "random" }, all: true })
      expect(result.runs).toBe(runs)
      expect(result.distinctTraces).toBe(local.distinctTraces)
      expect(result.violations.map((v) => [v.invariant, v.run, v.count, v.replay])).toEqual(local.violations.map((v) => [v.invariant, v.run, v.count, v.replay]))
    }), 240_000)
})
