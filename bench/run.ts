/**
 * `npm run bench`: measured speeds as JSON on stdout (progress on stderr), every comparison a
 * ratio within this one run. The bench is bundled with esbuild first (as the worker threads
 * are), so the code measured is the code that runs in them. Repeated figures are the median of
 * 3 timed runs after a warm-up (5 after 3 for the short kernel runs).
 *
 * - kernel: 8 and 256 actors doing TSO loads and stores, on the fast and the effect engine,
 *   against the same work as a plain TypeScript loop (the limit of this machine);
 * - peer: fast-check's `scheduler()` (re-exported by effect as `FastCheck`) on the 4-actor x
 *   3-round lost-update toy, our fast engine on the same toy, and our explore of `request-race`;
 * - explore: request-race and lockless-walk on both engines (fast over effect);
 * - workers: explore request-race with --workers 1 and --workers 2 through the real bin (worker
 *   threads), with V8's default garbage collector and with --single-threaded-gc (see README);
 * - tlb-shootdown: one virtual second of 2 VMs x 16 vCPUs on 16 physical CPUs, and the cost per
 *   step from 16 to 1,024 vCPUs;
 * - shrink: every A, B and P switch found and shrunk, the steps before and after;
 * - litmus: the exhaustive engine over the 2,595 herd7 tests;
 * - service: kvmlab-service's throughput against one process, its scaling with workers, and its
 *   read latency while a campaign runs (bench/service.ts).
 */
import { Exhaustive, Litmus, Memory } from "@kvmlab/memory"
import { Campaign, Catalogue, Runner, Scenario, Shrink } from "@kvmlab/scenarios"
import { Prng, Run, Sim, type Strategy } from "@kvmlab/sim"
import { Effect, Either } from "effect"
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { cpus } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { peerStepsPerSecond } from "./peer.js"
import { service } from "./service.js"

const root = (() => {
  let dir = fileURLToPath(new URL(".", import.meta.url))
  while (!existsSync(join(dir, "scripts/build.mjs"))) {
    const up = join(dir, "..")
    if (up === dir) throw new Error(`bench: no repository (scripts/build.mjs) above ${fileURLToPath(import.meta.url)}`)
    dir = up
  }
  return dir
})()
const log = (s: string) => process.stderr.write(s + "\n")
const round = (x: number, digits = 2) => Number(x.toFixed(digits))
const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const now = () => Number(process.hrtime.bigint()) / 1e6

/** Median of `n` timed calls after `warm` warm-ups: milliseconds, and the units the call reports. */
const measure = (f: () => number, n = 3, warm = 1): { ms: number; units: number } => {
  for (let i = 0; i < warm; i++) f()
  const samples: Array<{ ms: number; units: number }> = []
  for (let i = 0; i < n; i++) {
    const t = now()
    const units = f()
    samples.push({ ms: now() - t, units })
  }
  return { ms: median(samples.map((s) => s.ms)), units: samples[0]!.units }
}
const perSecond = (m: { ms: number; units: number }) => Math.round((m.units * 1000) / m.ms)

// ------------------------------------------------------------------------- kernel micro

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
 * store-buffer drains, loads with forwarding, FIFO buffers. No engine: the ceiling.
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
  // Short calls (a tenth of a second): five timed after three warm-ups, so the JIT has settled for both.
  const fast = measure(() => Run.runSync(memoryWorkload(n, ops), { seed: seed++, engine: "fast" }).steps, 5, 3)
  const effect = measure(() => Run.runSync(memoryWorkload(n, Math.floor(ops / 10)), { seed: seed++, engine: "effect" }).steps, 5, 3)
  const plain = measure(() => plainWorkload(n, ops, seed++), 5, 3)
  return {
    actors: n,
    fastStepsPerSecond: perSecond(fast),
    effectStepsPerSecond: perSecond(effect),
    plainStepsPerSecond: perSecond(plain),
    plainOverFast: round(perSecond(plain) / perSecond(fast)),
    fastOverEffect: round(perSecond(fast) / perSecond(effect))
  }
}

// ------------------------------------------------------------------------- the peer

/** The peer's toy on our fast engine: 4 actors x 3 rounds of read, point, write +1. */
const toy = function*() {
  let counter = 0
  const actors = []
  for (let i = 0; i < 4; i++) {
    actors.push(yield* Sim.spawn(`a${i}`, function*() {
      for (let r = 0; r < 3; r++) {
        const read = counter
        yield* Sim.point()
        counter = read + 1
      }
    }))
  }
  for (const a of actors) yield* Sim.join(a)
  return counter
}

