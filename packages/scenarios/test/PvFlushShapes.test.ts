/**
 * pv-flush-race takes its shape from the file (issue 8 item 5): several VMs, each with its
 * initiators, targets, host threads and VMM thread, whose vCPU threads share the physical CPUs
 * through one scheduler when some CPU has more than one.
 */
import { describe, expect, it } from "@effect/vitest"
import { Campaign, Runner, Scenario } from "@kvmlab/scenarios"
import type { Strategy } from "@kvmlab/sim"
import { Effect, Either } from "effect"

const scenario = (set: ReadonlyArray<readonly [string, string]>, bugs: ReadonlyArray<string> = []) =>
  Either.getOrThrow(Scenario.withOverrides(Runner.builtin("pv-flush-race")!, { bugs, set }))

const shapes: ReadonlyArray<ReadonlyArray<readonly [string, string]>> = [
  [["vms", "2"]],
  [["vms", "3"], ["pcpus", "2"]],
  [["vms", "2"], ["vcpusPerVm", "3"], ["workload.initiators", "2"], ["pcpus", "3"]]
]
const show = (set: ReadonlyArray<readonly [string, string]>) => set.map(([k, v]) => `${k}=${v}`).join(" ")

describe("pv-flush-race with several VMs", () => {
  for (const set of shapes) {
    it(`${show(set)}: no violation under random and pct:3, every VM's vCPUs run`, () => {
      for (const strategy of [{ _tag: "random" }, { _tag: "pct", depth: 3 }] as ReadonlyArray<Strategy.SearchStrategy>) {
        const r = Effect.runSync(Campaign.explore(scenario(set), { seed: 1, runs: 200, strategy }))
        expect(r.violations).toEqual([])
        expect(r.outcomes.completed).toBe(200)
        expect(r.invariantChecks["PV-1"] ?? 0).toBeGreaterThan(0)
      }
      // The last VM's vCPUs exist and take shootdowns (their names carry the VM).
      const run = Effect.runSync(Runner.run(scenario(set), { seed: 2, trace: true }))
      const vms = Number(set.find(([k]) => k === "vms")![1])
      expect(run.outcome).toBe("completed")
      expect(run.metrics["shootdowns"] ?? 0).toBeGreaterThan(0)
      expect(run.trace.some((e) => e.actor.startsWith(`vm${vms - 1}.vcpu`))).toBe(true)
    })
  }

  it("the fast and effect engines give the same run with two VMs on shared CPUs", () => {
    const s = scenario([["vms", "2"], ["pcpus", "1"]])
    for (const seed of [1, 2]) {
      const f = Effect.runSync(Runner.run(s, { seed, engine: "fast" }))
      const e = Effect.runSync(Runner.run(s, { seed, engine: "effect" }))
      expect({ hash: e.traceHash, steps: e.steps, metrics: e.metrics }).toEqual({ hash: f.traceHash, steps: f.steps, metrics: f.metrics })
    }
  })

  it("a switch is found in a VM other than the first, and its token replays", () => {
    const r = Effect.runSync(Campaign.explore(scenario([["vms", "2"]], ["B.noPreemptedCache"]), { seed: 1, runs: 2000, strategy: { _tag: "random" } }))
    expect(r.violations.map((v) => v.invariant)).toEqual(["PV-1"])
    const v = r.violations[0]!
    expect(v.message).toContain("vm1.")
    const again = Effect.runSync(Runner.replay(v.replay))
    expect(again.violations.map((x) => [x.invariant, x.message])).toEqual([[v.invariant, v.message]])
    expect(again.steps).toBe(v.steps)
  })
})
