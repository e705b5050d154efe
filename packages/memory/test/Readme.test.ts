/** The README's minimal simulation, as written there: it must find TSO's relaxed outcome and replay it. */
import { describe, expect, it } from "@effect/vitest"
import { Explore, Run, Sim } from "@kvmlab/sim"
import { Effect } from "effect"
import { Memory } from "../src/index.js"

const sb = function*() {
  const k = yield* Sim.kernel()
  const mem = Memory.make(k, { model: "tso" })
  const [x, y] = [mem.alloc("x"), mem.alloc("y")]
  const thread = (name: string, mine: Memory.Loc, other: Memory.Loc) =>
    Sim.spawn(name, function*() {
      const cpu = yield* mem.attach(name)
      yield* cpu.WRITE_ONCE(mine, 1)
      return yield* cpu.READ_ONCE(other) // no smp_mb() between: TSO lets both read 0
    })
  const [a, b] = [yield* thread("t0", x, y), yield* thread("t1", y, x)]
  const [ra, rb] = [yield* Sim.join(a), yield* Sim.join(b)]
  yield* Sim.check(k, "SB", !(ra._tag === "success" && rb._tag === "success" && ra.value === 0 && rb.value === 0), () => "both read 0")
}

describe("the README's minimal simulation", () => {
  it("runs, finds both-read-0 under swarm, and its token replays on both engines", () => {
    const one = Run.runSync(sb, { seed: 42, strategy: { _tag: "swarm" } })
    expect(one.steps).toBeGreaterThan(0)
    const found = Effect.runSync(Explore.explore(sb, { seed: 1, runs: 1000, strategy: { _tag: "swarm" } }))
    expect(found.violations.map((v) => v.invariant)).toEqual(["SB"])
    for (const engine of ["fast", "effect"] as const) {
      const again = Effect.runSync(Run.replay(sb, found.violations[0]!.replay, { engine }))
      expect(again.violation?.message).toBe("both read 0")
    }
  })
})
