import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../../../", import.meta.url))
const bin = join(root, "node_modules/.bin/kvmlab")
const kvmlab = (...args: Array<string>) => spawnSync(bin, args, { cwd: root, encoding: "utf8" })

describe("kvmlab litmus", () => {
  it("prints one JSON object per test with herd7's fields, exit 0", () => {
    const r = kvmlab("litmus", "examples/litmus", "--json", "--model", "sc")
    expect(r.status).toBe(0)
    const rows = r.stdout.trim().split("\n").map((l) => JSON.parse(l))
    expect(rows.length).toBe(10)
    const sb = rows.find((x) => x.test === "SB")
    expect(sb).toMatchObject({ condition: "exists (0:rax=0 /\\ 1:rax=0)", observation: "Never", model: "sc" })
    expect(sb.states).toEqual(["0:rax=0; 1:rax=1;", "0:rax=1; 1:rax=0;", "0:rax=1; 1:rax=1;"])
  })

  it("the actor engine gives the same states as the exhaustive one on the examples", () => {
    const ex = kvmlab("litmus", "examples/litmus", "--json")
    const act = kvmlab("litmus", "examples/litmus", "--json", "--engine", "actors", "--runs", "3000", "--seed", "5")
    expect(act.status).toBe(0)
    const states = (out: string) => out.trim().split("\n").map((l) => JSON.parse(l)).map((x) => [x.test, x.states])
    expect(states(act.stdout)).toEqual(states(ex.stdout))
  })

  it("reports a test that does not parse with file and line, runs the rest, exits 2", () => {
    const dir = mkdtempSync(join(tmpdir(), "kvmlab-"))
    writeFileSync(join(dir, "bad.litmus"), "X86_64 Bad\n{ x=0; }\n P0 ;\n movq $1,(x) ;\n frob (x) ;\nexists ([x]=1)\n")
    writeFileSync(join(dir, "good.litmus"), "X86_64 Good\n{ x=0; }\n P0 ;\n movq $1,(x) ;\nexists ([x]=1)\n")
    const r = kvmlab("litmus", dir)
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/bad\.litmus:5: expected an instruction .*found "frob"/)
    expect(r.stdout).toContain("Good")
    expect(r.stdout).toContain("1 did not parse")
  })

  it("rejects bad options naming the field, exit 2", () => {
    for (const [args, field] of [
      [["--model", "arm"], "--model"],
      [["--engine", "herd"], "--engine"],
      [["--runs", "0"], "--runs"],
      [["--seed", "-1"], "--seed"]
    ] as const) {
      const r = kvmlab("litmus", "examples/litmus/SB.litmus", ...args)
      expect(r.status).toBe(2)
      expect(r.stderr).toContain(`kvmlab: ${field}:`)
    }
    const missing = kvmlab("litmus", "no/such/path")
    expect(missing.status).toBe(2)
    expect(missing.stderr).toContain("no such file")
  })
})
