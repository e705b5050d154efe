import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { Invariants, Memslots, PvFlush, type Switch, Variants } from "@kvmlab/kvm"
import { Campaign, Catalogue, Runner, Scenario } from "@kvmlab/scenarios"
import type { Strategy } from "@kvmlab/sim"

const scenario = (name: string, bugs: ReadonlyArray<string> = [], set: ReadonlyArray<readonly [string, string]> = []) =>
  Either.getOrThrow(Scenario.withOverrides(Runner.builtin(name)!, { bugs, set }))

const explore = (name: string, strategy: Strategy.SearchStrategy, runs: number, bugs: ReadonlyArray<string> = [], set: ReadonlyArray<readonly [string, string]> = []) =>
  Effect.runSync(Campaign.explore(scenario(name, bugs, set), { seed: 1, runs, strategy }))

const random: Strategy.SearchStrategy = { _tag: "random" }
const pct3: Strategy.SearchStrategy = { _tag: "pct", depth: 3 }

describe("mechanism A with every bug switch off", () => {
  for (const name of ["request-race", "lockless-walk"]) {
    for (const extraBarriers of ["off", "on"]) {
      it(`${name}, extraBarriers=${extraBarriers}: no violation under random and pct:3`, () => {
        for (const strategy of [random, pct3]) {
          const r = explore(name, strategy, 300, [], [["extraBarriers", extraBarriers]])
          expect(r.violations).toEqual([])
          expect(r.outcomes.completed).toBe(300)
          // The invariants were exercised, not merely registered.
          for (const id of name === "request-race" ? ["REQ-1", "REQ-2", "TLB-1", "IPI-1"] : ["REQ-1", "WALK-1"]) {
            expect(r.invariantChecks[id] ?? 0).toBeGreaterThan(0)
          }
        }
      })
    }
  }
})

// Each switch, in the scenario where it applies, with the strategy that finds it and exactly the
// invariant the spec names (Catalogue.switchCases): found within 2,000 runs, and its token replays.
describe("each bug switch is found as its invariant, and its token replays", () => {
  it("every invariant of every mechanism is broken by some switch (a historical bug, or a mutant)", () => {
    const broken = new Set(Catalogue.switchCases.map((c) => c.invariant))
    const ids = [...Invariants.ids, ...PvFlush.Invariants.ids, ...Memslots.Invariants.ids]
    expect(ids.filter((id) => !broken.has(id))).toEqual([])
    // ...and each switch is found as the invariant its record says it breaks.
    for (const c of Catalogue.switchCases) expect((Variants.switches[c.bug] as Switch.Switch).breaks).toBe(c.invariant)
    // Every switch is found somewhere, or (`clean`: the spec expected a violation the faithful
    // model does not have) explored somewhere and found clean; never both, never neither.
    const found = new Set(Catalogue.switchCases.map((c) => c.bug))
    const clean = new Set(Catalogue.cleanCases.map((c) => c.bug))
    for (const [bug, sw] of Object.entries(Variants.switches) as Array<[Variants.Bug, Switch.Switch]>) {
      expect([bug, sw.breaks !== undefined, sw.clean !== undefined]).toEqual([bug, found.has(bug), clean.has(bug)])
    }
  })

  for (const { bug, scenario: name, set, strategy, runs } of Catalogue.cleanCases) {
    it(`${bug} in ${name} (${strategy._tag}): ${runs} runs, no violation, as its record explains`, () => {
      expect(explore(name, strategy, runs, [bug], set).violations).toEqual([])
    })
  }

  for (const { bug, scenario: name, set, strategy, invariant } of Catalogue.switchCases) {
    it(`${bug} in ${name} breaks ${invariant}`, () => {
      const r = explore(name, strategy, 2000, [bug], set)
      expect(r.violations.map((v) => v.invariant)).toEqual([invariant])
      const v = r.violations[0]!
      // A replay that did not reproduce the token's step count and trace hash fails (ReplayDiverged).
      const again = Effect.runSync(Runner.replay(v.replay))
      expect(again.violations[0]?.invariant).toBe(invariant)
      expect(Effect.runSync(Runner.replay(v.replay)).traceHash).toBe(again.traceHash)
      if (strategy._tag !== "pct") {
        // pct calibrates its run length first; the others replay as a plain run of the seed.
        const first = Effect.runSync(Runner.run(scenario(name, [bug], set), { seed: v.seed, strategy }))
        expect(again.traceHash).toBe(first.traceHash)
      }
    })
  }
})

