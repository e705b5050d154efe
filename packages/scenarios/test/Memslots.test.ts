/**
 * Mechanism C's scenarios do what their variants say: the fast zap flips and reloads roots, the
 * memslot-only zap leaves mmu_valid_gen alone, zap-all zaps from the head, a small MMIO
 * generation wraps and zaps everything, and vCPUs see memory, then MMIO, in the delete flow.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { Campaign, Runner, Scenario } from "@kvmlab/scenarios"

const run = (name: string, set: ReadonlyArray<readonly [string, string]>, seed = 1) => {
  const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin(name)!, { set }))
  return Effect.runSync(Runner.run(s, { seed }))
}

describe("the merged kernel's MMIO-wrap hole: an MMIO SPTE made after the wrap's zap, before the final store", () => {
  // make_mmio_spte stores the in-progress array's generation without the flag, i.e. the one just
  // before the wrap; the wrap's fast zap is already over, so the SPTE survives, and it aliases
  // the completed generation 2^(bits-1) updates later (one update with 2 bits and 2 address
  // spaces; 2^18 with the kernel's 19). swarm finds it; skipping the SPTE in flux closes it.
  const flux = (mmioSpteInFlux: string) =>
    Effect.runSync(
      Campaign.explore(Either.getOrThrow(Scenario.withOverrides(Runner.builtin("mmio-wrap")!, { set: [["mmioGenBits", "2"], ["workload.rounds", "6"], ["mmioSpteInFlux", mmioSpteInFlux]] })), {
        seed: 1,
        runs: 1000,
        strategy: { _tag: "swarm" },
        all: true
      })
    )
  it("mmioSpteInFlux=make (the kernel): GEN-2, an SPTE made at the generation before the wrap hit a cycle later", () => {
    const r = flux("make")
    expect(r.outcomes.violation).toBeGreaterThan(0)
    expect(new Set(r.violations.map((v) => v.invariant))).toEqual(new Set(["GEN-2"]))
    expect(r.violations[0]!.message).toMatch(/made at generation \d+\|IN_PROGRESS while its memslots are at generation \d+/)
  })
  it("mmioSpteInFlux=skip (no MMIO SPTE while an update is in progress): the same 1,000 runs are clean", () => {
    expect(flux("skip").outcomes.violation).toBe(0)
  })
})

describe("mechanism C's variants take effect", () => {
  it("zap=fast: each deletion flips mmu_valid_gen and every vCPU drops its obsolete root", () => {
    const r = run("memslot-stress", [["zap", "fast"]])
    expect(r.outcome).toBe("completed")
    expect(r.metrics["zap_all_fast"]).toBe(2) // two deletions
    expect(r.metrics["zap_memslot"] ?? 0).toBe(0)
    expect(r.metrics["roots_freed"]).toBeGreaterThan(0)
    expect(r.metrics["memslot_generation_updates"]).toBe(6) // create 1 + delete 2, twice
  })

  it("zap=memslot: only the slot's pages, no generation flip", () => {
    const r = run("memslot-stress", [["zap", "memslot"]])
    expect(r.outcome).toBe("completed")
    expect(r.metrics["zap_memslot"]).toBe(2)
    expect(r.metrics["zap_all_fast"] ?? 0).toBe(0)
  })

  it("zap=all: the revert's zap of every page", () => {
    const r = run("memslot-stress", [["zap", "all"]])
    expect(r.outcome).toBe("completed")
    expect(r.metrics["zap_all"]).toBe(2)
    expect(r.metrics["mmu_shadow_zapped"]).toBeGreaterThan(0)
  })

  it("a 3-bit MMIO generation wraps in SMM's address space and the wrap zaps everything", () => {
    const r = run("mmio-wrap", [])
    expect(r.outcome).toBe("completed")
    expect(r.metrics["mmio_generation_wraps"]).toBeGreaterThan(0)
    expect(r.metrics["mmio_sptes_made"]).toBeGreaterThan(0)
    // With the kernel's 19 bits nothing wraps in so few updates.
    expect(run("mmio-wrap", [["mmioGenBits", "19"]]).metrics["mmio_generation_wraps"] ?? 0).toBe(0)
  })

  it("the MMIO hole gives MMIO exits; mmioCaching=off emulates without MMIO SPTEs", () => {
    const on = run("memslot-delete", [])
    expect(on.metrics["mmio_exits"]).toBeGreaterThan(0)
    expect(on.metrics["mmio_sptes_made"]).toBeGreaterThan(0)
    const off = run("memslot-delete", [["mmioCaching", "off"]])
    expect(off.metrics["mmio_exits"]).toBeGreaterThan(0)
    expect(off.metrics["mmio_sptes_made"] ?? 0).toBe(0)
  })

  it("rom-access (thread 2's benchmark, N2): zapping only the ROM slot's pages finishes sooner than the fast zap of everything", () => {
    const timed = { seed: 1, strategy: { _tag: "timed" } } as const
    const at = (zap: string) => {
      const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("rom-access")!, { set: [["zap", zap]] }))
      return Effect.runSync(Runner.run(s, timed))
    }
    const fast = at("fast")
    const memslot = at("memslot")
    expect(fast.metrics["zap_all_fast"]).toBeGreaterThan(0)
    expect(memslot.metrics["zap_memslot"]).toBeGreaterThan(0)
    // The fast zap makes every vCPU fault its memory in again; the memslot zap leaves it mapped.
    expect(fast.metrics["pf_taken"]).toBeGreaterThan(memslot.metrics["pf_taken"]!)
    expect(memslot.metrics["benchmarkNs"]).toBeLessThan(fast.metrics["benchmarkNs"]!)
  })

  it("a shape that cannot work is refused with its field", () => {
    const s = Either.flatMap(Scenario.withOverrides(Runner.builtin("memslot-delete")!, { set: [["workload.dummyGfns", "4"]] }), (x) => Runner.validate(x, "test"))
    expect(Either.isLeft(s)).toBe(true)
    if (Either.isLeft(s)) expect(s.left.message).toMatch(/workload\.dummyGfns: the dummy slot needs 8 frames/)
  })
})
