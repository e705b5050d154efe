/**
 * `kvmlab litmus`, in-process through `runCli`: JSON rows with herd7's fields, the actor engine
 * against the exhaustive one, a test that does not parse, and bad options, with their exit codes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { kvmlab, root } from "./fixtures/kvmlab.js"

const examples = join(root, "examples/litmus")

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
        [["--seed", "-1"], "--seed"]
      ] as const) {
        const r = yield* kvmlab("litmus", join(examples, "SB.litmus"), ...args)
        expect(r.status, args.join(" ")).toBe(2)
        expect(r.stderr).toContain(`kvmlab: ${field}:`)
      }
      const missing = yield* kvmlab("litmus", "no/such/path")
      expect(missing.status).toBe(2)
      expect(missing.stderr).toContain("no such file")
    }))
})
