/**
 * `npm run bench`: measured speeds as JSON on stdout (progress on stderr). Every figure is the
 * median of 3 timed runs after one warm-up, and comparisons are ratios within this one run.
 *
 * - kernel steps/s with 8 and 256 actors doing TSO memory operations through the STM memory
 *   service, against the same work as a plain TypeScript loop (the limit of this machine);
 * - wall time of the exhaustive litmus engine over the 2,595 herd7 tests (herd7: about 42 s);
 * - explore runs/s (and steps/s) on the built-in `request-race` and `lockless-walk` scenarios,
 *   random and pct:3, with the kernel's bare steps/s above as the ratio's reference;
 * - wall time of one timed `tlb-shootdown` run, 2 VMs of 16 vCPUs on 16 physical CPUs for one
 *   virtual second (a single run: it takes about a minute), with the virtual/wall time ratio.
 */
import { Exhaustive, Litmus, Memory } from "@kvmlab/memory"
import { Campaign, Runner, Scenario } from "@kvmlab/scenarios"
import { Prng, Run, Sim, type Strategy } from "@kvmlab/sim"
import { Effect, Either } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const log = (s: string) => process.stderr.write(s + "\n")

/** One timed run, for work too long to repeat. */
const measure1 = (f: () => number): { ms: number; units: number } => {
  const t0 = process.hrtime.bigint()
  const units = f()
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, units }
}

const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const measure = (f: () => number): { ms: number; units: number } => {
  f() // warm-up
  const samples: Array<{ ms: number; units: number }> = []
  for (let i = 0; i < 3; i++) {
    const t = performance.now()
    const units = f()
    samples.push({ ms: performance.now() - t, units })
  }
  const ms = median(samples.map((s) => s.ms))
  return { ms, units: samples[0]!.units }
}

const LOCS = 16

/** n actors, each alternating loads and stores over 16 locations, TSO, random strategy. */
const memoryWorkload = (n: number, opsPerActor: number) =>
  function*() {
    const mem = Memory.make(yield* Sim.kernel(), { model: "tso" })
    const xs = mem.allocArray("x", LOCS)
    const actors = []
    for (let i = 0; i < n; i++) {
      actors.push(yield* Sim.spawn(`a${i}`, function*() {
        const cpu = yield* mem.attach(`cpu${i}`)
        for (let j = 0; j < opsPerActor; j++) {
          if (j % 2 === 1) yield* cpu.store(xs[(i + j) % LOCS]!, j)
          else yield* cpu.load(xs[j % LOCS]!)
        }
      }))
    }
    for (const a of actors) yield* Sim.join(a)
    yield* mem.quiesce()
  }

/**
 * The same work in plain TypeScript: a seeded scheduler picking among runnable threads and
 * store-buffer drains, loads with forwarding, FIFO buffers. No Effect, no STM: the ceiling.
 */
const plainWorkload = (n: number, opsPerActor: number, seed: number): number => {
  const prng = new Prng.Prng(seed)
  const mem = new Array<number>(LOCS).fill(0)
  const bufs: Array<Array<[number, number]>> = Array.from({ length: n }, () => [])
  const pc = new Array<number>(n).fill(0)
  const runnable: Array<number> = []
  let steps = 0
  let sink = 0
  for (;;) {
    runnable.length = 0
    for (let i = 0; i < n; i++) {
      if (pc[i]! < opsPerActor) runnable.push(i)
      if (bufs[i]!.length > 0) runnable.push(n + i)
    }
    if (runnable.length === 0) break
    const c = runnable[prng.int(runnable.length)]!
    steps++
    if (c >= n) {
      const [a, v] = bufs[c - n]!.shift()!
      mem[a] = v
      continue
    }
    const j = pc[c]!++
    if (j % 2 === 1) bufs[c]!.push([(c + j) % LOCS, j])
    else {
      const a = j % LOCS
      const b = bufs[c]!
      let v = mem[a]!
      for (let k = b.length - 1; k >= 0; k--) {
        if (b[k]![0] === a) {
          v = b[k]![1]
          break
        }
      }
      sink += v
    }
  }
  return steps + (sink & 0)
}

const kernel = (n: number) => {
  const ops = Math.floor(200_000 / n)
  log(`kernel: ${n} actors x ${ops} memory operations`)
  let seed = 0
  const k = measure(() => Run.runSync(memoryWorkload(n, ops), { seed: seed++ }).steps)
  const p = measure(() => plainWorkload(n, ops, seed++))
  const kernelStepsPerSecond = Math.round((k.units * 1000) / k.ms)
  const plainStepsPerSecond = Math.round((p.units * 1000) / p.ms)
  return {
    actors: n,
    steps: k.units,
    kernelStepsPerSecond,
    plainStepsPerSecond,
    plainOverKernel: Number((plainStepsPerSecond / kernelStepsPerSecond).toFixed(1))
  }
}

