/**
 * The scenario commands, in-process through `runCli`: list and show, run, explore and replay
 * (with a Perfetto trace file), compare, and bad input naming the field, with their exit codes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { kvmlab } from "./fixtures/kvmlab.js"

const tmp = mkdtempSync(join(tmpdir(), "kvmlab-cli-"))

describe("kvmlab list and show", () => {
  it.live("lists the built-ins, and show prints a file every command accepts", () =>
    Effect.gen(function*() {
      const l = yield* kvmlab("list", "--json")
      expect(l.status).toBe(0)
      expect(JSON.parse(l.stdout).map((r: { name: string }) => r.name)).toEqual(expect.arrayContaining(["request-race", "lockless-walk"]))
      const s = yield* kvmlab("show", "lockless-walk")
      expect(s.status).toBe(0)
      const file = join(tmp, "walk.json")
      writeFileSync(file, s.stdout)
      expect(Object.keys(JSON.parse(s.stdout))).toEqual(expect.arrayContaining(["name", "vms", "vcpusPerVm", "pcpus", "durationNs", "variant", "bugs", "costs", "workload"]))
      const r = yield* kvmlab("run", file, "--json")
      expect(r.status).toBe(0)
      const b = yield* kvmlab("run", "lockless-walk", "--json")
      expect(JSON.parse(r.stdout).traceHash).toBe(JSON.parse(b.stdout).traceHash)
    }))
})

describe("kvmlab show --costs", () => {
  it.live("prints the effective cost table, each figure with its source, and marks the scenario's own", () =>
    Effect.gen(function*() {
      const d = yield* kvmlab("show", "request-race", "--costs", "--json")
      expect(d.status).toBe(0)
      const rows = JSON.parse(d.stdout) as Array<{ name: string; ns: number; overridden: boolean; source: string }>
      expect(rows.map((r) => r.name)).toEqual(expect.arrayContaining(["ipiSendNs", "vmExitNs", "timeSliceNs", "pleWindowNs"]))
      expect(rows.every((r) => !r.overridden && r.source.length > 10 && Number.isInteger(r.ns))).toBe(true)
      const s = JSON.parse((yield* kvmlab("show", "request-race")).stdout)
      const file = join(tmp, "costly.json")
      writeFileSync(file, JSON.stringify({ ...s, costs: { ipiSendNs: 1234 } }))
      const t = yield* kvmlab("show", file, "--costs")
      expect(t.status).toBe(0)
      expect(t.stdout).toMatch(/ipiSendNs +1234 ns \* +this scenario's costs/)
      expect(t.stdout).toMatch(/vmExitNs +\d+ ns {4}assumption/)
    }))
})

describe("metrics carry their units", () => {
  it.live("run --json and compare --json give each metric's unit; explore --json states the run/seed rule", () =>
    Effect.gen(function*() {
      const r = JSON.parse((yield* kvmlab("run", "tlb-shootdown", "--json")).stdout)
      expect(Object.keys(r.metricUnits).sort()).toEqual(Object.keys(r.metrics).sort())
      expect(r.metricUnits.shootdown_wait_ns).toMatch(/^virtual ns, summed/)
      expect(r.metricUnits.shootdown_wait_p99_ns).toMatch(/99th percentile over the run's shootdowns/)
      expect(r.metricUnits.records_per_second).toMatch(/per virtual second/)
      expect(r.metricUnits.ipis_per_shootdown).toMatch(/per shootdown/)
      expect(r.metricUnits.vm_exits).toMatch(/^count/)
      const c = JSON.parse((yield* kvmlab("compare", "request-race", "--vary", "extraBarriers=on,off", "--seeds", "2", "--json")).stdout)
      expect(c.means).toBe("over 2 seeds per row")
      expect(c.metricUnits.timeNs).toMatch(/virtual ns/)
      const e = JSON.parse((yield* kvmlab("explore", "request-race", "--runs", "50", "--seed", "9", "--json")).stdout)
      expect(e.seedOfRun).toMatch(/^run i uses seed 9 \+ i/)
    }))
})

describe("kvmlab run, explore, replay", () => {
  it.live("run prints the documented JSON; the same seed gives the same trace hash", () =>
    Effect.gen(function*() {
      const a = yield* kvmlab("run", "request-race", "--seed", "7", "--json")
      expect(a.status).toBe(0)
      const out = JSON.parse(a.stdout)
      expect(Object.keys(out)).toEqual(expect.arrayContaining(["scenario", "variant", "bugs", "seed", "traceHash", "metrics", "violations"]))
      expect(out.violations).toEqual([])
      expect(out.metrics.remote_tlb_flush_requests).toBeGreaterThan(0)
      expect(JSON.parse((yield* kvmlab("run", "request-race", "--seed", "7", "--json")).stdout).traceHash).toBe(out.traceHash)
    }))

  it.live("explore finds a bug (exit 1) and replay reproduces it with a Perfetto trace", () =>
    Effect.gen(function*() {
      const e = yield* kvmlab("explore", "request-race", "--bug", "A.exitingSkipsIpiForWait", "--runs", "2000", "--json")
      expect(e.status).toBe(1)
      const found = JSON.parse(e.stdout)
      expect(found.violations[0].invariant).toBe("REQ-2")
      expect(found.runsPerSecond).toBeGreaterThan(0)
      const trace = join(tmp, "trace.json")
      const r = yield* kvmlab("replay", found.violations[0].replay, "--json", "--trace-out", trace)
      expect(r.status).toBe(1)
      const again = JSON.parse(r.stdout)
      expect(again.violations[0].invariant).toBe("REQ-2")
      const direct = JSON.parse((yield* kvmlab("run", "request-race", "--bug", "A.exitingSkipsIpiForWait", "--strategy", "random", "--seed", String(again.seed), "--json")).stdout)
      expect(again.traceHash).toBe(direct.traceHash)
      const doc = JSON.parse(readFileSync(trace, "utf8"))
      const names = doc.traceEvents.filter((x: { name: string }) => x.name === "thread_name").map((x: { args: { name: string } }) => x.args.name)
      expect(names).toEqual(expect.arrayContaining(["vcpu0", "vcpu1", "pcpu0", "pcpu1"]))
      expect(doc.traceEvents.some((x: { ph: string; name: string }) => x.ph === "B" && x.name === "guest")).toBe(true)
      // The violation is marked across every track, at its step (a random run: steps on the time axis).
      const marks = doc.traceEvents.filter((x: { name: string }) => x.name.startsWith("VIOLATION"))
      expect(marks).toEqual([expect.objectContaining({ name: "VIOLATION REQ-2", ph: "i", s: "g", ts: found.violations[0].steps })])
      expect(marks[0].args.message).toBe(found.violations[0].message)
    }))

  it.live("replay --history prints the run in the kernel's names; a passing run prints its token, which replays", () =>
    Effect.gen(function*() {
      const e = yield* kvmlab("explore", "request-race", "--bug", "A.noEntryBarrier", "--runs", "2000", "--json")
      const token = JSON.parse(e.stdout).violations[0].replay
      const h = yield* kvmlab("replay", token, "--history")
      expect(h.status).toBe(1)
      const lines = h.stdout.trim().split("\n")
      expect(lines[0]).toMatch(/^request-race \(seed \d+, random, bugs: A.noEntryBarrier\): violation after \d+ steps$/)
      expect(h.stdout).toMatch(/store +vcpu\[\d\]\.mode = IN_GUEST_MODE/)
      expect(h.stdout).toContain("kvm_make_request(KVM_REQ_TLB_FLUSH")
      expect(lines.at(-1)).toMatch(/^VIOLATION REQ-1 at step \d+ by vcpu\d/)
      const tail = yield* kvmlab("replay", token, "--history", "--last", "4")
      expect(tail.stdout.trim().split("\n").filter((l) => /^ +\d+ /.test(l))).toHaveLength(4)
      const bad = yield* kvmlab("replay", token, "--last", "4")
      expect(bad.status).toBe(2)
      expect(bad.stderr).toContain("--last")
      const ok = yield* kvmlab("run", "request-race", "--strategy", "random", "--seed", "3")
      expect(ok.status).toBe(0)
      const passing = /replay: (kvl1\.\S+)/.exec(ok.stdout)?.[1]
      expect(passing).toBeDefined()
      const again = yield* kvmlab("replay", passing!, "--history")
      expect(again.status).toBe(0)
      expect(again.stdout.split("\n")[0]).toMatch(/: completed after \d+ steps$/)
    }))

  it.live("--token-file: run and explore write a token that replay and shrink read; a long token is not printed", () =>
    Effect.gen(function*() {
      const f = join(tmp, "run.token")
      const r = yield* kvmlab("run", "request-race", "--seed", "5", "--token-file", f, "--json")
      const { traceHash, replay } = JSON.parse(r.stdout) as { traceHash: string; replay: string }
      expect(readFileSync(f, "utf8")).toBe(`${replay}\n`)
      const again = yield* kvmlab("replay", "--token-file", f, "--json")
      expect(again.status).toBe(0)
      expect(JSON.parse(again.stdout).traceHash).toBe(traceHash)
      const v = join(tmp, "violation.token")
      const e = yield* kvmlab("explore", "request-race", "--bug", "A.noEntryBarrier", "--token-file", v)
      expect(e.status).toBe(1)
      expect(e.stdout).toContain(`replay: written to ${v} (`)
      const sh = yield* kvmlab("shrink", "--token-file", v, "--json")
      expect(sh.status).toBe(1)
      expect(JSON.parse(sh.stdout).invariant).toBe("REQ-1")
      // A run of 64 vCPUs makes a token of tens of kB: the text result says how to get it instead.
      const big = yield* kvmlab("run", "tlb-shootdown", "--variant", "vcpusPerVm=16", "--variant", "durationNs=20000000", "--quiet")
      expect(big.stdout).toMatch(/replay: a token of \d+ characters, not printed; --token-file FILE writes it/)
    }))

  it.live("explore with every switch off exits 0", () =>
    Effect.gen(function*() {
      const e = yield* kvmlab("explore", "lockless-walk", "--runs", "200", "--strategy", "pct", "--depth", "3", "--json")
      expect(e.status).toBe(0)
      expect(JSON.parse(e.stdout)).toMatchObject({ runs: 200, violations: [] })
      expect(e.stderr).toContain("explore lockless-walk: 200/200") // progress comes through the Console, off a terminal
    }))
})

describe("kvmlab compare", () => {
  it.live("prints one row per combination", () =>
    Effect.gen(function*() {
      const c = yield* kvmlab("compare", "request-race", "--vary", "extraBarriers=off,on", "--seeds", "2", "--json")
      expect(c.status).toBe(0)
      const rows = JSON.parse(c.stdout).rows
      expect(rows.map((r: { variant: unknown }) => r.variant)).toEqual([{ extraBarriers: "off" }, { extraBarriers: "on" }])
      expect(rows[0].metrics.vm_entries).toBeGreaterThan(0)
    }))
})

describe("bad input", () => {
  it.live("names the field and exits 2", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
        [["run", "nosuch"], /scenario: no file and no built-in scenario named "nosuch"/],
        [["run", "request-race", "--bug", "A.nope"], /--bug: unknown bug switch "A.nope"/],
        [["run", "request-race", "--variant", "flush=fast"], /variant\.flush: expected one of "native", "pv", "pv-ipi-pending", got "fast"/],
        [["run", "request-race", "--variant", "flush"], /--variant: expected key=value/],
        [["explore", "request-race", "--strategy", "dfs"], /--strategy: unknown strategy "dfs"/],
        [["explore", "request-race", "--runs", "0"], /--runs: must be a positive integer/],
        [["replay", "kvl1.garbage"], /token: /],
        [["compare", "request-race", "--vary", "colour=red,blue"], /--vary colour: unknown setting/],
        [["run"], /Missing argument <scenario>/], // @effect/cli's own usage errors exit 2 too
        [["run", "request-race", "--frob"], /Received unknown argument: '--frob'/]
      ]
      for (const [args, message] of cases) {
        const r = yield* kvmlab(...args)
        expect(r.status, args.join(" ")).toBe(2)
        expect(r.stderr).toMatch(message)
      }
      const bad = join(tmp, "bad.json")
      const s = JSON.parse((yield* kvmlab("show", "request-race")).stdout)
      s.workload.rounds = -1
      writeFileSync(bad, JSON.stringify(s))
      const r = yield* kvmlab("run", bad)
      expect(r.status).toBe(2)
      expect(r.stderr).toMatch(/bad\.json: workload\.rounds: Expected a number greater than or equal to 1/)
    }))
})
