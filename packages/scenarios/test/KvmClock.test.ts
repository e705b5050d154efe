/**
 * Mechanism D's scenarios: the pvti protocol holds for readers on other vCPUs, the VM-wide update
 * keeps vCPUs in lockstep with one updater, and the two holes of the merged kernel the model finds
 * are kept with the variants that close them: vCPU0's pvti is stale while vCPU0 has not re-entered
 * (the vDSO reads it from every vCPU: clockUpdate=all-at-once closes it), and concurrent updaters
 * release each other's vCPUs (updaters=serialised closes it). The read costs follow §6 N3 and N4.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { KvmClock } from "@kvmlab/kvm"
import { Campaign, Runner, Scenario } from "@kvmlab/scenarios"
import type { Strategy } from "@kvmlab/sim"

type Set = ReadonlyArray<readonly [string, string]>
const scenario = (name: string, set: Set = []) => Either.getOrThrow(Scenario.withOverrides(Runner.builtin(name)!, { set }))
const explore = (name: string, strategy: Strategy.SearchStrategy, runs: number, set: Set = []) =>
  Effect.runSync(Campaign.explore(scenario(name, set), { seed: 1, runs, strategy, all: true }))
const timed = (name: string, set: Set = []) => Effect.runSync(Runner.run(scenario(name, set), { seed: 1, strategy: { _tag: "timed" } }))

describe("kvmclock's arithmetic (pvclock_scale_delta, kvm_get_time_scale)", () => {
  it("2.5 GHz: shift -1 and a 0.8 multiplier; cycles scale to ns exactly where the kernel's would", () => {
    const { shift, mul } = KvmClock.Time.tscScale(2_500_000)
    expect([shift, mul]).toEqual([-1, 3435973836]) // (10^9 << 32) / 1.25e9, rounded down
    expect(KvmClock.Time.pvclock_scale_delta(2_500_000_000, mul, shift)).toBe(999_999_999) // one second of cycles, less the multiplier's rounding
    expect(KvmClock.Time.pvclock_scale_delta(2 ** 40 + 12345, 2 ** 31, 0)).toBe(Math.floor((2 ** 40 + 12345) / 2))
  })
})

describe("mechanism D with every bug switch off", () => {
  it("kvm-clock-test, by the kernel's own reader, getcpu and the syscall: no violation under random and swarm", () => {
    for (const reader of ["kernel", "getcpu", "syscall"]) {
      for (const strategy of [{ _tag: "random" }, { _tag: "swarm" }] as const) {
        const r = explore("kvm-clock-test", strategy, 400, [["reader", reader]])
        expect([reader, strategy._tag, r.violations]).toEqual([reader, strategy._tag, []])
      }
    }
  })

  it("one updater at a time (updaters=serialised): masterclock-storm keeps every vCPU in lockstep", () => {
    for (const strategy of [{ _tag: "random" }, { _tag: "swarm" }] as const) {
      const r = explore("masterclock-storm", strategy, 400, [["reader", "kernel"], ["updaters", "serialised"]])
      expect([strategy._tag, r.violations]).toEqual([strategy._tag, []])
    }
  })
})

describe("a guest thread that moves between vCPUs with unsynchronised TSCs (migrating-reader)", () => {
  it("every reader keeps its time monotonic under random, swarm and pct:3 (the kernel reader through its last_value clamp)", () => {
    for (const reader of ["kernel", "syscall", "vcpu0", "getcpu"]) {
      for (const strategy of [{ _tag: "random" }, { _tag: "swarm" }, { _tag: "pct", depth: 3 }] as const) {
        const r = explore("migrating-reader", strategy, 300, [["reader", reader]])
        expect([reader, strategy._tag, r.violations, r.outcomes.completed]).toEqual([reader, strategy._tag, [], 300])
      }
    }
  })

  it("the TSCs do drift apart: without the clamp (D.noLastValueClamp) the thread's time goes backwards", () => {
    const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("migrating-reader")!, { bugs: ["D.noLastValueClamp"] }))
    const r = Effect.runSync(Campaign.explore(s, { seed: 1, runs: 50, strategy: { _tag: "random" } }))
    expect(r.violations[0]?.invariant).toBe("CLK-4")
    expect(r.violations[0]?.message).toMatch(/^wanderer read kvmclock \d+ ns after reading \d+ ns: time went backwards/)
  })
})

describe("thread 3's reader protocols for a thread that moves between vCPUs in mid-reading (kvm-clock-test, migrateEvery=1)", () => {
  const moving = (reader: string): Set => [["reader", reader], ["workload.migrateEvery", "1"]]
  it("(a) getcpu before and after misses a move there and back (A -> B -> A): it reads A's pvti on B, before A republished it (CLK-3)", () => {
    const r = explore("kvm-clock-test", { _tag: "swarm" }, 2000, moving("getcpu"))
    expect(r.violations[0]?.invariant).toBe("CLK-3")
    expect(r.violations[0]?.message).toMatch(/^wanderer on vcpu\d read kvmclock/)
  })

  it("(b) migrations_from catches it: the pvti's migrate_count moved", () => {
    for (const strategy of [{ _tag: "random" }, { _tag: "swarm" }] as const) {
      expect([strategy._tag, explore("kvm-clock-test", strategy, 1000, moving("migrations")).violations]).toEqual([strategy._tag, []])
    }
  })
})

describe("the merged kernel's holes (spec §10.3)", () => {
  it("vCPU0's pvti is stale until vCPU0 re-enters: another vCPU's vDSO reads the clock from before KVM_SET_CLOCK (CLK-3); all-at-once closes it", () => {
    const r = explore("kvm-clock-test", { _tag: "random" }, 1000)
    expect(r.violations[0]?.invariant).toBe("CLK-3")
    expect(r.violations[0]?.message).toMatch(/read kvmclock \d+ ns where the VM's master pair gives \d+ ns/)
    expect(explore("kvm-clock-test", { _tag: "random" }, 1000, [["clockUpdate", "all-at-once"]]).violations).toEqual([])
  })

  it("vCPU0 halted through a stable -> unstable transition (D.staleVcpu0Stable): its STABLE pvti is read for ever (CLK-5); the updater writing it itself closes that too", () => {
    const halted: Set = [["updaters", "serialised"]]
    const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("vcpu0-halted")!, { bugs: ["D.staleVcpu0Stable"], set: halted }))
    const r = Effect.runSync(Campaign.explore(s, { seed: 1, runs: 200, strategy: { _tag: "random" }, all: true }))
    expect([r.outcomes.violation, r.violations[0]?.invariant]).toEqual([200, "CLK-5"])
    const fixed = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("vcpu0-halted")!, { bugs: ["D.staleVcpu0Stable"], set: [...halted, ["clockUpdate", "all-at-once"]] }))
    expect(Effect.runSync(Campaign.explore(fixed, { seed: 1, runs: 500, strategy: { _tag: "swarm" }, all: true })).violations).toEqual([])
  })

  it("concurrent updaters: one's clear of KVM_REQ_MCLOCK_INPROGRESS lets a vCPU enter on the pair another is replacing (CLK-2)", () => {
    const r = explore("masterclock-storm", { _tag: "swarm" }, 200, [["reader", "kernel"]])
    expect(r.violations[0]?.invariant).toBe("CLK-2")
    expect(r.violations[0]?.message).toMatch(/executes guest code with the master pair of update \d+, though update \d+ began/)
  })
})

describe("pct with guests that idle between their extra readings (workload.idleNs)", () => {
  it("busy readers starve pct's lower-priority timeline (runs end at the step bound); idling ones do not, and pct then finds hole 2, which serialised updaters close", () => {
    const pct = { _tag: "pct", depth: 3 } as const
    const busy = explore("masterclock-storm", pct, 200, [["reader", "kernel"]])
    expect(busy.outcomes["step-bound"]).toBeGreaterThan(0)
    const idle = explore("masterclock-storm", pct, 200, [["reader", "kernel"], ["workload.idleNs", "1000"]])
    expect(idle.outcomes["step-bound"]).toBe(0)
    expect(idle.violations[0]?.invariant).toBe("CLK-2")
    const serialised = explore("masterclock-storm", pct, 200, [["reader", "kernel"], ["workload.idleNs", "1000"], ["updaters", "serialised"]])
    expect([serialised.violations, serialised.outcomes.completed]).toEqual([[], 200])
  })
})

describe("tsc-write: a host-initiated MSR_IA32_TSC write while the guests run", () => {
  it("with the master clock off nothing republishes that vCPU's pvti, and its time jumps (CLK-4); a KVM_REQ_CLOCK_UPDATE with the write closes it", () => {
    const r = explore("tsc-write", { _tag: "random" }, 300, [["reader", "kernel"]])
    expect(r.violations[0]?.invariant).toBe("CLK-4")
    const fixed = explore("tsc-write", { _tag: "random" }, 300, [["reader", "kernel"], ["hostTscWrite", "clock-update"], ["updaters", "serialised"]])
    expect(fixed.violations).toEqual([])
    expect(fixed.outcomes.completed).toBe(300)
  })
})

describe("GUEST_STOPPED: KVM_KVMCLOCK_CTRL and the guest's watchdog (guest-paused)", () => {
  it("each pause reaches the guest's watchdog, whose clear keeps the host's flags, under random and pct:3", () => {
    for (const strategy of [{ _tag: "random" }, { _tag: "pct", depth: 3 }] as const) {
      const r = explore("guest-paused", strategy, 300)
      expect([strategy._tag, r.violations]).toEqual([strategy._tag, []])
    }
    // Three rounds of KVM_KVMCLOCK_CTRL on two vCPUs, readings apart: six pvtis with GUEST_STOPPED, six clears.
    const m = timed("guest-paused").metrics
    expect([m["guest_paused"], m["watchdog_touches"]]).toEqual([6, 6])
  })

  it("without KVM_KVMCLOCK_CTRL nothing sets GUEST_STOPPED: the watchdog never clears one", () => {
    expect(timed("guest-paused", [["workload.pauses", "0"]]).metrics["watchdog_touches"]).toBeUndefined()
    expect(timed("guest-paused", [["workload.pauses", "0"]]).metrics["guest_paused"]).toBeUndefined()
  })
})

describe("the host clock's NTP slew through master-clock updates (ntp-slew, spec §10.3)", () => {
  it("on CLOCK_MONOTONIC_RAW (v5.5) kvmclock runs on smoothly; on the 2015 NTP-adjusted base each new pair moves it by the slew since the last", () => {
    const random = { _tag: "random" } as const
    expect(explore("ntp-slew", random, 300).violations).toEqual([])
    // -500 ppm over the 2 ms before the update: back by 1 µs.
    const back = explore("ntp-slew", random, 10, [["era", "2015"]])
    expect(back.violations[0]?.invariant).toBe("CLK-4")
    expect(back.violations[0]?.message).toMatch(/time went backwards by 99\d ns$/)
    // -100 ppm over 10 ms: the same microsecond.
    const slower = explore("ntp-slew", random, 10, [["era", "2015"], ["workload.ntpPpm", "-100"], ["workload.warmupNs", "10000000"]])
    expect(slower.violations[0]?.message).toMatch(/time went backwards by 99\d ns$/)
    // A positive slew moves kvmclock forward: a jump, but not backwards.
    expect(explore("ntp-slew", random, 200, [["era", "2015"], ["workload.ntpPpm", "500"]]).violations).toEqual([])
  })
})

describe("vdso-read-cost (spec §6 N3, N4)", () => {
  const cost = (reader: string, rdtsc: string) => timed("vdso-read-cost", [["reader", reader], ["rdtsc", rdtsc]]).metrics["readCostNs"]!
  it("vCPU0's pvti is cheaper than getcpu's, and plain rdtsc cheaper than rdtsc_ordered, within 2x of the published figures", () => {
    const [g, v, vp] = [cost("getcpu", "ordered"), cost("vcpu0", "ordered"), cost("vcpu0", "plain")]
    expect(v).toBeLessThan(g)
    expect(vp).toBeLessThan(v)
    // N3: 45 -> 29 ns; N4: 17.6 -> 10.0 ns (the fence's cost is calibrated from N4: see Costs.ts).
    expect(g / 45).toBeGreaterThan(0.5)
    expect(g / 45).toBeLessThan(2)
    expect(v / 29).toBeGreaterThan(0.5)
    expect(vp / 10).toBeGreaterThan(0.5)
    expect(vp / 10).toBeLessThan(2)
  })
})
