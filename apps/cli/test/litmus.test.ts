/**
 * `kvmlab litmus`, in-process through `runCli`: JSON rows with herd7's fields, the actor engine
 * against the exhaustive one, a test that does not parse, a condition on a thread the test does
 * not have, a test beyond the state bound, and bad options, with their exit codes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { kvmlab, root } from "./fixtures/kvmlab.js"

const examples = join(root, "examples/litmus")
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
/** The lines a run printed on a stream. */
const lines = (out: string) => out.split("\n").filter((l) => l !== "")

describe("kvmlab litmus", () => {
  it.live("prints one JSON object per test with herd7's fields, exit 0", () =>
    Effect.gen(function*() {
      const r = yield* kvmlab("litmus", examples, "--json", "--model", "sc")
      expect(r.status).toBe(0)
      const rows = r.stdout.trim().split("\n").map((l) => JSON.parse(l))
      expect(rows.length).toBe(10)
      const sb = rows.find((x) => x.test === "SB")
      expect(sb).toMatchObject({ condition: "exists (0:rax=0 /\\ 1:rax=0)", observation: "Never", model: "sc" })
      expect(sb.states).toEqual(["0:rax=0; 1:rax=1;", "0:rax=1; 1:rax=0;", "0:rax=1; 1:rax=1;"])
    }))

  it.live("the actor engine gives the same states as the exhaustive one on the examples", () =>
    Effect.gen(function*() {
      const ex = yield* kvmlab("litmus", examples, "--json")
      const act = yield* kvmlab("litmus", examples, "--json", "--engine", "actors", "--runs", "3000", "--seed", "5")
      expect(ex.status).toBe(0)
      expect(act.status).toBe(0)
      const states = (out: string) => out.trim().split("\n").map((l) => JSON.parse(l)).map((x) => [x.test, x.states])
      expect(states(ex.stdout).length).toBe(10)
      expect(states(act.stdout)).toEqual(states(ex.stdout))
    }))

  it.live("reports a test that does not parse with file and line, runs the rest, exits 2", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "kvmlab-"))
      writeFileSync(join(dir, "bad.litmus"), "X86_64 Bad\n{ x=0; }\n P0 ;\n movq $1,(x) ;\n frob (x) ;\nexists ([x]=1)\n")
      writeFileSync(join(dir, "good.litmus"), "X86_64 Good\n{ x=0; }\n P0 ;\n movq $1,(x) ;\nexists ([x]=1)\n")
      const r = yield* kvmlab("litmus", dir)
      expect(r.status).toBe(2)
      expect(r.stderr).toMatch(/bad\.litmus:5: expected an instruction .*found "frob"/)
      expect(r.stdout).toContain("Good")
      expect(r.stdout).toContain("1 did not parse")
    }))

  it.live("rejects bad options naming the field, exit 2", () =>
    Effect.gen(function*() {
      for (const [args, field] of [
        [["--model", "arm"], "--model"],
        [["--engine", "herd"], "--engine"],
        [["--runs", "0"], "--runs"],
        [["--seed", "-1"], "--seed"],
        [["--max-states", "0"], "--max-states"],
        [["--max-states", "-5"], "--max-states"],
        [["--max-states", "16000001"], "--max-states"]
      ] as const) {
        const r = yield* kvmlab("litmus", join(examples, "SB.litmus"), ...args)
        expect(r.status, args.join(" ")).toBe(2)
        expect(r.stderr).toContain(`kvmlab: ${field}:`)
      }
      const missing = yield* kvmlab("litmus", "no/such/path")
      expect(missing.status).toBe(2)
      expect(missing.stderr).toContain("no such file")
    }))

  it.live("a condition on a thread the test does not have: one line with file and line on stderr, no verdict, exit 2", () =>
    Effect.gen(function*() {
      const r = yield* kvmlab("litmus", fixture("litmus-bad-thread.litmus"))
      expect(r.status).toBe(2)
      expect(lines(r.stderr)).toHaveLength(1)
      expect(r.stderr).toMatch(/^error: \S*litmus-bad-thread\.litmus:9: exists: thread 5 does not exist \(the test has threads 0-1\)\n$/)
      expect(r.stdout).not.toContain("SB-bad-thread") // no row, so no verdict
      expect(r.stdout).toContain(": 0 Never, 0 Sometimes, 0 Always; condition holds in 0; 1 did not parse")
    }))

  it.live("a 10-thread test ends at the default bound of a million states with one line saying so, exit 2", () =>
    Effect.gen(function*() {
      const r = yield* kvmlab("litmus", fixture("litmus-ten-threads.litmus"))
      expect(r.status).toBe(2)
      expect(lines(r.stderr)).toHaveLength(1)
      expect(r.stderr).toMatch(
        /^error: \S*litmus-ten-threads\.litmus: more than 1000000 states explored \(bound --max-states 1000000\): test SB-ring-10 has 10 threads and 20 instructions; raise --max-states or make the test smaller\n$/
      )
      expect(r.stdout).toContain("1 explored more than --max-states 1000000 states")
    }))

  it.live("the actor engine ends the same test at the bound, and still checks the others", () =>
    Effect.gen(function*() {
      for (const engine of ["fast", "effect"]) {
        const r = yield* kvmlab("litmus", fixture("litmus-ten-threads.litmus"), join(examples, "SB.litmus"), "--engine", engine, "--max-states", "5000", "--json")
        expect(r.status, engine).toBe(2)
        expect(lines(r.stderr), engine).toHaveLength(1)
        expect(r.stderr).toContain(`litmus-ten-threads.litmus: more than 5000 states explored (bound --max-states 5000): test SB-ring-10 has 10 threads and 20 instructions (--engine ${engine} counts the exhaustive engine's states first)`)
        const rows = lines(r.stdout).map((l) => JSON.parse(l))
        expect(rows.map((x) => [x.test, x.engine, x.states.length])).toEqual([["SB", engine, 4]])
      }
    }))
})
