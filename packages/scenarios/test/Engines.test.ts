/**
 * One model, two engines: every built-in scenario, every flush variant and every bug switch,
 * run on `fast` and on `effect` with the same seeds, must give the same trace hash, steps,
 * metrics and violations; a token made on one engine replays on the other.
 */
import { describe, expect, it } from "@effect/vitest"
import { Variants } from "@kvmlab/kvm"
import { Campaign, Catalogue, Runner, Scenario } from "@kvmlab/scenarios"
import type { Strategy } from "@kvmlab/sim"
import { Effect, Either } from "effect"

const scenario = (name: string, bugs: ReadonlyArray<string> = [], set: ReadonlyArray<readonly [string, string]> = []) =>
  Either.getOrThrow(Scenario.withOverrides(Runner.builtin(name)!, { bugs, set }))

const strategies: ReadonlyArray<Strategy.SearchStrategy> = [
  { _tag: "random" },
  { _tag: "swarm" },
  { _tag: "pct", depth: 3, steps: 300 },
  { _tag: "timed" }
]

const same = (s: Scenario.Scenario, seed: number, strategy: Strategy.SearchStrategy) => {
  const f = Effect.runSync(Runner.run(s, { seed, strategy, engine: "fast" }))
  const e = Effect.runSync(Runner.run(s, { seed, strategy, engine: "effect" }))
  expect({ hash: e.traceHash, steps: e.steps, outcome: e.outcome, metrics: e.metrics, violations: e.violations.map((v) => [v.invariant, v.message, v.step]) })
    .toEqual({ hash: f.traceHash, steps: f.steps, outcome: f.outcome, metrics: f.metrics, violations: f.violations.map((v) => [v.invariant, v.message, v.step]) })
  return f
}

// tlb-shootdown is timed to a virtual duration; 2 virtual ms keep the effect engine's runs short.
const short = [["durationNs", "2000000"]] as const

describe("the fast and effect engines agree", () => {
  for (const name of Runner.builtinNames()) {
    for (const flush of Variants.Flush.literals) {
      it(`${name}, flush=${flush}, every strategy, three seeds`, () => {
        const s = scenario(name, [], name === "tlb-shootdown" ? [["flush", flush], ...short] : [["flush", flush]])
        for (const strategy of strategies) for (const seed of [1, 2, 3]) same(s, seed, strategy)
      })
    }
  }

  // Each switch where it applies: the first violating run found on fast, then both engines on its seed.
  for (const { bug, scenario: name, set, strategy } of Catalogue.switchCases) {
    it(`${bug} in ${name}: the same violation, and the token replays on both`, () => {
      const s = scenario(name, [bug], set)
      const found = Effect.runSync(Campaign.explore(s, { seed: 1, runs: 3000, strategy, engine: "fast" }))
      expect(found.violations).toHaveLength(1)
      const v = found.violations[0]!
      const f = same(s, v.seed, strategy)
      expect(f.violations[0]?.invariant).toBe(v.invariant)
      for (const engine of ["fast", "effect"] as const) {
        expect(Effect.runSync(Runner.replay(v.replay, { engine })).traceHash).toBe(f.traceHash)
      }
    })
  }
})
