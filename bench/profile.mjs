#!/usr/bin/env node
/**
 * `node bench/profile.mjs [a] [b] [c]`: builds bench/profile-target.ts with esbuild (names kept,
 * a source map), runs each target under `node --cpu-prof`, and attributes the self time of every
 * sample to one category by the ORIGINAL source of the nearest project frame (the sampled frame,
 * or its nearest caller in packages/ when the sample is in a library or a builtin):
 *
 * - GC: V8's `(garbage collector)` samples;
 * - hashing: sim/src/TraceHash.ts, and `event`, `op`, `nameCode` of sim/src/internal/core.ts;
 * - invariants: any Invariants.ts; `check`, `checkInvariants`, `heat`, `cool` and `Monitor` in core.ts;
 * - setup/teardown: per-run construction — `make*`, `hostThread`, `allocPage`, `alloc`, `allocArray`,
 *   `attach`, `newActor`, `spawnActor`, `execute`, constructors — and sim/src/Run.ts (options,
 *   result assembly);
 * - memory: the rest of packages/memory/src (the steps, the backends, TSO rules);
 * - kernel scheduling: the rest of packages/sim/src (core loop, strategies, engines, operations);
 * - model code: the rest of packages/kvm/src and packages/scenarios/src/workloads;
 * - Effect runtime: samples in effect's own code (fiber run loop, async, STM, Queue) — on the
 *   effect engine, the interpretation of each operation; on the fast engine, only the outer
 *   `Effect.runSync` around the exploration;
 * - other: the exploration loop (Explore.ts, Campaign.ts, Runner.ts), node internals, idle, start-up.
 *
 * Percentages are of the workload window: from the first to the last sample with a
 * packages/sim frame on its stack (no start-up or module loading).
 */
import { build } from "esbuild"
import { execFileSync } from "node:child_process"
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { SourceMap } from "node:module"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const out = join(root, "bench/dist")
const bundle = join(out, "profile-target.mjs")
mkdirSync(out, { recursive: true })
await build({
  entryPoints: [join(root, "bench/profile-target.ts")], outfile: bundle, bundle: true, platform: "node", format: "esm",
  target: "node20", sourcemap: "external", keepNames: true, logLevel: "warning"
})
const map = new SourceMap(JSON.parse(readFileSync(bundle + ".map", "utf8")))

const CATS = ["setup/teardown", "kernel scheduling", "Effect runtime", "memory", "model code", "invariants", "hashing", "GC", "other"]
const SETUP = /^(make\w*|hostThread|allocPage|alloc|allocArray|attach|newActor|spawnActor|execute|resolve|constructor|<instance_members_initializer>)$/

const sourceOf = (cf) => {
  if (!cf.url.endsWith("profile-target.mjs")) return undefined
  const e = map.findEntry(cf.lineNumber, cf.columnNumber)
  if (!e || !e.originalSource) return undefined
  return relative(root, fileURLToPath(new URL(e.originalSource, "file://" + bundle)))
}
const origin = (cf) => {
  const file = sourceOf(cf)
  return file !== undefined && (file.startsWith("packages/") || file.startsWith("bench/")) ? file : undefined
}

const categoryOf = (file, fn) => {
  if (file.startsWith("bench/")) return "other"
  if (file.endsWith("sim/src/TraceHash.ts") || (file.endsWith("internal/core.ts") && /^(event|op|nameCode|record)$/.test(fn))) return "hashing"
  if (file.endsWith("/Invariants.ts") || (file.endsWith("internal/core.ts") && /^(check|checkInvariants|heat|cool|hot|cold|Monitor)$/.test(fn))) return "invariants"
  if (SETUP.test(fn) || file.endsWith("sim/src/Run.ts")) return "setup/teardown"
  if (file.startsWith("packages/memory/src/")) return "memory"
  if (/sim\/src\/(Explore|Campaign)\.ts$/.test(file) || file.startsWith("packages/scenarios/src/") && !file.includes("/workloads/")) return "other"
  if (file.startsWith("packages/sim/src/")) return "kernel scheduling"
  if (file.startsWith("packages/kvm/src/") || file.includes("scenarios/src/workloads/")) return "model code"
  return "other"
}

const attribute = (profile) => {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const memo = new Map()
  const classify = (id) => {
    if (memo.has(id)) return memo.get(id)
    const leaf = nodes.get(id).callFrame.functionName
    let r = { cat: "other", sim: false, key: leaf }
    if (leaf === "(garbage collector)") r = { cat: "GC", sim: false, key: leaf }
    else if ((sourceOf(nodes.get(id).callFrame) ?? "").startsWith("node_modules/effect/")) {
      // Effect's own code (fibers, STM, Queue): the effect engine's interpretation of each operation.
      r = { cat: "Effect runtime", sim: true, key: sourceOf(nodes.get(id).callFrame) }
    } else {
      let decided = false
      for (let x = id; x !== undefined; x = parent.get(x)) {
        const cf = nodes.get(x).callFrame
        const file = origin(cf)
        if (file === undefined) continue
        if (file.startsWith("packages/sim/src/")) r.sim = true
        if (!decided) {
          r = { cat: categoryOf(file, cf.functionName), sim: r.sim, key: `${file} ${cf.functionName}` }
          decided = true
        }
      }
    }
    memo.set(id, r)
    return r
  }
  const { samples, timeDeltas } = profile
  let first = -1, last = -1
  for (let i = 0; i < samples.length; i++) if (classify(samples[i]).sim) { if (first < 0) first = i; last = i }
  const byCat = Object.fromEntries(CATS.map((c) => [c, 0]))
  const byKey = new Map()
  let total = 0
  for (let i = first; i <= last && i >= 0; i++) {
    const dt = timeDeltas[i + 1] ?? 0
    const v = classify(samples[i])
    byCat[v.cat] += dt
    byKey.set(`${v.cat}: ${v.key}`, (byKey.get(`${v.cat}: ${v.key}`) ?? 0) + dt)
    total += dt
  }
  return { byCat, byKey, total }
}

const targets = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["a", "b"]
const dir = join(out, "prof")
const results = {}
for (const t of targets) {
  rmSync(dir, { recursive: true, force: true })
  const summary = execFileSync(process.execPath, ["--cpu-prof", "--cpu-prof-interval=100", `--cpu-prof-dir=${dir}`, bundle, t], { encoding: "utf8" }).trim()
  const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"))
  results[t] = { summary: JSON.parse(summary), ...attribute(JSON.parse(readFileSync(join(dir, file), "utf8"))) }
}
const pct = (x, t) => (t > 0 ? ((100 * x) / t).toFixed(1) : "-")
console.log(`| category | ${targets.map((t) => `${t}: % of workload window`).join(" | ")} |`)
console.log(`|---|${targets.map(() => "---:").join("|")}|`)
for (const c of CATS) console.log(`| ${c} | ${targets.map((t) => pct(results[t].byCat[c], results[t].total)).join(" | ")} |`)
for (const t of targets) {
  console.log(`\n${t}: ${JSON.stringify(results[t].summary)}; heaviest frames:`)
  for (const [k, v] of [...results[t].byKey].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.TOP ?? 12))) console.log(`  ${pct(v, results[t].total).padStart(5)}%  ${k}`)
}