const exploreRate = (name: string, strategy: Strategy.SearchStrategy, engine: Run.Engine, runs: number, set: ReadonlyArray<readonly [string, string]> = []) => {
  const s = set.length === 0 ? Runner.builtin(name)! : Either.getOrThrow(Scenario.withOverrides(Runner.builtin(name)!, { set }))
  let seed = 1
  let steps = 0
  const m = measure(() => {
    const r = Effect.runSync(Campaign.explore(s, { seed: (seed += runs), runs, strategy, engine }))
    if (r.violations.length > 0) throw new Error(`${name}: unexpected violation ${r.violations[0]!.invariant}`)
    steps = r.steps
    return r.runs
  })
  return { runsPerSecond: perSecond(m), stepsPerSecond: Math.round((steps * 1000) / m.ms) }
}

const peer = async () => {
  log("peer: fast-check scheduler, 4 actors x 3 rounds, 5,000 runs (x4, median of the last 3)")
  const rates: Array<number> = []
  for (let i = 0; i < 4; i++) rates.push((await peerStepsPerSecond(5_000, { seed: 42 + i })).stepsPerSecond)
  const peerSteps = median(rates.slice(1))
  log("peer: the same toy on the fast engine, and explore request-race")
  let seed = 0
  const toyRate = perSecond(measure(() => {
    let steps = 0
    for (let i = 0; i < 5_000; i++) steps += Run.runSync(toy, { seed: seed++ }).steps
    return steps
  }))
  const rr = exploreRate("request-race", { _tag: "random" }, "fast", 10_000)
  return {
    peerToyStepsPerSecond: peerSteps,
    fastToyStepsPerSecond: toyRate,
    fastRequestRaceStepsPerSecond: rr.stepsPerSecond,
    fastRequestRaceRunsPerSecond: rr.runsPerSecond,
    toyOverPeer: round(toyRate / peerSteps),
    requestRaceOverPeer: round(rr.stepsPerSecond / peerSteps)
  }
}

// ------------------------------------------------------------------------- explore, both engines

const explores = () =>
  ([["request-race", { _tag: "random" }], ["request-race", { _tag: "pct", depth: 3 }], ["lockless-walk", { _tag: "random" }]] as const).map(([name, strategy]) => {
    log(`explore: ${name}, ${strategy._tag}, fast and effect`)
    const fast = exploreRate(name, strategy, "fast", 5_000)
    const effect = exploreRate(name, strategy, "effect", 500)
    return { scenario: name, strategy: strategy._tag, fast, effect, fastOverEffect: round(fast.runsPerSecond / effect.runsPerSecond) }
  })

// ------------------------------------------------------------------------- workers

const bin = join(root, "apps/cli/bin/kvmlab.mjs")

const workers = () => {
  const runs = 60_000
  const once = (w: number, flags: ReadonlyArray<string>) => {
    log(`workers: explore request-race --runs ${runs} --workers ${w} ${flags.join(" ")}`)
    const out = JSON.parse(execFileSync(process.execPath, [...flags, bin, "explore", "request-race", "--runs", String(runs), "--workers", String(w), "--json"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }))
    const { runsPerSecond, stepsPerSecond: _s, workers: _w, ...result } = out
    return { runsPerSecond: runsPerSecond as number, result: JSON.stringify(result) }
  }
  const row = (flags: ReadonlyArray<string>) => {
    const one = once(1, flags)
    const two = once(2, flags)
    if (one.result !== two.result) throw new Error("workers: --workers 1 and --workers 2 gave different results")
    return { oneWorkerRunsPerSecond: one.runsPerSecond, twoWorkersRunsPerSecond: two.runsPerSecond, twoOverOne: round(two.runsPerSecond / one.runsPerSecond), identicalResults: true }
  }
  return { runs, defaultGc: row([]), singleThreadedGc: row(["--single-threaded-gc"]) }
}

// ------------------------------------------------------------------------- start-up

/**
 * CPU time of `kvmlab --help` (user + system, the whole process, read by the process itself at
 * exit), the median of 5 starts after one that may rebuild the bundle. Target: under 0.5 s here.
 */
const startup = () => {
  const report = "data:text/javascript,process.on('exit',()=>{const u=process.cpuUsage();process.stderr.write('CPU '+(u.user+u.system)+'\\n')})"
  const once = () => {
    const r = spawnSync(process.execPath, ["--import", report, bin, "--help"], { encoding: "utf8" })
    const m = /CPU (\d+)/.exec(r.stderr)
    if (r.status !== 0 || m === null) throw new Error(`startup: kvmlab --help failed: ${r.stderr}`)
    return Number(m[1]) / 1e6
  }
  log("startup: kvmlab --help, CPU time")
  once()
  const cpuSeconds = median(Array.from({ length: 5 }, once))
  return { command: "kvmlab --help", cpuSeconds: round(cpuSeconds, 3), target: "< 0.5 s" }
}

