/**
 * The text history of a run names what a kernel engineer looks for: the memory locations, the
 * values decoded by their kernel names, the VM entries and exits, and the violation.
 */
import { describe, expect, it } from "@effect/vitest"
import { Campaign, History, Runner, Scenario } from "@kvmlab/scenarios"
import { Effect, Either } from "effect"

const firstViolation = (name: string, bug: string, set: ReadonlyArray<readonly [string, string]> = []) => {
  const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin(name)!, { bugs: [bug], set }))
  const r = Effect.runSync(Campaign.explore(s, { seed: 1, runs: 2000, strategy: { _tag: "random" } }))
  return Effect.runSync(Runner.replay(r.violations[0]!.replay, { trace: true }))
}

describe("History.render", () => {
  it("A.noEntryBarrier: one line per event, kernel names for locations and values, the violation last", () => {
    const run = firstViolation("request-race", "A.noEntryBarrier")
    const lines = History.render(run)
    expect(lines.length).toBe(run.trace.length + 3)
    const text = lines.join("\n")
    expect(text).toMatch(/store +vcpu\[\d\]\.mode = IN_GUEST_MODE \(1\)/)
    expect(text).toMatch(/vcpu\[\d\]\.requests := KVM_REQ_TLB_FLUSH|vcpu\[\d\]\.requests, now KVM_REQ_TLB_FLUSH/)
    expect(text).toContain("VM entry: vcpu")
    expect(text).not.toMatch(/location \d+/)
    expect(lines.at(-1)).toMatch(/^VIOLATION REQ-1 at step \d+ by vcpu\d: .*KVM_REQ_TLB_FLUSH/)
    // `last` keeps the end of the history.
    const tail = History.render(run, 5)
    expect(tail.filter((l) => /^ +\d+ /.test(l))).toHaveLength(5)
    expect(tail[1]).toMatch(/^\.\.\. \d+ earlier events$/)
  })

  it("pv-flush-race: the steal-time byte by its bits, and VM exits by EXIT_REASON", () => {
    const run = firstViolation("pv-flush-race", "B.noPreemptedCache", [["flush", "pv"]])
    const text = History.render(run).join("\n")
    expect(text).toMatch(/vcpu\[\d\]\.steal_time\.preempted.*KVM_VCPU_PREEMPTED/)
    expect(text).toMatch(/VM exit: vcpu \d, EXIT_REASON_[A-Z_]+/)
    expect(text).toMatch(/VIOLATION PV-1/)
  })

  it("values without kernel names print as numbers, unknown request bits by number", () => {
    expect(History.valueOf("vcpu[0].requests", 2 ** 20)).toBe("request bit 20 (0x100000)")
    expect(History.valueOf("vcpu[0].mode", 2)).toBe("EXITING_GUEST_MODE (2)")
    expect(History.valueOf("root.spte[gfn 1]", 7)).toBe("7")
  })
})
