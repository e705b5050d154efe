/**
 * The multi-host set-up on loopback: a PostgreSQL server, one API process and two runner
 * processes (the real bin, as on separate hosts: they share nothing but the database and TCP).
 * Shards land on both runners; one runner is killed with SIGKILL mid-campaign, and the campaign
 * still completes on the other, every run counted once, with the answer of a local exploration.
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
import { freePort, postgres } from "./fixtures/postgres.js"
import { localExplore } from "./fixtures/local.js"

const bin = fileURLToPath(new URL("../bin/kvmlab-service.mjs", import.meta.url))
const TOKEN = "multihost-test-token"

/** Starts the bin with `args`; gives the process and the first match of `ready` in its stdout. */
const start = (args: ReadonlyArray<string>, ready: RegExp) =>
  Effect.acquireRelease(
    Effect.async<{ readonly p: ChildProcess; readonly match: RegExpExecArray }, Error>((resume) => {
      const p = spawn(process.execPath, [bin, ...args], { env: { ...process.env, KVMLAB_TOKEN: TOKEN } })
      let out = ""
      let err = ""
      p.stdout.on("data", (d) => {
        out += d
        const m = ready.exec(out)
        if (m !== null) resume(Effect.succeed({ p, match: m }))
      })
      p.stderr.on("data", (d) => (err += d))
      p.on("exit", (code) => resume(Effect.fail(new Error(`kvmlab-service ${args.join(" ")} exited ${code} before it was ready: ${err}`))))
    }),
    ({ p }) => Effect.sync(() => p.kill("SIGKILL"))
  )

const kill9 = (p: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (p.exitCode !== null || p.signalCode !== null) return resume(Effect.void)
    p.on("exit", () => resume(Effect.void))
    p.kill("SIGKILL")
  })

const clientAt = (url: string) =>
  HttpApiClient.make(Api.KvmlabApi, { baseUrl: url, transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(TOKEN)) })

const until = (url: string, id: string, done: (j: Schemas.Job) => boolean) =>
  Effect.gen(function*() {
    const api = yield* clientAt(url)
    for (;;) {
      const j = yield* api.jobs.get({ path: { id } })
      if (done(j)) return j
      yield* Effect.sleep("200 millis")
    }
  })

describe("several hosts sharing PostgreSQL", () => {
  it.scopedLive("shards land on both runners; a runner killed mid-campaign does not lose or double a run", () =>
    Effect.gen(function*() {
      const pg = yield* postgres
      const api = yield* start(["--pg", pg, "--port", "0", "--data", mkdtempSync(join(tmpdir(), "kvmlab-multihost-"))], /listening on (http:\/\/127\.0\.0\.1:\d+)/)
      const url = api.match[1]!
      const runners = []
      for (let i = 0; i < 2; i++) {
        const port = yield* freePort
        runners.push(yield* start(["runner", "--pg", pg, "--runner-port", String(port), "--workers", "1"], /runner .* \(pid (\d+),/))
      }
      const runs = 100_000
      const spec = new Schemas.ExploreSpec({ scenario: "request-race", bugs: ["A.noEntryBarrier"], seed: 11, runs, all: true })
      const job = yield* Effect.flatMap(clientAt(url), (c) => c.jobs.submit({ payload: spec }))
      // Both runners have stored shards, and most are still to run: kill one of them.
      const both = yield* until(url, job.id, (j) => j.runners.length >= 2 || j.state === "done")
      expect(both.runners).toHaveLength(2)
      expect(both.runners.map((r) => r.split(":")[1]).sort()).toEqual(runners.map((r) => r.match[1]!).sort())
      yield* kill9(runners[0]!.p)
      const atKill = yield* Effect.flatMap(clientAt(url), (c) => c.jobs.get({ path: { id: job.id } }))
      expect(atKill.shardsDone).toBeLessThan(job.shardsTotal)
      const done = yield* until(url, job.id, (j) => j.state === "done" || j.state === "failed").pipe(Effect.timeout("150 seconds"))
      expect(done).toMatchObject({ state: "done", runsDone: runs, shardsDone: job.shardsTotal })
      const result = yield* Effect.flatMap(clientAt(url), (c) => c.jobs.result({ path: { id: job.id } }))
      if (result._tag !== "explore") throw new Error(`expected an exploration's result, got ${result._tag}`)
      const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("request-race")!, { bugs: ["A.noEntryBarrier"] }))
      const local = yield* localExplore(s, { seed: 11, runs, strategy: { _tag: "random" }, all: true })
      expect(result.runs).toBe(runs)
      expect(result.distinctTraces).toBe(local.distinctTraces)
      expect(result.violations.map((v) => [v.invariant, v.run, v.count, v.replay])).toEqual(local.violations.map((v) => [v.invariant, v.run, v.count, v.replay]))
    }).pipe(Effect.provide(FetchHttpClient.layer)), 300_000)
})