// ------------------------------------------------------------------------- tlb-shootdown

const shootdownRun = (vms: number, vcpusPerVm: number, pcpus: number, durationNs: number) => {
  const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("tlb-shootdown")!, {
    set: [["vms", String(vms)], ["vcpusPerVm", String(vcpusPerVm)], ["pcpus", String(pcpus)], ["durationNs", String(durationNs)], ["flush", "pv"]]
  }))
  const t = now()
  const r = Effect.runSync(Runner.run(s, { seed: 1 }))
  const ms = now() - t
  if (r.violations.length > 0) throw new Error(`tlb-shootdown: unexpected violation ${r.violations[0]!.invariant}`)
  return { ms, steps: r.steps, records: r.metrics["records_per_second"] ?? 0 }
}

const shootdown = () => {
  log("tlb-shootdown: 2 VMs x 16 vCPUs on 16 physical CPUs, 1 virtual second, timed, fast engine")
  const one = shootdownRun(2, 16, 16, 1_000_000_000)
  // 2x overcommit at every size; the virtual duration shrinks as the machine grows, so each run makes millions of steps.
  const sizes = [[16, 2, 8, 8], [64, 2, 32, 32], [256, 2, 128, 128], [1024, 4, 256, 512]] as const
  const scale = sizes.map(([n, vms, per, pcpus]) => {
    log(`tlb-shootdown scale: ${n} vCPUs (${vms} VMs x ${per} on ${pcpus} physical CPUs)`)
    const r = shootdownRun(vms, per, pcpus, Math.round((1e9 * 16) / n))
    return { vcpus: n, vms, vcpusPerVm: per, pcpus, virtualNs: Math.round((1e9 * 16) / n), steps: r.steps, nsPerStep: Math.round((r.ms * 1e6) / r.steps) }
  })
  return {
    scenario: "tlb-shootdown vms=2 vcpusPerVm=16 pcpus=16 flush=pv, 1 virtual second",
    wallSeconds: round(one.ms / 1000),
    steps: one.steps,
    stepsPerSecond: Math.round((one.steps * 1000) / one.ms),
    recordsPerVirtualSecond: one.records,
    scale,
    costPerStepGrowth16To1024: round(scale[scale.length - 1]!.nsPerStep / scale[0]!.nsPerStep)
  }
}

// ------------------------------------------------------------------------- memslots (mechanism C)

const memslots = () => {
  log("memslots: explore mmio-wrap, random, fast, one thread")
  const wrap = exploreRate("mmio-wrap", { _tag: "random" }, "fast", 2_000)
  log("memslots: memslot-stress, 8 vCPUs, 1 virtual second, timed (a guest step is 10 µs of work; an ioctl pair every 100 µs)")
  const base = Either.getOrThrow(Scenario.withOverrides(Runner.builtin("memslot-stress")!, {
    set: [["vcpusPerVm", "8"], ["pcpus", "8"], ["durationNs", "1000000000"],
      ["workload.rounds", "10000"], ["workload.gapNs", "100000"], ["workload.guestWork", "1000000"], ["workload.gfns", "64"], ["workload.memGfns", "56"], ["workload.dummyGfns", "8"]]
  }))
  const s = { ...base, maxSteps: 100_000_000, costs: { ...base.costs, guestAccessNs: 10_000 } }
  const t = now()
  const r = Effect.runSync(Runner.run(s, { seed: 1 }))
  const ms = now() - t
  if (r.violations.length > 0) throw new Error(`memslot-stress: unexpected violation ${r.violations[0]!.invariant}`)
  return {
    mmioWrapExplore: wrap,
    memslotStress: {
      scenario: "memslot-stress vcpusPerVm=8 pcpus=8, 1 virtual second, costs.guestAccessNs=10000, an ioctl pair every 100 µs",
      outcome: r.outcome,
      wallSeconds: round(ms / 1000),
      steps: r.steps,
      stepsPerSecond: Math.round((r.steps * 1000) / ms),
      memslotIoctls: r.metrics["memslot_ioctls"] ?? 0
    }
  }
}

// ------------------------------------------------------------------------- pfncache (mechanism E)

