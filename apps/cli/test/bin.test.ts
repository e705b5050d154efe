/**
 * The one test that starts the real bin (tsx start-up, seconds of CPU): main.ts wires `runCli`
 * to Node's file system and terminal and hands its exit code to the process. Started with
 * `spawn`, never a blocking call, so the vitest worker stays free to answer the runner.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { join } from "node:path"
import { kvmlab, root } from "./fixtures/kvmlab.js"

const bin = join(root, "node_modules/.bin/kvmlab")

/** Runs the bin as a child process, without blocking the worker. */
const spawnBin = (...args: Array<string>) =>
  Effect.async<{ status: number | null; stdout: string; stderr: string }, Error>((resume) => {
    const p = spawn(bin, args, { cwd: root })
    let stdout = ""
    let stderr = ""
    p.stdout.on("data", (d) => (stdout += d))
    p.stderr.on("data", (d) => (stderr += d))
    p.on("error", (e) => resume(Effect.fail(e)))
    p.on("close", (status) => resume(Effect.succeed({ status, stdout, stderr })))
  })

describe("the kvmlab bin", () => {
  it.live("prints what runCli prints and exits with its code (0, then 2)", () =>
    Effect.gen(function*() {
      const ok = yield* spawnBin("run", "request-race", "--json")
      expect(ok.status).toBe(0)
      const inProcess = yield* kvmlab("run", "request-race", "--json")
      expect(ok.stdout).toBe(inProcess.stdout)
      expect(JSON.parse(ok.stdout)).toMatchObject({ scenario: "request-race", violations: [] })
      const bad = yield* spawnBin("run", "nosuch")
      expect(bad.status).toBe(2)
      expect(bad.stderr).toContain(`kvmlab: scenario: no file and no built-in scenario named "nosuch"`)
    }))
})