describe("mechanism B with every bug switch off", () => {
  it("pv-flush-race with two initiators and two targets, every flush: no violation under random and pct:3", () => {
    for (const flush of ["native", "pv", "pv-ipi-pending"]) {
      for (const strategy of [random, pct3]) {
        const r = explore("pv-flush-race", strategy, 300, [], [["flush", flush], ["vcpusPerVm", "4"], ["pcpus", "4"], ["workload.initiators", "2"]])
        expect(r.violations).toEqual([])
        expect(r.outcomes.completed).toBe(300)
      }
    }
  })

  for (const flush of ["native", "pv", "pv-ipi-pending"]) {
    it(`pv-flush-race, flush=${flush}: no violation under random and pct:3`, () => {
      for (const strategy of [random, pct3]) {
        const r = explore("pv-flush-race", strategy, 300, [], [["flush", flush]])
        expect(r.violations).toEqual([])
        expect(r.outcomes.completed).toBe(300)
        for (const id of ["PV-1", "PV-2", "PV-3", "PV-4"]) expect(r.invariantChecks[id] ?? 0).toBeGreaterThan(0)
      }
    })
  }

  it("flush=pv skips preempted targets and flushes them at their next entry; native never does", () => {
    const total = (flush: string, metric: string) => {
      let n = 0
      // A target is seen preempted in about one shootdown in 80 under random (measured: 20 of 1,600).
      for (let seed = 1; seed <= 200; seed++) {
        n += Effect.runSync(Runner.run(scenario("pv-flush-race", [], [["flush", flush]]), { seed, strategy: random })).metrics[metric] ?? 0
      }
      return n
    }
    expect(total("pv", "ipis_avoided_preempted")).toBeGreaterThan(0)
    expect(total("pv", "guest_tlb_flushes_deferred")).toBeGreaterThan(0)
    expect(total("native", "ipis_avoided_preempted")).toBe(0)
    expect(total("native", "preemption_reported")).toBeGreaterThan(0)
  })
})