const oracle = process.env["KVMLAB_ORACLE"] ?? fileURLToPath(new URL("../../shared/oracle/litmus-x86", import.meta.url))

const litmusSuite = () => {
  if (!existsSync(join(oracle, "expected-tso.jsonl"))) {
    log(`litmus: oracle not found at ${oracle}; skipped`)
    return { skipped: `oracle not found at ${oracle}` }
  }
  const files = readFileSync(join(oracle, "expected-tso.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { file: string }).file)
  log(`litmus: exhaustive engine over ${files.length} tests (parse + check, TSO and SC)`)
  const texts = files.map((f) => [f, readFileSync(join(oracle, "tests", f), "utf8")] as const)
  const run = (model: "tso" | "sc") => () => {
    let states = 0
    for (const [f, text] of texts) {
      const t = Litmus.parse(text, f)
      if (t instanceof Litmus.LitmusParseError) throw new Error(t.message)
      states += Exhaustive.check(t, model).statesVisited
    }
    return states
  }
  const tso = measure(run("tso"))
  const sc = measure(run("sc"))
  const herd7Seconds = 42
  return {
    tests: files.length,
    tsoSeconds: Number((tso.ms / 1000).toFixed(2)),
    scSeconds: Number((sc.ms / 1000).toFixed(2)),
    tsoStatesVisited: tso.units,
    herd7TsoSecondsRecorded: herd7Seconds,
    speedupOverHerd7: Number((herd7Seconds / (tso.ms / 1000)).toFixed(1))
  }
}

const exploreScenario = (name: string, strategy: Strategy.SearchStrategy) => {
  const runs = 1000
  log(`explore: ${name}, ${strategy._tag}, ${runs} runs`)
  const s = Runner.builtin(name)!
  let seed = 1
  let steps = 0
  const m = measure(() => {
    const r = Effect.runSync(Campaign.explore(s, { seed: (seed += runs), runs, strategy }))
    if (r.violations.length > 0) throw new Error(`${name}: unexpected violation ${r.violations[0]!.invariant}`)
    steps = Math.round(r.runsPerSecond > 0 ? (r.stepsPerSecond / r.runsPerSecond) * runs : 0)
    return r.runs
  })
  return {
    scenario: name,
    strategy: strategy._tag,
    runs,
    runsPerSecond: Math.round((m.units * 1000) / m.ms),
    stepsPerSecond: Math.round((steps * 1000) / m.ms)
  }
}

const shootdown = () => {
  log("tlb-shootdown: 2 VMs x 16 vCPUs on 16 physical CPUs, 1 virtual second, timed")
  const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("tlb-shootdown")!, {
    set: [["vms", "2"], ["vcpusPerVm", "16"], ["pcpus", "16"], ["durationNs", "1000000000"], ["flush", "pv"]]
  }))
  let steps = 0
  let records = 0
  const m = measure1(() => {
    const r = Effect.runSync(Runner.run(s, { seed: 1 }))
    if (r.violations.length > 0) throw new Error(`tlb-shootdown: unexpected violation ${r.violations[0]!.invariant}`)
    steps = r.steps
    records = r.metrics.records_per_second ?? 0
    return r.steps
  })
  return {
    scenario: "tlb-shootdown vms=2 vcpusPerVm=16 pcpus=16 flush=pv",
    virtualSeconds: 1,
    wallSeconds: Number((m.ms / 1000).toFixed(2)),
    steps,
    stepsPerSecond: Math.round((steps * 1000) / m.ms),
    virtualOverWall: Number((1000 / m.ms).toFixed(4)),
    recordsPerVirtualSecond: records
  }
}

const kernels = [kernel(8), kernel(256)]
const explores = [
  exploreScenario("request-race", { _tag: "random" }),
  exploreScenario("request-race", { _tag: "pct", depth: 3 }),
  exploreScenario("lockless-walk", { _tag: "random" })
]
const result = {
  machine: { node: process.version, cpus: (await import("node:os")).cpus().length },
  kernel: kernels,
  explore: explores.map((e) => ({ ...e, bareKernelOverScenario: Number((kernels[0]!.kernelStepsPerSecond / e.stepsPerSecond).toFixed(1)) })),
  tlbShootdown: shootdown(),
  litmus: litmusSuite()
}
process.stdout.write(JSON.stringify(result, null, 2) + "\n")
