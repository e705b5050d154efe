/**
 * Explores Peterson's lock as written (no violation in any run), then with its smp_mb() removed
 * (MUTEX-1 breaks, and MUTEX-2 with it), and replays each counterexample's token on both engines.
 * Exit 0 when all of that holds, 1 otherwise. Seeds are fixed: the output is the same every time.
 */
import { Explore, ReplayToken, Run, type Strategy } from "@kvmlab/sim"
import { Effect } from "effect"
import { type Bugs, LOOPS, NR_CPUS, program } from "./peterson.js"

const RUNS = 2_000
const problems: Array<string> = []
const expect = (ok: boolean, what: string): void => {
  if (!ok) problems.push(what)
}
const digest = (bugs: Bugs) => `peterson${bugs.noMb ? "+noMb" : ""}`

console.log(`Peterson's lock on x86-TSO: ${NR_CPUS} CPUs, ${LOOPS} critical sections each`)

// 1. The lock as written: no strategy finds a violation, and every run completes.
for (const strategy of [{ _tag: "swarm" }, { _tag: "random" }] satisfies Array<Strategy.SearchStrategy>) {
  const bugs: Bugs = { noMb: false }
  const r = Effect.runSync(Explore.explore(program(bugs), { seed: 1, runs: RUNS, strategy, digest: digest(bugs) }))
  console.log(
    `  correct, ${strategy._tag.padEnd(6)}: ${r.runs} runs, ${r.steps} steps, ${r.distinctTraces} distinct traces, ` +
      `${r.violations.length} violations, ${r.outcomes.completed} completed`
  )
  expect(r.violations.length === 0, `the correct lock broke ${r.violations[0]?.invariant}: ${r.violations[0]?.message}`)
  expect(r.outcomes.completed === RUNS, `the correct lock did not complete every run: ${JSON.stringify(r.outcomes)}`)
}

// 2. Without the smp_mb(): both CPUs can read the other's flag before their own store drained.
const bugs: Bugs = { noMb: true }
const found = Effect.runSync(Explore.explore(program(bugs), { seed: 1, runs: RUNS, strategy: { _tag: "swarm" }, digest: digest(bugs), all: true }))
expect(found.violations.some((v) => v.invariant === "MUTEX-1"), `noMb: MUTEX-1 never broke in ${found.runs} runs`)
for (const v of [...found.violations].sort((a, b) => a.invariant.localeCompare(b.invariant))) {
  console.log(`  noMb, swarm  : ${v.invariant} broken in ${v.count} of ${found.runs} runs; first at run ${v.run} (seed ${v.seed}, ${v.steps} steps)`)
  console.log(`    ${v.message}`)
  console.log(`    replay token: ${v.replay}`)

  // 3. The token replays exactly, on the fast engine and on the Effect-fiber reference.
  const token = ReplayToken.decode(v.replay)
  if (token instanceof ReplayToken.InvalidReplayToken) throw new Error(token.message)
  for (const engine of ["fast", "effect"] as const) {
    const again = Effect.runSync(Effect.either(Run.replay(program(bugs), v.replay, { engine, digest: digest(bugs) })))
    if (again._tag === "Left") {
      problems.push(`replay of ${v.invariant} on ${engine}: ${again.left.message}`)
      continue
    }
    const r = again.right
    const same = r.traceHash === token.traceHash && r.steps === token.steps && r.violation?.message === v.message
    console.log(`    replay, ${engine.padEnd(6)}: trace ${r.traceHash}, ${r.steps} steps, ${r.violation?.invariant}: ${same ? "same run" : "DIFFERENT"}`)
    expect(same, `replay of ${v.invariant} on ${engine} differs: ${r.traceHash} ${r.steps} ${r.violation?.message}`)
  }
}

if (problems.length > 0) {
  for (const p of problems) console.error(`FAIL: ${p}`)
  process.exit(1)
}
console.log("ok: the lock holds with smp_mb(); without it MUTEX-1 breaks, and every counterexample replays on both engines")
