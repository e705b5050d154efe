/**
 * The command line as the service's client: the real `kvmlab` bin (a child process, started with
 * `spawn`) against the service on a real loopback port. `explore --server` prints the same JSON
 * as a local `explore` (less the wall-clock rates and where it ran); `compare --server` the same
 * rows; `run --server` the same run; `--detach` the job id, which `kvmlab jobs` then shows; a wrong token is one line, exit 2.
 */
import { HttpServer } from "@effect/platform"
import { NodeContext, NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Service from "../src/Service.js"

const TOKEN = "cli-client-token"
const kvmlabBin = fileURLToPath(new URL("../../../node_modules/.bin/kvmlab", import.meta.url))

const kvmlab = (...args: Array<string>) =>
  Effect.async<{ readonly status: number | null; readonly stdout: string; readonly stderr: string }, Error>((resume) => {
    const p = spawn(kvmlabBin, args, { env: { ...process.env, KVMLAB_TOKEN: "" } })
    let stdout = ""
    let stderr = ""
    p.stdout.on("data", (d) => (stdout += d))
    p.stderr.on("data", (d) => (stderr += d))
    p.on("error", (e) => resume(Effect.fail(e)))
    p.on("close", (status) => resume(Effect.succeed({ status, stdout, stderr })))
  })

/** The service on a free loopback port, for the scope. */
const service = Service.layer({ data: mkdtempSync(join(tmpdir(), "kvmlab-service-cli-")), workers: 2, token: TOKEN, version: "test" }).pipe(
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
  Layer.provide(NodeContext.layer)
)

/** A JSON result less what depends on where and how fast it ran. */
const portable = (text: string) => {
  const { runsPerSecond: _r, stepsPerSecond: _s, workers: _w, server: _v, job: _j, ...rest } = JSON.parse(text) as Record<string, unknown>
  return rest
}

describe("kvmlab --server", () => {
  it.scopedLive("explore and compare through the service print what they print locally; jobs lists them; a wrong token is one line", () =>
    Effect.gen(function*() {
      const url = yield* HttpServer.addressFormattedWith((a) => Effect.succeed(a))
      const args = ["explore", "request-race", "--bug", "A.noEntryBarrier", "--runs", "3000", "--all", "--seed", "5", "--json", "--quiet"]
      const remote = yield* kvmlab(...args, "--server", url, "--token", TOKEN)
      const local = yield* kvmlab(...args)
      expect(remote.status, remote.stderr).toBe(1)
      expect(local.status).toBe(1)
      expect(portable(remote.stdout)).toEqual(portable(local.stdout))
      expect(JSON.parse(remote.stdout)).toMatchObject({ server: url, job: expect.stringMatching(/^[0-9a-f-]{36}$/) })

      const cargs = ["compare", "tlb-shootdown", "--vary", "vms=1,2", "--seeds", "2", "--variant", "durationNs=20000000", "--json", "--quiet"]
      const rc = yield* kvmlab(...cargs, "--server", url, "--token", TOKEN)
      const lc = yield* kvmlab(...cargs)
      expect(rc.status, rc.stderr).toBe(0)
      expect(JSON.parse(rc.stdout)).toEqual(JSON.parse(lc.stdout))

      const rargs = ["run", "request-race", "--bug", "A.noEntryBarrier", "--strategy", "random", "--seed", "4", "--json"]
      const rr = yield* kvmlab(...rargs, "--server", url, "--token", TOKEN)
      const lr = yield* kvmlab(...rargs)
      expect(rr.status, rr.stderr).toBe(lr.status)
      expect(JSON.parse(rr.stdout)).toEqual(JSON.parse(lr.stdout))

      const detached = yield* kvmlab("explore", "request-race", "--runs", "500", "--server", url, "--token", TOKEN, "--detach", "--json")
      expect(detached.status, detached.stderr).toBe(0)
      const { job } = JSON.parse(detached.stdout) as { job: string }
      const shown = yield* kvmlab("jobs", job, "--server", url, "--json")
      expect(JSON.parse(shown.stdout)).toMatchObject({ id: job, kind: "explore", runsTotal: 500 })
      const listed = yield* kvmlab("jobs", "--server", url, "--json")
      expect((JSON.parse(listed.stdout) as { jobs: Array<{ id: string }> }).jobs.map((j) => j.id)).toContain(job)

      const wrong = yield* kvmlab("explore", "request-race", "--server", url, "--token", "nope")
      expect(wrong.status).toBe(2)
      expect(wrong.stderr).toBe(`kvmlab: --token: ${url} refused it: wrong bearer token (give --token, or set KVMLAB_TOKEN)\n`)
      const nowhere = yield* kvmlab("jobs", "--server", "http://127.0.0.1:9")
      expect(nowhere.status).toBe(2)
      expect(nowhere.stderr).toMatch(/^kvmlab: --server: cannot reach http:\/\/127\.0\.0\.1:9: .*is kvmlab-service running\?\)\n$/)
    }).pipe(Effect.provide(service)), 240_000)
})