describe("scenario files", () => {
  it("round-trips a built-in through its file form", () => {
    const s = Runner.builtin("request-race")!
    const back = Either.getOrThrow(Runner.fromText(Scenario.toJson(s), "x.json"))
    expect(Scenario.canonical(back)).toBe(Scenario.canonical(s))
  })

  it("names the path and the reason of each wrong field", () => {
    const raw = JSON.parse(Scenario.toJson(Runner.builtin("request-race")!))
    raw.vcpusPerVm = 0
    raw.bugs = ["A.noSuchBug"]
    raw.workload.rounds = "three"
    raw.colour = "blue"
    const e = Either.getLeft(Runner.fromText(JSON.stringify(raw), "bad.json"))
    expect(e._tag).toBe("Some")
    const issues = e._tag === "Some" ? e.value.issues : []
    const paths = issues.map((i) => i.path)
    expect(paths).toEqual(expect.arrayContaining(["vcpusPerVm", "bugs.0", "workload.rounds", "colour"]))
    expect(issues.find((i) => i.path === "vcpusPerVm")!.message).toMatch(/greater than or equal to 1/)
  })

  it("request-race and lockless-walk take several VMs, each vCPU on a CPU of its own when there are enough", () => {
    const two = Either.flatMap(Scenario.withOverrides(Runner.builtin("request-race")!, { set: [["vms", "2"], ["pcpus", "8"]] }), (x) => Runner.validate(x, "x"))
    expect(Either.isRight(two)).toBe(true)
    const r = Effect.runSync(Campaign.explore(Either.getOrThrow(two), { seed: 1, runs: 200, strategy: random }))
    expect(r.violations).toEqual([])
    expect(r.outcomes.completed).toBe(200)
    // pcpus counts the vCPU threads' CPUs only: 3 VMs of 1 vCPU on 5 CPUs (once rejected for
    // the host threads) is valid, and so are fewer CPUs than vCPUs.
    for (const pcpus of ["5", "3", "2", "1"]) {
      const s = Either.flatMap(Scenario.withOverrides(Runner.builtin("lockless-walk")!, { set: [["vms", "3"], ["pcpus", pcpus]] }), (x) => Runner.validate(x, "x"))
      expect(Either.isRight(s), `pcpus=${pcpus}`).toBe(true)
    }
  })

  it("rejects fields that contradict each other, and text that is not JSON", () => {
    const raw = JSON.parse(Scenario.toJson(Runner.builtin("tlb-shootdown")!))
    raw.vcpusPerVm = 1
    const e = Runner.fromText(JSON.stringify(raw), "small.json")
    expect(Either.isLeft(e) && e.left.issues[0]!.path).toBe("vcpusPerVm")
    const j = Runner.fromText("{ nope", "broken.json")
    expect(Either.isLeft(j) && j.left.message).toMatch(/broken\.json: \(top level\): not JSON/)
  })

  it("a switch runs only where its mechanism is exercised and the variant it needs is set", () => {
    const issue = (name: string, bugs: ReadonlyArray<string>, set: ReadonlyArray<readonly [string, string]> = []) => {
      const e = Either.flatMap(Scenario.withOverrides(Runner.builtin(name)!, { bugs, set }), (x) => Runner.validate(x, "x"))
      return Either.isLeft(e) ? e.left.issues.map((i) => `${i.path}: ${i.message}`) : []
    }
    expect(issue("request-race", ["B.readCopyWriteback"])).toEqual([
      "bugs.0: B.readCopyWriteback is a switch of mechanism B (the paravirtual remote TLB flush and the IPI_PENDING scheme (spec §2, thread 1)); it applies to pv-flush-race and tlb-shootdown, not request-race"
    ])
    expect(issue("pv-flush-race", ["A.noEntryBarrier"])[0]).toContain("applies to request-race and lockless-walk, not pv-flush-race")
    expect(issue("pv-flush-race", ["B.readCopyWriteback"], [["flush", "native"]])).toEqual([
      "bugs.0: B.readCopyWriteback needs --variant flush=pv or pv-ipi-pending (it is a defect of that variant), got flush=native"
    ])
    expect(issue("pv-flush-race", ["P.invertedMaskClear"], [["flush", "pv"]])[0]).toContain("needs --variant flush=pv-ipi-pending")
    expect(issue("pv-flush-race", ["P.invertedMaskClear"], [["flush", "pv-ipi-pending"]])).toEqual([])
    // §10.1: the shared-bit ABA needs a second initiator; the built-in has one.
    expect(issue("pv-flush-race", ["P.sharedPendingBitABA"], [["flush", "pv-ipi-pending"]])[0]).toContain("needs two initiators")
    const two = [["flush", "pv-ipi-pending"], ["vcpusPerVm", "3"], ["pcpus", "3"], ["workload.initiators", "2"]] as const
    expect(issue("pv-flush-race", ["P.sharedPendingBitABA"], two)).toEqual([])
    expect(issue("pv-flush-race", [], [["workload.initiators", "2"]])[0]).toContain("needs at least one target")
    // Pinning: one CPU per vCPU, each one that exists.
    expect(issue("pv-flush-race", [], [["workload.pin", "[0]"]])).toEqual(["workload.pin: gives a CPU for each of the 2 vCPUs: got 1"])
    expect(issue("pv-flush-race", [], [["workload.pin", "[0,2]"]])).toEqual(["workload.pin[1]: CPU 2 does not exist: pcpus is 2"])
    expect(issue("pv-flush-race", [], [["workload.pin", "[0,0]"]])).toEqual([])
    // Every switch is owned by exactly one mechanism, and every catalogue case is valid.
    for (const c of Catalogue.switchCases) expect(issue(c.scenario, [c.bug], c.set)).toEqual([])
  })

  it("accepts every flush variant in every scenario, with a note where it changes nothing", () => {
    const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("request-race")!, { set: [["flush", "pv"]] }))
    expect(Either.isRight(Runner.validate(s, "x"))).toBe(true)
    expect(Runner.notes(s).join()).toMatch(/flush=pv changes nothing in request-race/)
    expect(Runner.notes(Runner.builtin("request-race")!)).toEqual([])
  })

  it("rejects an unknown --variant key or value with the key named", () => {
    const s = Runner.builtin("request-race")!
    const k = Scenario.withOverrides(s, { set: [["flsh", "pv"]] })
    expect(Either.isLeft(k) && k.left.issues[0]!.path).toBe("flsh")
    const v = Scenario.withOverrides(s, { set: [["flush", "fast"]] })
    expect(Either.isLeft(v) && v.left.issues[0]!.path).toBe("variant.flush")
  })
})