const pfncache = () => {
  log("pfncache: explore gpc-refresh-race and gpc-invalidation-storm, random, fast, one thread")
  return {
    gpcRefreshRaceExplore: exploreRate("gpc-refresh-race", { _tag: "random" }, "fast", 2_000),
    gpcInvalidationStormExplore: exploreRate("gpc-invalidation-storm", { _tag: "random" }, "fast", 500)
  }
}

// ------------------------------------------------------------------------- kvmclock (mechanism D)

const kvmclock = () => {
  log("kvmclock: explore masterclock-storm (updaters=serialised, reader=kernel: the merged kernel's CLK-2 would stop it), random, fast, one thread")
  return {
    masterclockStormExplore: exploreRate("masterclock-storm", { _tag: "random" }, "fast", 1_000, [["updaters", "serialised"], ["reader", "kernel"]]),
    kvmClockTestExplore: exploreRate("kvm-clock-test", { _tag: "random" }, "fast", 1_000, [["reader", "kernel"]])
  }
}

// ------------------------------------------------------------------------- shrink

const shrink = () => {
  log("shrink: every switch case, found by explore (seed 1, 3,000 runs) and shrunk")
  const rows = Catalogue.switchCases.map(({ bug, scenario: name, set, strategy }) => {
    const s = Either.getOrThrow(Scenario.withOverrides(Runner.builtin(name)!, { bugs: [bug], set: [...set] }))
    const v = Effect.runSync(Campaign.explore(s, { seed: 1, runs: 3000, strategy })).violations[0]!
    const t = now()
    const r = Effect.runSync(Shrink.shrink(v.replay))
    return {
      bug,
      scenario: name,
      strategy: strategy._tag,
      foundAtRun: v.run,
      invariant: r.invariant,
      stepsBefore: r.stepsBefore,
      stepsAfter: r.stepsAfter,
      preemptionsBefore: r.preemptionsBefore,
      preemptionsAfter: r.preemptionsAfter,
      changes: r.changes,
      candidates: r.candidates,
      ms: Math.round(now() - t)
    }
  })
  const ratios = rows.map((r) => r.stepsAfter / r.stepsBefore).sort((a, b) => a - b)
  return { rows, medianAfterOverBefore: round((ratios[(ratios.length - 1) >> 1]! + ratios[ratios.length >> 1]!) / 2) }
}

// ------------------------------------------------------------------------- litmus

const oracle = process.env["KVMLAB_ORACLE"] ?? join(root, "../shared/oracle/litmus-x86")

const litmusSuite = () => {
  if (!existsSync(join(oracle, "expected-tso.jsonl"))) {
    log(`litmus: oracle not found at ${oracle}; skipped`)
    return { skipped: `oracle not found at ${oracle}` }
  }
  const files = readFileSync(join(oracle, "expected-tso.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { file: string }).file)
  log(`litmus: exhaustive engine over ${files.length} tests (parse + check, TSO and SC)`)
  const texts = files.map((f) => [f, readFileSync(join(oracle, "tests", f), "utf8")] as const)
  const suite = (model: "tso" | "sc") => () => {
    let states = 0
    for (const [f, text] of texts) {
      const t = Litmus.parse(text, f)
      if (t instanceof Litmus.LitmusParseError) throw new Error(t.message)
      states += Exhaustive.check(t, model).statesVisited
    }
    return states
  }
  const tso = measure(suite("tso"))
  const sc = measure(suite("sc"))
  const herd7Seconds = 42
  return { tests: files.length, tsoSeconds: round(tso.ms / 1000), scSeconds: round(sc.ms / 1000), herd7TsoSecondsRecorded: herd7Seconds, speedupOverHerd7: round(herd7Seconds / (tso.ms / 1000), 1) }
}

const only = process.argv.slice(2)
const want = (k: string) => only.length === 0 || only.includes(k)
const result: Record<string, unknown> = { machine: { node: process.version, cpus: cpus().length } }
if (want("kernel")) result["kernel"] = [kernel(8), kernel(256)]
if (want("peer")) result["peer"] = await peer()
if (want("explore")) result["explore"] = explores()
if (want("workers")) result["workers"] = workers()
if (want("startup")) result["startup"] = startup()
if (want("shootdown")) result["tlbShootdown"] = shootdown()
if (want("memslots")) result["memslots"] = memslots()
if (want("pfncache")) result["pfncache"] = pfncache()
if (want("kvmclock")) result["kvmclock"] = kvmclock()
if (want("shrink")) result["shrink"] = shrink()
if (want("litmus")) result["litmus"] = litmusSuite()
if (want("service")) result["service"] = await service(root, log)
process.stdout.write(JSON.stringify(result, null, 2) + "\n")
