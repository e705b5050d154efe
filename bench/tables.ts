/**
 * The README's measured tables, regenerated: `node scripts/build.mjs && npx esbuild ... ` — or
 * simply `npx tsx bench/tables.ts` (slower). Prints markdown:
 * - every switch off, every scenario x flush variant (and extraBarriers for mechanism A), 2,000
 *   runs under random and under pct:3: the violations found (expected: none);
 * - each switch: the first violating run of 2,000 (seed 1) under random, pct:3 and swarm.
 */
import { Campaign, Catalogue, Runner, Scenario } from "@kvmlab/scenarios"
import type { Strategy } from "@kvmlab/sim"
import { Effect, Either } from "effect"

const strategies: ReadonlyArray<readonly [string, Strategy.SearchStrategy]> = [["random", { _tag: "random" }], ["pct:3", { _tag: "pct", depth: 3 }], ["swarm", { _tag: "swarm" }]]
const scenario = (name: string, bugs: ReadonlyArray<string>, set: ReadonlyArray<readonly [string, string]>) =>
  Either.getOrThrow(Scenario.withOverrides(Runner.builtin(name)!, { bugs, set }))
const explore = (s: Scenario.Scenario, strategy: Strategy.SearchStrategy) => Effect.runSync(Campaign.explore(s, { seed: 1, runs: 2000, strategy }))

const which = process.argv[2] ?? "all"
if (which === "all" || which === "clean") {
  console.log("| scenario | variant | random | pct:3 | runs/s (random) |\n|---|---|---|---|---|")
  for (const name of Runner.builtinNames()) {
    const variants: Array<ReadonlyArray<readonly [string, string]>> = name === "request-race" || name === "lockless-walk"
      ? [[["extraBarriers", "off"]], [["extraBarriers", "on"]]]
      : [[["flush", "native"]], [["flush", "pv"]], [["flush", "pv-ipi-pending"]]]
    for (const set of variants) {
      const rs = strategies.slice(0, 2).map(([, st]) => explore(scenario(name, [], set), st))
      const cell = (r: Campaign.ScenarioExplore) => (r.violations.length === 0 ? `none in ${r.runs}` : r.violations.map((v) => `${v.invariant} at run ${v.run}`).join(", "))
      console.log(`| ${name} | ${set.map(([k, v]) => `${k}=${v}`).join(" ")} | ${cell(rs[0]!)} | ${cell(rs[1]!)} | ${rs[0]!.runsPerSecond} |`)
    }
  }
}
if (which === "all" || which === "switches") {
  console.log("\n| switch | scenario | random | pct:3 | swarm |\n|---|---|---|---|---|")
  for (const { bug, scenario: name, set } of Catalogue.switchCases) {
    const cells = strategies.map(([, st]) => {
      const r = explore(scenario(name, [bug], set), st)
      return r.violations.length === 0 ? "none in 2,000" : `${r.violations[0]!.invariant}, run ${r.violations[0]!.run}`
    })
    console.log(`| ${bug} | ${name} | ${cells.join(" | ")} |`)
  }
}