// request-race and lockless-walk with fewer physical CPUs than vCPUs: vCPU i of VM j on CPU
// (j * vcpusPerVm + i) % pcpus, the threads on a CPU sharing it through the host scheduler's
// runqueues; the host threads keep CPUs of their own.
describe("mechanism A overcommitted (fewer physical CPUs than vCPUs)", () => {
  type Settings = ReadonlyArray<readonly [string, string]>
  const shapes: ReadonlyArray<readonly [string, Settings]> = [
    ["request-race", [["pcpus", "1"]]],
    ["request-race", [["vms", "2"], ["vcpusPerVm", "4"], ["pcpus", "2"]]],
    ["lockless-walk", [["vcpusPerVm", "2"], ["pcpus", "1"]]],
    ["lockless-walk", [["vms", "2"], ["vcpusPerVm", "4"], ["pcpus", "2"]]]
  ]
  const label = (set: Settings) => set.map(([k, v]) => `${k}=${v}`).join(" ")

  for (const [name, set] of shapes) {
    it(`${name} ${label(set)}: no violation under random and pct:3, and vCPU threads take turns on their CPUs`, () => {
      for (const strategy of [random, pct3]) {
        const r = explore(name, strategy, 300, [], set)
        expect(r.violations).toEqual([])
        expect(r.outcomes.completed).toBe(300)
        for (const id of name === "request-race" ? ["REQ-1", "REQ-2", "TLB-1", "IPI-1"] : ["REQ-1", "WALK-1"]) {
          expect(r.invariantChecks[id] ?? 0).toBeGreaterThan(0)
        }
      }
      // The runqueues are in play: the tick takes a CPU from one vCPU thread for another.
      let preemptions = 0
      for (let seed = 1; seed <= 20; seed++) preemptions += Effect.runSync(Runner.run(scenario(name, [], set), { seed, strategy: random })).metrics.preemptions ?? 0
      expect(preemptions).toBeGreaterThan(0)
    })
  }

  it("timed, with slices running out: no violation", () => {
    const set = [["vms", "2"], ["vcpusPerVm", "4"], ["pcpus", "1"], ["durationNs", "5000000"], ["workload.guestWork", "1000000"], ["workload.rounds", "10000"], ["workload.mmioPercent", "10"]] as const
    const s = { ...scenario("lockless-walk", [], set), maxSteps: 1_000_000 }
    let preemptions = 0
    for (const seed of [1, 2, 3]) {
      const r = Effect.runSync(Runner.run(s, { seed, strategy: { _tag: "timed" } }))
      expect(r.violations).toEqual([])
      preemptions += r.metrics.preemptions ?? 0
    }
    expect(preemptions).toBeGreaterThan(0)
    for (const [name, set] of shapes) expect(Effect.runSync(Runner.run(scenario(name, [], set), { seed: 1 })).outcome).toBe("completed")
  })

  it("the fast and effect engines give the same runs", () => {
    const strategies: ReadonlyArray<Strategy.SearchStrategy> = [random, { _tag: "swarm" }, { _tag: "pct", depth: 3, steps: 300 }, { _tag: "timed" }]
    const cases: ReadonlyArray<readonly [string, Settings]> = [shapes[0]!, shapes[2]!, ["request-race", [["vms", "2"], ["vcpusPerVm", "2"], ["pcpus", "3"]]]]
    for (const [name, set] of cases) {
      const s = scenario(name, [], set)
      for (const strategy of strategies) {
        for (const seed of [1, 2]) {
          const f = Effect.runSync(Runner.run(s, { seed, strategy, engine: "fast" }))
          const e = Effect.runSync(Runner.run(s, { seed, strategy, engine: "effect" }))
          expect({ hash: e.traceHash, steps: e.steps, outcome: e.outcome, metrics: e.metrics, violations: e.violations.length })
            .toEqual({ hash: f.traceHash, steps: f.steps, outcome: f.outcome, metrics: f.metrics, violations: f.violations.length })
        }
      }
    }
  })

  it("with a CPU for each vCPU, more CPUs change nothing (no scheduler, no extra draw); fewer change the run", () => {
    for (const [name, vcpus] of [["request-race", 2], ["lockless-walk", 1]] as const) {
      const hash = (pcpus: number) => Effect.runSync(Runner.run(scenario(name, [], [["vms", "2"], ["pcpus", String(pcpus)]]), { seed: 3, strategy: random })).traceHash
      const own = hash(2 * vcpus)
      expect(hash(2 * vcpus + 1)).toBe(own)
      expect(hash(1024)).toBe(own)
      expect(hash(2 * vcpus - 1)).not.toBe(own)
    }
  })

  it("bug switches are still found: A.noEntryBarrier (REQ-1) and A.noWalkBarrier (WALK-1) on one CPU, and their tokens replay", () => {
    const cases = [
      ["request-race", "A.noEntryBarrier", random, [["pcpus", "1"]], "REQ-1"],
      ["lockless-walk", "A.noWalkBarrier", { _tag: "swarm" }, [["vcpusPerVm", "2"], ["pcpus", "1"]], "WALK-1"]
    ] as const
    for (const [name, bug, strategy, set, invariant] of cases) {
      const r = explore(name, strategy, 2000, [bug], set)
      expect(r.violations.map((v) => v.invariant)).toEqual([invariant])
      expect(Effect.runSync(Runner.replay(r.violations[0]!.replay)).violations[0]?.invariant).toBe(invariant)
    }
  })

  it("rejects only shapes outside the schema's limits, naming the field", () => {
    const issues = (name: string, set: Settings) => {
      const e = Either.flatMap(Scenario.withOverrides(Runner.builtin(name)!, { set }), (x) => Runner.validate(x, "x"))
      return Either.isLeft(e) ? e.left.issues.map((i) => `${i.path}: ${i.message}`) : []
    }
    expect(issues("request-race", [["pcpus", "0"]])).toEqual(["pcpus: Expected a number greater than or equal to 1, actual 0"])
    expect(issues("lockless-walk", [["vms", "65"]])).toEqual(["vms: Expected a number less than or equal to 64, actual 65"])
    expect(issues("request-race", [["vcpusPerVm", "257"]])).toEqual(["vcpusPerVm: Expected a number less than or equal to 256, actual 257"])
    // The largest shape within the limits, on one CPU: valid (a scenario file scales up without code).
    for (const name of ["request-race", "lockless-walk"]) expect(issues(name, [["vms", "64"], ["vcpusPerVm", "256"], ["pcpus", "1"]])).toEqual([])
    expect(issues("request-race", [["workload.requesters", "16"], ["pcpus", "1"]])).toEqual([])
  })
})

