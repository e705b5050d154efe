import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Explore, Run } from "../src/index.js"
import { interleave } from "./fixtures/programs.js"
import { orderingBug } from "./fixtures/ordering-bug.js"

describe("Explore.explore", () => {
  /*
   * The budget for PCT. A bug of depth d among n actors in runs of k steps is found with
   * probability at least 1/(n * k^(d-1)) per run (Burckhardt et al., ASPLOS 2010, Theorem 9).
   * Here the order A3 < B1 < A4 < B2 needs two priority changes (d = 3); there are n = 5 actors
   * (A, B, C, D and main) and runs of k = 38-39 steps, so p >= 1/(5 * 39^2) = 1/7,605 and 40,000
   * runs miss it with probability at most (1 - 1/7,605)^40,000 < 0.6%. Measured over 20 base seeds: found after
   * 449 to 6,097 runs (mean about 2,500). Seeds are fixed, so this test is deterministic.
   */
  it.effect("pct (depth 3) finds an ordering bug that needs two preemptions among four actors", () =>
    Effect.gen(function*() {
      const r = yield* Explore.explore(orderingBug(8), { seed: 0, runs: 40_000, strategy: { _tag: "pct", depth: 3 } })
      expect(r.violations).toHaveLength(1)
      const v = r.violations[0]!
      expect(v.invariant).toBe("ORDER-1")
      expect(r.runs).toBe(v.run + 1) // stopped at the first violation
      const again = yield* Run.replay(orderingBug(8), v.replay, { engine: "effect" })
      expect(again.violation?.invariant).toBe("ORDER-1")
      expect(again.violation?.message).toBe(v.message)
    }))

  it.effect("pct with depth 2 cannot produce that order: one priority change is not enough", () =>
    Effect.gen(function*() {
      const r = yield* Explore.explore(orderingBug(8), { seed: 0, runs: 5_000, strategy: { _tag: "pct", depth: 2 } })
      expect(r.violations).toHaveLength(0)
      expect(r.runs).toBe(5_000)
      expect(r.outcomes.completed).toBe(5_000)
      expect(r.distinctTraces).toBeGreaterThan(100)
    }))

  it.effect("all: keeps going and counts violations per invariant", () =>
    Effect.gen(function*() {
      const r = yield* Explore.explore(orderingBug(8), { seed: 0, runs: 300, strategy: { _tag: "random" }, all: true })
      expect(r.runs).toBe(300)
      expect(r.violations).toHaveLength(1)
      expect(r.violations[0]!.count).toBe(r.outcomes.violation)
      expect(r.violations[0]!.count).toBeGreaterThan(1)
    }))

  it.effect("reports progress and statistics, and the runs are reproducible", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const opts = {
        seed: 17,
        runs: 50,
        strategy: { _tag: "random" } as const,
        progressEvery: 10,
        onProgress: (done: number) => Effect.sync(() => void seen.push(done))
      }
      const a = yield* Explore.explore(interleave(3, 4), opts)
      const b = yield* Explore.explore(interleave(3, 4), opts)
      expect(seen).toEqual([10, 20, 30, 40, 50, 10, 20, 30, 40, 50])
      expect(a.steps).toBe(b.steps)
      expect(a.distinctTraces).toBe(b.distinctTraces)
      expect(a.distinctTraces).toBeGreaterThan(40)
      expect(a.outcomes.completed).toBe(50)
    }))

  it.effect("blocks merge to what one thread finds: the same violations, runs, counts and traces", () =>
    Effect.gen(function*() {
      for (const all of [false, true]) {
        const o = { seed: 5, strategy: { _tag: "random" } as const, all }
        const strategy = Explore.runStrategy(orderingBug(8), o)
        const whole = Explore.combine([Explore.runBlock(orderingBug(8), o, strategy, 0, 400)], all)
        // Dealt as blocks of 37 runs, finished in reverse order, as workers might.
        const blocks = []
        for (let first = 0; first < 400; first += 37) blocks.push(Explore.runBlock(orderingBug(8), o, strategy, first, Math.min(37, 400 - first)))
        const dealt = Explore.combine(blocks.reverse(), all)
        expect(dealt).toEqual(whole)
        expect(whole.violations.length).toBe(1)
        if (!all) expect(whole.runs).toBe(whole.violations[0]!.run + 1)
        else expect(whole.runs).toBe(400)
      }
    }))

  it.effect("rejects a bad run count", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(Explore.explore(interleave(2, 2), { seed: 1, runs: 0, strategy: { _tag: "random" } }))
      expect(e).toMatchObject({ _tag: "InvalidRunOptions", field: "runs" })
    }))
})
