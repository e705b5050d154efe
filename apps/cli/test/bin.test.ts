/**
 * The tests that start the real bin (a process start each): main.ts wires `runCli` to Node's
 * file system and terminal, hands its exit code to the process, and ends quietly when the reader
 * of its output goes away (`kvmlab ... | head -1`). Started with `spawn`, never a blocking call,
 * so the vitest worker stays free to answer the runner.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
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
 * the work is under way, with most of it left), and gives its exit code, stdout (the partial result) and stderr.
 */
const interrupted = (signal: NodeJS.Signals, ready: RegExp, ...args: Array<string>) =>
  Effect.async<{ status: number | null; stdout: string; stderr: string }, Error>((resume) => {
    const p = spawn(bin, args, { cwd: root })
    let stdout = ""
    let stderr = ""
    let sent = false
    p.stdout.on("data", (d) => (stdout += d))
    p.stderr.on("data", (d) => {
      stderr += d
      if (!sent && ready.test(stderr)) {
        sent = true
        p.kill(signal)
      }
    })
    p.on("error", (e) => resume(Effect.fail(e)))
    p.on("close", (status) => resume(Effect.succeed({ status, stdout, stderr })))
  })

describe("Ctrl-C during run, compare and litmus", () => {
  it.live("SIGINT ends a long run within a chunk: exit 130, the step and virtual time it reached", () =>
    Effect.gen(function*() {
      const r = yield* interrupted(
        "SIGINT", /run tlb-shootdown \(virtual µs\): \d+\/1000000/,
        "run", "tlb-shootdown", "--variant", "vms=2", "--variant", "vcpusPerVm=64", "--variant", "durationNs=1000000000"
      )
      expect(r.status).toBe(130)
      const m = /kvmlab: run tlb-shootdown interrupted at step (\d+), ([\d.]+) ms of virtual time \(of 1\.000 s\); no violation so far/.exec(r.stderr)
      expect(m).not.toBeNull()
      expect(Number(m![1])).toBeGreaterThanOrEqual(50_000) // a progress line comes at a pause, after 50,000 steps
      expect(Number(m![2])).toBeLessThan(1000)
      expect(r.stderr).not.toMatch(/\n\s+at /)
    }), 60_000)

  it.live("SIGINT ends a comparison with the rows whose seeds all ran", () =>
    Effect.gen(function*() {
      // One worker runs the 10 seeds of the first row, then the second's; a line every tenth of the
      // way (3 runs): interrupted at the line after the first row is done.
      const r = yield* interrupted(
        "SIGINT", /compare tlb-shootdown: 12\/30/,
        "compare", "tlb-shootdown", "--vary", "vms=1,2,3", "--seeds", "10", "--workers", "1"
      )
      expect(r.status).toBe(130)
      expect(r.stdout).toMatch(/^metric +vms=1/)
      expect(r.stdout).not.toMatch(/vms=3/)
      expect(r.stderr).toMatch(/kvmlab: compare tlb-shootdown interrupted after (1[2-9]|2\d) of 30 runs; the [12] of 3 rows whose 10 seeds all ran are shown/)
    }), 120_000)

  it.live("SIGINT ends a litmus check inside a search of millions of states, with the tests checked before it", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "kvmlab-litmus-")))
      const small = yield* Effect.promise(() => readFile(join(root, "examples/litmus/SB.litmus"), "utf8"))
      const huge = yield* Effect.promise(() => readFile(join(root, "apps/cli/test/fixtures/litmus-ten-threads.litmus"), "utf8"))
      for (const i of [1, 2, 3, 4]) yield* Effect.promise(() => writeFile(join(dir, `a${i}.litmus`), small.replace(/^X86_64 SB$/m, `X86_64 SB${i}`)))
      yield* Effect.promise(() => writeFile(join(dir, "z.litmus"), huge))
      // The actor engine reports each test (5 files): the fifth searches up to 16 million states first.
      const r = yield* interrupted("SIGINT", /: 4\/5/, "litmus", dir, "--engine", "fast", "--max-states", "16000000")
      yield* Effect.promise(() => rm(dir, { recursive: true }))
      expect(r.status).toBe(130)
      expect(r.stdout.match(/^SB\d /gm)).toHaveLength(4)
      expect(r.stderr).toMatch(/kvmlab: litmus interrupted after 4 of 5 tests, in \S*z\.litmus; the 4 checked are in the table/)
    }), 60_000)
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