describe("tlb-shootdown (timed, overcommitted)", () => {
  it("pv-ipi-pending runs without violations and transfers IPI_PENDING at VM exits", () => {
    const r = Effect.runSync(Runner.run(small("pv-ipi-pending", "2"), { seed: 2 }))
    expect(r.violations).toEqual([])
    expect(r.metrics.ipi_pending_transfers).toBeGreaterThan(0)
  })

  const small = (flush: string, vms: string) =>
    scenario("tlb-shootdown", [], [["flush", flush], ["vms", vms], ["vcpusPerVm", "4"], ["pcpus", "4"], ["durationNs", "20000000"]])

  it("runs to its virtual duration without violations; pv skips preempted vCPUs, waits less on average and does more work at 2x", () => {
    const native = Effect.runSync(Runner.run(small("native", "2"), { seed: 1 }))
    const pv = Effect.runSync(Runner.run(small("pv", "2"), { seed: 1 }))
    for (const r of [native, pv]) {
      expect(r.violations).toEqual([])
      expect(r.outcome).toBe("time-bound")
      expect(r.metrics.shootdowns).toBeGreaterThan(10)
      expect(r.invariantChecks["PV-1"]).toBeGreaterThan(0)
    }
    expect(native.metrics.ipis_avoided_preempted ?? 0).toBe(0)
    expect(pv.metrics.ipis_avoided_preempted).toBeGreaterThan(0)
    // The mean wait, not the median: a vCPU that yielded at a pause-loop exit is off its CPU
    // without being reported preempted (not at an instruction boundary), so pv still IPIs it.
    const meanWait = (r: typeof pv) => r.metrics.shootdown_wait_ns! / r.metrics.shootdowns!
    expect(meanWait(pv)).toBeLessThan(meanWait(native))
    expect(pv.metrics.records_per_second!).toBeGreaterThan(native.metrics.records_per_second!)
  })

  it("a vCPU spinning on a preempted target takes pause-loop exits and yields to it; ple=off never does", () => {
    const on = Effect.runSync(Runner.run(small("native", "2"), { seed: 1 }))
    expect(on.metrics.ple_exits).toBeGreaterThan(0)
    expect(on.metrics.directed_yields).toBeGreaterThan(0)
    const off = Effect.runSync(Runner.run(scenario("tlb-shootdown", [], [["flush", "native"], ["ple", "off"], ["vms", "2"], ["vcpusPerVm", "4"], ["pcpus", "4"], ["durationNs", "20000000"]]), { seed: 1 }))
    expect(off.violations).toEqual([])
    expect(off.metrics.ple_exits ?? 0).toBe(0)
    expect(off.metrics.directed_yields ?? 0).toBe(0)
  })

  it("pvSchedYield=on: the initiator yields to a preempted target of its call-function IPI (KVM_HC_SCHED_YIELD)", () => {
    const set = (y: string) => [["flush", "native"], ["pvSchedYield", y], ["vms", "2"], ["vcpusPerVm", "4"], ["pcpus", "4"], ["durationNs", "20000000"]] as const
    const on = Effect.runSync(Runner.run(scenario("tlb-shootdown", [], set("on")), { seed: 1 }))
    expect(on.violations).toEqual([])
    expect(on.metrics.directed_yield_attempted).toBeGreaterThan(0)
    expect(on.metrics.directed_yield_successful).toBeGreaterThan(0)
    const off = Effect.runSync(Runner.run(scenario("tlb-shootdown", [], set("off")), { seed: 1 }))
    expect(off.metrics.directed_yield_attempted ?? 0).toBe(0)
  })

  it("sched=cfs gives two threads on a CPU 12 ms slices instead of EEVDF's 3 ms: fewer tick preemptions", () => {
    const run = (sched: string) =>
      Effect.runSync(Runner.run(scenario("tlb-shootdown", [], [["flush", "pv"], ["sched", sched], ["vms", "2"], ["vcpusPerVm", "4"], ["pcpus", "4"], ["durationNs", "50000000"]]), { seed: 1 }))
    const eevdf = run("eevdf")
    const cfs = run("cfs")
    expect(cfs.violations).toEqual([])
    expect(cfs.metrics.exits_tick!).toBeLessThan(eevdf.metrics.exits_tick!)
  })

  it("search strategies explore it within maxSteps without violations", () => {
    for (const flush of ["native", "pv"]) {
      const r = Effect.runSync(Campaign.explore(small(flush, "2"), { seed: 1, runs: 20, strategy: random }))
      expect(r.violations).toEqual([])
    }
  })

  it("needs a duration", () => {
    const e = Scenario.withOverrides(Runner.builtin("tlb-shootdown")!, { set: [["durationNs", "0"]] })
    const checked = Either.flatMap(e, (s) => Runner.validate(s, "x"))
    expect(Either.isLeft(checked) && checked.left.issues[0]!.path).toBe("durationNs")
  })
})
