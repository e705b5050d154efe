/**
 * Mechanism E's scenarios: the merged kernel is clean where its argument holds (GPA caches, the
 * memslot interlock), the MM's invalidations reach the caches and the secondary MMU, and the HVA
 * cache outside every memslot — where `mmu_invalidate_seq` never moves — publishes a freed page,
 * which a sequence bumped at every range end (gpcSeq=every) prevents.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { Campaign, Runner, Scenario } from "@kvmlab/scenarios"
import type { Strategy } from "@kvmlab/sim"

const scenario = (name: string, set: ReadonlyArray<readonly [string, string]> = []) => Either.getOrThrow(Scenario.withOverrides(Runner.builtin(name)!, { set }))
const explore = (name: string, strategy: Strategy.SearchStrategy, runs: number, set: ReadonlyArray<readonly [string, string]> = []) =>
  Effect.runSync(Campaign.explore(scenario(name, set), { seed: 1, runs, strategy, all: true }))

describe("mechanism E with every bug switch off", () => {
  for (const name of ["gpc-refresh-race", "shinfo-juggle", "memslot-swap-vs-invalidations"]) {
    it(`${name}: no violation under random, pct:3 and swarm`, () => {
      for (const [strategy, runs] of [[{ _tag: "random" }, 1000], [{ _tag: "pct", depth: 3 }, 300], [{ _tag: "swarm" }, 1000]] as const) {
        const r = explore(name, strategy, runs)
        expect([name, strategy._tag, r.violations]).toEqual([name, strategy._tag, []])
      }
    })
  }

  it("the MM's invalidations reach the caches, and the secondary MMU only where a memslot overlaps", () => {
    const gpa = Effect.runSync(Runner.run(scenario("gpc-refresh-race"), { seed: 1 }))
    expect(gpa.outcome).toBe("completed")
    expect(gpa.metrics["mmu_notifier_invalidations"]).toBe(2)
    expect(gpa.metrics["mmu_notifier_memslot_hits"]).toBe(2) // the pvti page is in slot 0
    // Each vCPU: at enabling, then one per guestWork update (the last may be cut by the teardown).
    expect(gpa.metrics["gpc_writes"]).toBeGreaterThanOrEqual(2 * 3)
    expect(gpa.metrics["gpc_writes"]).toBeLessThanOrEqual(2 * (1 + 3))
    const hva = Effect.runSync(Runner.run(scenario("gpc-hva-race"), { seed: 1 }))
    expect(hva.metrics["mmu_notifier_invalidations"]).toBe(2)
    expect(hva.metrics["mmu_notifier_memslot_hits"] ?? 0).toBe(0) // outside every slot: mmu_invalidate_seq stays
    expect(hva.metrics["gpc_writes"]).toBe(2 * 3)
  })
})

describe("an HVA-based cache outside every memslot (spec §10.4)", () => {
  it("the merged kernel publishes a page the MM freed: an invalidation that starts and ends while the refresher is out of the lock leaves no trace", () => {
    const r = explore("gpc-hva-race", { _tag: "swarm" }, 1000)
    expect(r.outcomes.violation).toBeGreaterThan(0)
    expect(new Set(r.violations.map((v) => v.invariant))).toEqual(new Set(["GPC-1"]))
    expect(r.violations[0]!.message).toMatch(/wrote through vm\.shinfo_cache to pfn \d+ \((freed|in use elsewhere)\)/)
    // The same cache by gpa, in slot 0, is safe: the invalidation's end moves mmu_invalidate_seq.
    expect(explore("gpc-hva-race", { _tag: "swarm" }, 1000, [["workload.cache", "shinfo-gpa"], ["workload.pvGfn", "1"]]).outcomes.violation).toBe(0)
  })

  it("gpcSeq=every (a sequence bumped at every range end, kvmlab's proposal): the same runs are clean", () => {
    expect(explore("gpc-hva-race", { _tag: "swarm" }, 1000, [["gpcSeq", "every"]]).outcomes.violation).toBe(0)
  })
})

describe("gpc-invalidation-storm: the wait strategies (spec §5.8)", () => {
  it("every gpcWait, the builtin storm: no violation under random and swarm", () => {
    for (const wait of ["mainline", "range-busy", "range-sleep", "halt-poll", "sean"]) {
      for (const strategy of [{ _tag: "random" }, { _tag: "swarm" }] as const) {
        const r = explore("gpc-invalidation-storm", strategy, 300, [["gpcWait", wait]])
        expect([wait, strategy._tag, r.violations]).toEqual([wait, strategy._tag, []])
      }
    }
  })

  it("every gpcWait, the race scenarios (a moved shared cache included): no violation under random", () => {
    for (const wait of ["range-busy", "range-sleep", "halt-poll", "sean"]) {
      for (const name of ["gpc-refresh-race", "shinfo-juggle"]) {
        expect([wait, name, explore(name, { _tag: "random" }, 500, [["gpcWait", wait]]).violations]).toEqual([wait, name, []])
      }
    }
  })

  it("a stream of invalidations of other pages starves mainline's refresher (GPC-3), not the range-precise waits", () => {
    const stream: ReadonlyArray<readonly [string, string]> = [["workload.gapNs", "0"], ["workload.invalidations", "200"]]
    const mainline = explore("gpc-invalidation-storm", { _tag: "random" }, 20, stream)
    expect(mainline.violations[0]?.invariant).toBe("GPC-3")
    for (const wait of ["range-busy", "range-sleep", "halt-poll", "sean"]) {
      expect([wait, explore("gpc-invalidation-storm", { _tag: "random" }, 20, [...stream, ["gpcWait", wait]]).violations]).toEqual([wait, []])
    }
  })

  it("timed: the range-precise waits make no retries where mainline makes many, and only range-sleep and halt-poll sleep", () => {
    const run = (wait: string) => Effect.runSync(Runner.run(scenario("gpc-invalidation-storm", [["gpcWait", wait], ["workload.guestWork", "200"]]), { seed: 1, strategy: { _tag: "timed" } }))
    const mainline = run("mainline")
    expect(mainline.outcome).toBe("completed")
    expect(mainline.metrics["gpc_retries"]).toBeGreaterThan(10)
    expect(mainline.metrics["gpc_sleeps"] ?? 0).toBe(0)
    for (const wait of ["range-busy", "sean"]) {
      const r = run(wait)
      expect([wait, r.metrics["gpc_retries"] ?? 0, r.metrics["gpc_sleeps"] ?? 0]).toEqual([wait, 0, 0])
      expect(r.metrics["gpc_waits"]).toBeGreaterThan(0)
    }
    const sleep = run("range-sleep")
    expect(sleep.metrics["gpc_sleeps"]).toBeGreaterThan(0)
    expect(sleep.metrics["waitCpuNs"] ?? 0).toBeLessThan(mainline.metrics["waitCpuNs"]!)
  })

  it("one invalidator, back to back (the in-flight range starts afresh at every count of 0): the range-precise waits finish a refresh in about one invalidation, mainline only after the storm", () => {
    const set = (wait: string): ReadonlyArray<readonly [string, string]> => [
      ["gpcWait", wait], ["workload.invalidators", "1"], ["workload.lengthNs", "20000"], ["workload.gapNs", "5000"],
      ["workload.invalidations", "16"], ["workload.overlapEvery", "2"], ["workload.guestWork", "200"]
    ]
    const run = (wait: string) => Effect.runSync(Runner.run(scenario("gpc-invalidation-storm", set(wait)), { seed: 1, strategy: { _tag: "timed" } }))
    const mainline = run("mainline")
    expect(mainline.outcome).toBe("completed")
    for (const wait of ["range-busy", "range-sleep", "sean"]) {
      const r = run(wait)
      expect(r.outcome).toBe("completed")
      // Mainline waits out the storm (16 invalidations of 20 µs); a range wait, about one.
      expect([wait, r.metrics["refreshLatencyMaxNs"]! * 4 < mainline.metrics["refreshLatencyMaxNs"]!]).toEqual([wait, true])
    }
  })

  it("memslotWaitNs: a memslot swap during the storm sleeps until no invalidation is in flight", () => {
    const set: ReadonlyArray<readonly [string, string]> = [["workload.memslotUpdates", "3"], ["workload.memslotGapNs", "50000"], ["workload.guestWork", "200"], ["workload.memGfns", "9"]]
    const r = Effect.runSync(Runner.run(scenario("gpc-invalidation-storm", set), { seed: 1, strategy: { _tag: "timed" } }))
    expect(r.outcome).toBe("completed")
    expect(r.metrics["memslot_ioctls"]).toBe(6)
    expect(r.metrics["memslot_swap_waits"]).toBeGreaterThan(0)
    expect(r.metrics["memslotWaitNs"]).toBeGreaterThan(0)
    const quiet = Effect.runSync(Runner.run(scenario("gpc-invalidation-storm", [...set, ["workload.invalidations", "1"], ["workload.lengthNs", "0"]]), { seed: 1, strategy: { _tag: "timed" } }))
    expect(quiet.metrics["memslotWaitNs"]).toBeLessThan(r.metrics["memslotWaitNs"]!)
  })
})

describe("the Xen user on an overcommitted vCPU (4 vCPUs on 2 CPUs)", () => {
  it("a refresher waiting for refresh_lock sleeps and gives its CPU up: the owner may be a vCPU of the same CPU, asleep through an invalidation", () => {
    for (const wait of ["mainline", "range-sleep", "sean"]) {
      const r = explore("shinfo-juggle", { _tag: "random" }, 300, [["vcpusPerVm", "4"], ["pcpus", "2"], ["gpcWait", wait]])
      expect([wait, r.violations, r.outcomes.completed]).toEqual([wait, [], 300])
    }
  })
})

describe("the atomic user: Xen's runstate area written from the preempt notifier", () => {
  it("xen-runstate-race: no violation, and the atomic writes do skip, on a taken lock and on a failed check", () => {
    expect(explore("xen-runstate-race", { _tag: "random" }, 500).violations).toEqual([])
    expect(explore("xen-runstate-race", { _tag: "swarm" }, 500).violations).toEqual([])
    let [trylock, check, preempted] = [0, 0, 0]
    for (let seed = 1; seed <= 300; seed++) {
      const r = Effect.runSync(Runner.run(scenario("xen-runstate-race"), { seed, strategy: { _tag: "random" } }))
      expect(r.outcome).toBe("completed")
      trylock += r.metrics["runstate_trylock_skipped"] ?? 0
      check += r.metrics["runstate_check_skipped"] ?? 0
      preempted += r.metrics["preemptions"] ?? 0
    }
    expect(preempted).toBeGreaterThan(0)
    expect(trylock).toBeGreaterThan(0)
    expect(check).toBeGreaterThan(0)
  })
})
