#!/usr/bin/env node
/**
 * Thread 3's tables with numbers (the README's "Thread 3" section): the merged kernel's two holes
 * and the variants that close them, the cost of updating every pvti at once (Andy's question),
 * and the read costs beside spec §6 N3/N4 (Marcelo's question). Every figure comes from the CLI:
 *
 *   node scripts/build.mjs && node scripts/thread3.mjs [--runs 1000] [--seeds 8]
 */
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const cli = fileURLToPath(new URL("../apps/cli/dist/main.mjs", import.meta.url))
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name)
  if (i < 0) return dflt
  const n = Number(process.argv[i + 1])
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`${name}: expected a positive integer, got ${process.argv[i + 1]}\n`)
    process.exit(2)
  }
  return n
}
const runs = arg("--runs", 1000)
const seeds = arg("--seeds", 8)
/** Runs the CLI with --json; `explore` exits 1 when it found a violation, which is an answer here, not a failure. */
const kvmlab = (args) => {
  try {
    return JSON.parse(execFileSync(process.execPath, [cli, ...args, "--json"], { encoding: "utf8", maxBuffer: 1 << 26, stdio: ["ignore", "pipe", "ignore"] }))
  } catch (e) {
    if (e.status === 1 && typeof e.stdout === "string" && e.stdout.length > 0) return JSON.parse(e.stdout)
    throw e
  }
}
const variants = (set) => Object.entries(set).flatMap(([k, v]) => ["--variant", `${k}=${v}`])
const line = (xs) => `| ${xs.join(" | ")} |`
const n = (x) => Math.round(x).toLocaleString("en-US")

// 1. The holes, by swarm exploration.
console.log(line(["scenario", "masterClock", "clockUpdate, updaters", "runs with a violation", "by invariant"]))
console.log(line(Array(5).fill("---")))
for (const scenario of ["masterclock-storm", "kvm-clock-test"]) {
  for (const masterClock of ["on", "off"]) {
    for (const clockUpdate of ["at-entry", "all-at-once"]) {
      for (const updaters of ["concurrent", "serialised"]) {
        process.stderr.write(`explore ${scenario} masterClock=${masterClock} clockUpdate=${clockUpdate} updaters=${updaters}\n`)
        const r = kvmlab(["explore", scenario, ...variants({ reader: "vcpu0", masterClock, clockUpdate, updaters }), "--strategy", "swarm", "--runs", String(runs), "--all"])
        const kernel = clockUpdate === "at-entry" && updaters === "concurrent" ? " (the kernel)" : ""
        console.log(line([scenario, masterClock, `${clockUpdate}, ${updaters}${kernel}`, n(r.outcomes.violation), r.violations.map((v) => `${v.invariant} ${n(v.count)}`).join(", ")]))
      }
    }
  }
}

// 2. What all-at-once costs.
console.log("")
console.log(line(["scenario", "per-vCPU updates at entry", "ns the vCPUs spin on INPROGRESS", "VM exits", "update latency (mean ns)", "last guest finishes"]))
console.log(line(Array(6).fill("---")))
for (const scenario of ["kvm-clock-test", "masterclock-storm"]) {
  process.stderr.write(`compare ${scenario} clockUpdate=at-entry,all-at-once\n`)
  const r = kvmlab(["compare", scenario, "--vary", "clockUpdate=at-entry,all-at-once", ...variants({ updaters: "serialised", reader: "kernel" }), "--seeds", String(seeds), "--strategy", "timed"])
  const [a, b] = r.rows.map((x) => x.metrics)
  const pair = (k, digits = 0) => `${(a[k] ?? 0).toFixed(digits)} → ${(b[k] ?? 0).toFixed(digits)}`
  console.log(line([
    scenario,
    pair("kvmclock_updates", 1),
    `${n(a["inprogress_spin_ns"] ?? 0)} → ${n(b["inprogress_spin_ns"] ?? 0)} (${((b["inprogress_spin_ns"] ?? 0) / Math.max(1, a["inprogress_spin_ns"] ?? 0)).toFixed(2)}x)`,
    pair("vm_exits", 1),
    `${n(a["pvclockUpdateMeanNs"])} → ${n(b["pvclockUpdateMeanNs"])}`,
    `${(b["workloadNs"] / a["workloadNs"]).toFixed(2)}x`
  ]))
}

// 3. Read costs.
console.log("")
process.stderr.write("compare vdso-read-cost\n")
const cost = kvmlab(["compare", "vdso-read-cost", "--vary", "reader=getcpu,vcpu0,kernel,syscall", "--vary", "rdtsc=ordered,plain", "--seeds", "2", "--strategy", "timed"])
console.log(line(["reader", "rdtsc", "readCostNs"]))
console.log(line(Array(3).fill("---")))
for (const row of cost.rows) console.log(line([row.variant.reader, row.variant.rdtsc, row.metrics["readCostNs"].toFixed(1)]))

// 4. The switch-like windows and the host TSC write.
console.log("")
const count = (scenario, extra, strategy, bugs = []) => {
  const r = kvmlab(["explore", scenario, ...extra, ...bugs.flatMap((b) => ["--bug", b]), "--strategy", strategy, "--runs", String(runs), "--all"])
  return `${n(r.outcomes.violation)} of ${n(runs)} (${r.violations.map((v) => `${v.invariant} ${n(v.count)}`).join(", ") || "none"})`
}
process.stderr.write("explore vcpu0-halted, tsc-write\n")
console.log(`vcpu0-halted, D.staleVcpu0Stable, random: ${count("vcpu0-halted", [], "random", ["D.staleVcpu0Stable"])}`)
console.log(`vcpu0-halted, vCPU0 running, random: ${count("vcpu0-halted", [], "random")}; swarm: ${count("vcpu0-halted", [], "swarm")}`)
console.log(`tsc-write, reader=kernel, random: ${count("tsc-write", variants({ reader: "kernel" }), "random")}`)
console.log(`tsc-write, reader=kernel hostTscWrite=clock-update, random: ${count("tsc-write", variants({ reader: "kernel", hostTscWrite: "clock-update" }), "random")}; swarm: ${count("tsc-write", variants({ reader: "kernel", hostTscWrite: "clock-update" }), "swarm")}`)
console.log(`all three of kvmlab's variants, reader=vcpu0, swarm: ` + ["kvm-clock-test", "masterclock-storm", "vcpu0-halted", "tsc-write"].map((s) => `${s} ${count(s, variants({ updaters: "serialised", clockUpdate: "all-at-once", hostTscWrite: "clock-update" }), "swarm")}`).join("; "))
