/**
 * Shrinking: every switch and mutant of every mechanism, found by explore, shrinks to a token that replays (on
 * both engines) to the same invariant; the median shrunk run is at most half as long.
 */
import { describe, expect, it } from "@effect/vitest"
import { Campaign, Catalogue, Runner, Scenario, Shrink } from "@kvmlab/scenarios"
import { Effect, Either } from "effect"

/**
 * Shrinks `token` giving the event loop a turn every few candidate runs: a shrink can take tens
 * of seconds on a busy machine, and a vitest worker that holds its event loop that long has its
 * calls to the runner time out.
 */
const shrinkYielding = async (token: string): Promise<Shrink.ShrinkResult> => {
  const g = Shrink.steps(token)
  for (;;) {
    const r = g.next()
    if (r.done === true) return r.value
    if (r.value % 20 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
}

describe("kvmlab shrink", () => {
  const ratios: Array<number> = []
  const cases = Catalogue.switchCases
  for (const { bug, scenario: name, set, strategy } of cases) {
    it(`${bug} in ${name}: the same invariant in fewer steps, and the token replays`, async () => {
      const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin(name)!, { bugs: [bug], set }))
      const found = Effect.runSync(Campaign.explore(s, { seed: 1, runs: 3000, strategy }))
      const v = found.violations[0]!
      await new Promise((resolve) => setImmediate(resolve))
      const r = await shrinkYielding(v.replay)
      expect(r.invariant).toBe(v.invariant)
      expect(r.stepsBefore).toBe(v.steps)
      expect(r.stepsAfter).toBeLessThanOrEqual(r.stepsBefore)
      for (const engine of ["fast", "effect"] as const) {
        const again = Effect.runSync(Runner.replay(r.token, { engine }))
        expect(again.violations[0]?.invariant).toBe(v.invariant)
        expect(again.steps).toBe(r.stepsAfter)
      }
      ratios.push(r.stepsAfter / r.stepsBefore)
    })
  }
  it("the median shrunk run has at most half the steps of the original", () => {
    expect(ratios).toHaveLength(cases.length)
    const sorted = [...ratios].sort((a, b) => a - b)
    const median = (sorted[(sorted.length - 1) >> 1]! + sorted[sorted.length >> 1]!) / 2
    expect(median).toBeLessThanOrEqual(0.5)
  })

  it("a token whose run breaks nothing, and a damaged token, are refused", () => {
    const clean = Effect.runSync(Runner.run(Runner.builtin("request-race")!, { seed: 1, strategy: { _tag: "random" } }))
    expect(Effect.runSync(Effect.flip(Shrink.shrink(clean.token))).message).toContain("breaks no invariant")
    expect(Effect.runSync(Effect.flip(Shrink.shrink("kvl1.garbage"))).message).toBeTruthy()
  })
})
