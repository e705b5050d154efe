/**
 * The tests that start the real bin (a process start each): main.ts wires `runCli` to Node's
 * file system and terminal, hands its exit code to the process, and ends quietly when the reader
 * of its output goes away (`kvmlab ... | head -1`). Started with `spawn`, never a blocking call,
 * so the vitest worker stays free to answer the runner.
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

/**
 * Runs `kvmlab ...args | head -1` in bash, as a user would: a real pipe (64 kB), and a reader
 * that takes the first line and goes away. Gives the line, the bin's exit code and its stderr.
 */
const headOne = (...args: Array<string>) =>
  Effect.async<{ line: string; status: string; stderr: string }, Error>((resume) => {
    const p = spawn("bash", ["-c", '"$@" | head -1; echo "exit ${PIPESTATUS[0]}"', "bash", bin, ...args], { cwd: root })
    let stdout = ""
    let stderr = ""
    p.stdout.on("data", (d) => (stdout += d))
    p.stderr.on("data", (d) => (stderr += d))
    p.on("error", (e) => resume(Effect.fail(e)))
    p.on("close", () => {
      const [line = "", status = ""] = stdout.split("\n")
      resume(Effect.succeed({ line, status, stderr }))
    })
  })

describe("kvmlab ... | head -1", () => {
  it.live("ends quietly when the reader goes away: exit 0, no EPIPE, no stack", () =>
    Effect.gen(function*() {
      // The table is one write of about 430 kB, far more than the pipe holds, so it is still being
      // written when head exits after the first line: the rest of the write fails with EPIPE.
      const values = (n: number) => Array.from({ length: n }, (_, i) => i + 1).join(",")
      const r = yield* headOne(
        "compare", "request-race", "--vary", `workload.rounds=${values(10)}`, "--vary", `workload.gfns=${values(20)}`,
        "--vary", "workload.guestWork=24", "--vary", "workload.haltPercent=30", "--vary", "workload.guestSteps=3",
        "--seeds", "1", "--strategy", "random", "--workers", "1"
      )
      expect(r.line).toMatch(/^metric +workload\.rounds=1 workload\.gfns=1 /)
      expect(r.stderr).not.toMatch(/EPIPE|Error|^\s+at /m)
      expect(r.status).toBe("exit 0")
    }))
})

/**
 * Starts `kvmlab ...args`, sends `signal` once its stderr shows `ready` (the first progress line:
 * the exploration is under way, with most of it left), and gives its exit code and stderr.
 */
const interrupted = (signal: NodeJS.Signals, ready: RegExp, ...args: Array<string>) =>
  Effect.async<{ status: number | null; stderr: string }, Error>((resume) => {
    const p = spawn(bin, args, { cwd: root })
    let stderr = ""
    let sent = false
    p.stdout.resume()
    p.stderr.on("data", (d) => {
      stderr += d
      if (!sent && ready.test(stderr)) {
        sent = true
        p.kill(signal)
      }
    })
    p.on("error", (e) => resume(Effect.fail(e)))
    p.on("close", (status) => resume(Effect.succeed({ status, stderr })))
  })

describe("Ctrl-C and SIGTERM", () => {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    it.live(`${signal} ends an exploration with exit 130 and says how far it got and how to go on`, () =>
      Effect.gen(function*() {
        const r = yield* interrupted(signal, /explore request-race: \d+\/50000/, "explore", "request-race", "--runs", "50000", "--seed", "7")
        expect(r.status).toBe(130)
        const m = /kvmlab: explore request-race interrupted after (\d+) of 50000 runs; runs 0-(\d+) \(seeds 7-(\d+)\) are all done: go on with --seed (\d+) --runs (\d+)/.exec(r.stderr)
        expect(m).not.toBeNull()
        const [done, last, lastSeed, next, left] = m!.slice(1).map(Number) as [number, number, number, number, number]
        expect(done).toBeGreaterThanOrEqual(5000)
        expect(done).toBeLessThan(50000)
        expect(last + 1).toBeLessThanOrEqual(done)
        expect(lastSeed).toBe(7 + last)
        expect(next).toBe(lastSeed + 1)
        expect(left).toBe(50000 - (last + 1))
        expect(r.stderr).not.toMatch(/\n\s+at /)
      }), 60_000)
  }
})
