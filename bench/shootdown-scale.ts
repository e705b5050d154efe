/** tlb-shootdown wall time per virtual time at a given size (argv: vms vcpusPerVm pcpus durationNs engine). */
import { Runner, Scenario } from "@kvmlab/scenarios"
import { Effect, Either } from "effect"
const [vms, vcpus, pcpus, dur, engine] = [process.argv[2] ?? "2", process.argv[3] ?? "16", process.argv[4] ?? "16", process.argv[5] ?? "1000000000", process.argv[6] ?? "fast"]
const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("tlb-shootdown")!, { set: [["vms", vms], ["vcpusPerVm", vcpus], ["pcpus", pcpus], ["durationNs", dur], ["flush", "pv"]] }))
const t = process.hrtime.bigint()
const r = Effect.runSync(Runner.run(s, { seed: 1, engine: engine as "fast" }))
const ms = Number(process.hrtime.bigint() - t) / 1e6
console.log(JSON.stringify({ vms, vcpus, pcpus, dur, wallS: ms / 1000, steps: r.steps, nsPerStep: Math.round(ms * 1e6 / r.steps), violations: r.violations.length, records: r.metrics.records_per_second }))
