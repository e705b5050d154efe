/**
 * The workloads `bench/profile.mjs` profiles, one per process (argv[2]):
 * - `a`: explore `request-race`, random, 20,000 runs, fast engine, on this thread;
 * - `b`: one timed `tlb-shootdown` run, 2 VMs x 16 vCPUs on 16 physical CPUs, pv flush, 1 virtual second;
 * - `c`: explore `request-race`, random, 2,000 runs, effect engine.
 */
import { Campaign, Runner, Scenario } from "@kvmlab/scenarios"
import { Effect, Either } from "effect"

const which = process.argv[2] ?? "a"
const t0 = process.hrtime.bigint()
let summary: Record<string, unknown>
if (which === "a" || which === "c") {
  const engine = which === "a" ? "fast" : "effect"
  const runs = which === "a" ? 20_000 : 2_000
  const r = Effect.runSync(Campaign.explore(Runner.builtin("request-race")!, { seed: 1, runs, strategy: { _tag: "random" }, engine }))
  summary = { target: which, engine, runs: r.runs, steps: r.steps, runsPerSecond: r.runsPerSecond }
} else {
  const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("tlb-shootdown")!, {
    set: [["vms", "2"], ["vcpusPerVm", "16"], ["pcpus", "16"], ["durationNs", "1000000000"], ["flush", "pv"]]
  }))
  const r = Effect.runSync(Runner.run(s, { seed: 1 }))
  summary = { target: which, steps: r.steps, outcome: r.outcome }
}
process.stdout.write(JSON.stringify({ ...summary, wallSeconds: Number(process.hrtime.bigint() - t0) / 1e9 }) + "\n")
