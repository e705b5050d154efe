import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../../../", import.meta.url))
const bin = join(root, "node_modules/.bin/kvmlab")
/** Runs the command without blocking the worker (a blocked worker times out vitest's RPC). */
const kvmlab = (...args: Array<string>) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const p = spawn(bin, args, { cwd: root })
    let stdout = ""
    let stderr = ""
    p.stdout.on("data", (d) => (stdout += d))
    p.stderr.on("data", (d) => (stderr += d))
    p.on("error", reject)
    p.on("close", (status) => resolve({ status, stdout, stderr }))
  })
const tmp = mkdtempSync(join(tmpdir(), "kvmlab-cli-"))

describe("kvmlab list and show", async () => {
  it("lists the built-ins, and show prints a file every command accepts", async () => {
    const l = await kvmlab("list", "--json")
    expect(l.status).toBe(0)
    expect(JSON.parse(l.stdout).map((r: { name: string }) => r.name)).toEqual(expect.arrayContaining(["request-race", "lockless-walk"]))
    const s = await kvmlab("show", "lockless-walk")
    expect(s.status).toBe(0)
    const file = join(tmp, "walk.json")
    writeFileSync(file, s.stdout)
    expect(Object.keys(JSON.parse(s.stdout))).toEqual(expect.arrayContaining(["name", "vms", "vcpusPerVm", "pcpus", "durationNs", "variant", "bugs", "costs", "workload"]))
    const r = await kvmlab("run", file, "--json")
    expect(r.status).toBe(0)
    const b = await kvmlab("run", "lockless-walk", "--json")
    expect(JSON.parse(r.stdout).traceHash).toBe(JSON.parse(b.stdout).traceHash)
  })
})

describe("kvmlab run, explore, replay", async () => {
  it("run prints the documented JSON; the same seed gives the same trace hash", async () => {
    const a = await kvmlab("run", "request-race", "--seed", "7", "--json")
    expect(a.status).toBe(0)
    const out = JSON.parse(a.stdout)
    expect(Object.keys(out)).toEqual(expect.arrayContaining(["scenario", "variant", "bugs", "seed", "traceHash", "metrics", "violations"]))
    expect(out.violations).toEqual([])
    expect(out.metrics.remote_tlb_flush_requests).toBeGreaterThan(0)
    expect(JSON.parse((await kvmlab("run", "request-race", "--seed", "7", "--json")).stdout).traceHash).toBe(out.traceHash)
  })

  it("explore finds a bug (exit 1) and replay reproduces it with a Perfetto trace", async () => {
    const e = await kvmlab("explore", "request-race", "--bug", "A.exitingSkipsIpiForWait", "--runs", "2000", "--json")
    expect(e.status).toBe(1)
    const found = JSON.parse(e.stdout)
    expect(found.violations[0].invariant).toBe("REQ-2")
    expect(found.runsPerSecond).toBeGreaterThan(0)
    const trace = join(tmp, "trace.json")
    const r = await kvmlab("replay", found.violations[0].replay, "--json", "--trace-out", trace)
    expect(r.status).toBe(1)
    const again = JSON.parse(r.stdout)
    expect(again.violations[0].invariant).toBe("REQ-2")
    const direct = JSON.parse((await kvmlab("run", "request-race", "--bug", "A.exitingSkipsIpiForWait", "--strategy", "random", "--seed", String(again.seed), "--json")).stdout)
    expect(again.traceHash).toBe(direct.traceHash)
    const doc = JSON.parse(readFileSync(trace, "utf8"))
    const names = doc.traceEvents.filter((x: { name: string }) => x.name === "thread_name").map((x: { args: { name: string } }) => x.args.name)
    expect(names).toEqual(expect.arrayContaining(["vcpu0", "vcpu1", "pcpu0", "pcpu1"]))
    expect(doc.traceEvents.some((x: { ph: string; name: string }) => x.ph === "B" && x.name === "guest")).toBe(true)
  })

  it("explore with every switch off exits 0", async () => {
    const e = await kvmlab("explore", "lockless-walk", "--runs", "200", "--strategy", "pct", "--depth", "3", "--json")
    expect(e.status).toBe(0)
    expect(JSON.parse(e.stdout)).toMatchObject({ runs: 200, violations: [] })
  })
})

describe("kvmlab compare", async () => {
  it("prints one row per combination", async () => {
    const c = await kvmlab("compare", "request-race", "--vary", "extraBarriers=off,on", "--seeds", "2", "--json")
    expect(c.status).toBe(0)
    const rows = JSON.parse(c.stdout).rows
    expect(rows.map((r: { variant: unknown }) => r.variant)).toEqual([{ extraBarriers: "off" }, { extraBarriers: "on" }])
    expect(rows[0].metrics.vm_entries).toBeGreaterThan(0)
  })
})

describe("bad input", async () => {
  it("names the field and exits 2", async () => {
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
      [["run", "nosuch"], /scenario: no file and no built-in scenario named "nosuch"/],
      [["run", "request-race", "--bug", "A.nope"], /--bug: unknown bug switch "A.nope"/],
      [["run", "request-race", "--variant", "flush=fast"], /variant\.flush: expected one of "native", "pv", "pv-ipi-pending", got "fast"/],
      [["run", "request-race", "--variant", "flush"], /--variant: expected key=value/],
      [["explore", "request-race", "--strategy", "dfs"], /--strategy: unknown strategy "dfs"/],
      [["explore", "request-race", "--runs", "0"], /--runs: must be a positive integer/],
      [["replay", "kvl1.garbage"], /token: /],
      [["compare", "request-race", "--vary", "colour=red,blue"], /--vary colour: unknown setting/]
    ]
    const results = await Promise.all(cases.map(([args]) => kvmlab(...args)))
    for (const [i, [args, message]] of cases.entries()) {
      const r = results[i]!
      expect(r.status, args.join(" ")).toBe(2)
      expect(r.stderr).toMatch(message)
    }
    const bad = join(tmp, "bad.json")
    const s = JSON.parse((await kvmlab("show", "request-race")).stdout)
    s.workload.rounds = -1
    writeFileSync(bad, JSON.stringify(s))
    const r = await kvmlab("run", bad)
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/bad\.json: workload\.rounds: Expected a number greater than or equal to 1/)
  })
})
