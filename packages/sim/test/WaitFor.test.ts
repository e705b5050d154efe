import { describe, expect, it } from "@effect/vitest"
import { Run, Sim } from "@kvmlab/sim"
import { Effect } from "effect"

describe("Sim.waitFor", () => {
  it("times out at the deadline, or returns early when woken", () => {
    const program = Effect.gen(function*() {
      const q = Sim.makeWaitQueue("q")
      const lonely = yield* Sim.spawn("lonely", Effect.gen(function*() {
        const timedOut = yield* Sim.waitFor(Sim.makeWaitQueue("nobody"), 100)
        return [timedOut, yield* Sim.nowNs] as const
      }))
      const woken = yield* Sim.spawn("woken", Effect.gen(function*() {
        const timedOut = yield* Sim.waitFor(q, 1_000)
        return [timedOut, yield* Sim.nowNs] as const
      }))
      yield* Effect.sleep("250 nanos")
      yield* Sim.wakeAll(q)
      const a = yield* lonely.join
      const b = yield* woken.join
      // The stale timeout of the woken actor must not fire again later.
      yield* Effect.sleep("2 micros")
      return [a, b]
    })
    const r = Run.runSync(program, { seed: 1 })
    expect(r.violation).toBeUndefined()
    const [a, b] = r.exit?._tag === "Success" ? r.exit.value : []
    expect(a?._tag === "Success" && a.value).toEqual([true, 100])
    expect(b?._tag === "Success" && b.value).toEqual([false, 250])
  })
})
