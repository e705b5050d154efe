/** Quick: explore runs/s of a built-in scenario on one engine (argv: engine scenario runs). */
import { Campaign, Runner } from "@kvmlab/scenarios"
import { Effect } from "effect"
const engine = (process.argv[2] ?? "fast") as "fast" | "effect"
const s = Runner.builtin(process.argv[3] ?? "request-race")!
const runs = Number(process.argv[4] ?? 2000)
const t = process.hrtime.bigint()
const r = Effect.runSync(Campaign.explore(s, { seed: 1, runs, strategy: { _tag: "random" }, engine }))
const ms = Number(process.hrtime.bigint() - t) / 1e6
console.log(engine, s.name, r.runs, "runs", Math.round((r.runs / ms) * 1000), "runs/s")
