#!/usr/bin/env node
/**
 * Thread 5's question with numbers: runs `kvmlab compare gpc-invalidation-storm` over every
 * gpcWait for each cell (invalidation length x gap x overcommit x invalidators) and prints the
 * README's tables. Every figure is a mean over `--seeds` timed runs (virtual time).
 *
 *   node scripts/build.mjs && node scripts/thread5.mjs [--seeds 4]
 *
 * Each cell: a storm of about 400 µs (invalidations = 400 µs / (length + gap) per invalidator),
 * every invalidation of the first invalidator within about 50 µs migrating a vCPU's pvti page
 * (overlapEvery), 200 pvclock updates per vCPU (the guests outlast the storm). The memslot table
 * comes from a second run of each cell under mainline, with a VMM thread creating and deleting a
 * dummy memslot 4 times, 100 µs apart (memslotWaitNs); each of those updates also makes every
 * cache refresh (a new memslot generation), so they are kept out of the latency table.
 */
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const cli = fileURLToPath(new URL("../apps/cli/dist/main.mjs", import.meta.url))
const seedsAt = process.argv.indexOf("--seeds")
const seeds = seedsAt > 0 ? Number(process.argv[seedsAt + 1]) : 4
if (!Number.isInteger(seeds) || seeds < 1) {
  process.stderr.write(`--seeds: expected a positive integer, got ${process.argv[seedsAt + 1]}\n`)
  process.exit(2)
}
const waits = ["mainline", "range-busy", "range-sleep", "halt-poll", "sean"]
const STORM_NS = 400_000

const cell = (lengthNs, gapNs, overcommit, invalidators, memslots) => {
  const period = lengthNs + gapNs
  const set = {
    "workload.lengthNs": lengthNs,
    "workload.gapNs": gapNs,
    "workload.invalidators": invalidators,
    "workload.invalidations": Math.ceil(STORM_NS / period),
    "workload.overlapEvery": Math.max(1, Math.round(50_000 / period)),
    "workload.guestWork": 200,
    "workload.memGfns": 12,
    "workload.memslotUpdates": memslots ? 4 : 0,
    "workload.memslotGapNs": 100_000,
    vcpusPerVm: overcommit === "2x" ? 4 : 2,
    pcpus: 2
  }
  const args = ["compare", "gpc-invalidation-storm", "--vary", `gpcWait=${memslots ? "mainline" : waits.join(",")}`, "--seeds", String(seeds), "--strategy", "timed", "--json"]
  for (const [k, v] of Object.entries(set)) args.push("--variant", `${k}=${v}`)
  const out = JSON.parse(execFileSync(process.execPath, [cli, ...args], { encoding: "utf8", maxBuffer: 1 << 26 }))
  return out.rows.map((r) => ({ wait: r.variant.gpcWait, violations: r.violations, ...r.metrics }))
}

const us = (ns) => (ns / 1000).toFixed(ns < 10_000 ? 1 : 0)
const n = (x) => Math.round(x).toLocaleString("en-US")

const cells = []
for (const invalidators of [2, 1]) {
  for (const overcommit of ["1x", "2x"]) {
    for (const lengthNs of [2_000, 20_000]) {
      for (const gapNs of [50_000, 20_000, 5_000]) {
        if (invalidators === 1 && (overcommit === "2x" || lengthNs === 2_000)) continue
        process.stderr.write(`storm: ${invalidators} invalidator(s), ${overcommit}, length ${lengthNs} ns, gap ${gapNs} ns\n`)
        cells.push({ invalidators, overcommit, lengthNs, gapNs, rows: cell(lengthNs, gapNs, overcommit, invalidators, false), memslots: cell(lengthNs, gapNs, overcommit, invalidators, true)[0] })
      }
    }
  }
}

const line = (xs) => `| ${xs.join(" | ")} |`
console.log(line(["invalidators", "length, gap", "overcommit", ...waits.map((w) => (w === "halt-poll" ? "halt-poll (adaptive)" : w))]))
console.log(line(Array(3 + waits.length).fill("---")))
let violations = 0
const spread = new Map()
for (const c of cells) {
  const by = Object.fromEntries(c.rows.map((r) => [r.wait, r]))
  violations += c.rows.reduce((s, r) => s + r.violations, 0) + c.memslots.violations
  const finish = c.rows.map((r) => r.workloadNs)
  spread.set(c, (Math.max(...finish) - Math.min(...finish)) / Math.min(...finish))
  console.log(line([
    String(c.invalidators),
    `${us(c.lengthNs)} µs, ${us(c.gapNs)} µs`,
    c.overcommit,
    ...waits.map((w) => {
      const r = by[w]
      return `${us(r.refreshLatencyP50Ns)} / ${us(r.refreshLatencyP99Ns)}; ${n(r.waitCpuNs / 1000)}; ${n(r.gpc_retries ?? 0)}`
    })
  ]))
}
console.log("")
console.log(line(["invalidators", "length, gap", "overcommit", "memslotWaitNs (µs, a run)", "swaps that waited (of 8)", "µs per swap that waited"]))
console.log(line(Array(6).fill("---")))
for (const c of cells) {
  const r = c.memslots
  console.log(line([String(c.invalidators), `${us(c.lengthNs)} µs, ${us(c.gapNs)} µs`, c.overcommit, us(r.memslotWaitNs), r.memslot_swap_waits.toFixed(1), r.memslot_swap_waits > 0 ? us(r.memslotWaitNs / r.memslot_swap_waits) : "-"]))
}
console.log("")
console.log("the last guest's finish, slowest strategy over fastest, per row: " + cells.map((c) => `${c.invalidators}/${us(c.lengthNs)}/${us(c.gapNs)}/${c.overcommit} +${(spread.get(c) * 100).toFixed(1)}%`).join(", "))
console.log(`${cells.length * waits.length + cells.length} cells x ${seeds} seeds; runs with a violation: ${violations}`)
