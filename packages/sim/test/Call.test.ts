import { Cause, Exit } from "effect"
import { describe, expect, it } from "vitest"
import { Run, Sim } from "../src/index.js"

const engines = ["fast", "effect"] as const

/**
 * The same program written with `yield*` only and with calls on the actor's stack (`Sim.call`,
 * `Sim.proc`), nested, with a point or a sleep at every level, values returned up, exceptions
 * thrown up and caught, and finally blocks.
 */
const make = (useCall: boolean) => {
  const log: Array<string> = []
  const via = <A>(g: Sim.Gen<A>): Sim.Yieldable<A> => (useCall ? Sim.call(g) : g)
  function* leaf(name: string, n: number): Sim.Gen<number> {
    const k = yield* Sim.kernel()
    yield* Sim.point(3)
    k.event("leaf", [n])
    if (n % 7 === 3) throw new Error(`leaf ${name} ${n}`)
    return n * 2
  }
  function* middle(name: string, n: number): Sim.Gen<number> {
    let sum = 0
    try {
      for (let i = 0; i < 3; i++) {
        try {
          sum += yield* via(leaf(name, n + i))
        } catch (e) {
          log.push(`${name} caught ${(e as Error).message}`)
          yield* Sim.sleep(5)
        }
      }
    } finally {
      log.push(`${name} middle ${n} finally`)
      yield* Sim.point(1)
    }
    if (n === 8) throw new Error(`middle ${name} ${n}`)
    return sum
  }
  const top = (name: string) =>
    function*(): Sim.Gen<number> {
      let total = 0
      for (let n = 0; n < 10; n++) {
        try {
          total += yield* via(middle(name, n))
        } catch (e) {
          log.push(`${name} top caught ${(e as Error).message}`)
        }
      }
      return total
    }
  const main = function*(): Sim.Gen<Array<number>> {
    const as = [yield* Sim.spawn("a", top("a")), yield* Sim.spawn("b", top("b"))]
    const out: Array<number> = []
    for (const a of as) {
      const e = yield* Sim.join(a)
      out.push(e._tag === "success" ? (e.value as number) : -1)
    }
    return out
  }
  return { main, log }
}

describe("Sim.call: calls on the actor's stack", () => {
  it.each(engines)("give the trace, result and exceptions of yield* (%s engine)", (engine) => {
    for (let seed = 0; seed < 5; seed++) {
      const plain = make(false)
      const called = make(true)
      const p = Run.runSync(plain.main, { seed, engine })
      const c = Run.runSync(called.main, { seed, engine })
      expect(p.outcome).toBe("completed")
      expect(c.traceHash).toBe(p.traceHash)
      expect(c.steps).toBe(p.steps)
      expect(c.exit).toEqual(p.exit)
      expect(called.log).toEqual(plain.log)
      expect(plain.log.some((l) => l.includes("top caught middle"))).toBe(true)
    }
  })

  it("both engines give the same trace", () => {
    for (let seed = 0; seed < 5; seed++) {
      const f = Run.runSync(make(true).main, { seed, engine: "fast" })
      const e = Run.runSync(make(true).main, { seed, engine: "effect" })
      expect(e.traceHash).toBe(f.traceHash)
      expect(e.exit).toEqual(f.exit)
    }
  })

  it.each(engines)("an uncaught exception ends the actor; proc keeps the call site (%s engine)", (engine) => {
    const deep = Sim.proc(function* deep(n: number): Sim.Gen<number> {
      yield* Sim.point()
      if (n === 0) throw new Error("bottom")
      return yield* deep(n - 1)
    })
    const r = Run.runSync(function*() {
      return yield* deep(5)
    }, { seed: 1, engine })
    expect(r.exit !== undefined && Exit.isFailure(r.exit) && (Cause.squash(r.exit.cause) as Error).message).toBe("bottom")
    const ok = Run.runSync(function*() {
      const x: number = yield* Sim.proc(function*(a: number, b: string): Sim.Gen<number> {
        yield* Sim.point()
        return a + b.length
      })(1, "ab")
      return x
    }, { seed: 1, engine })
    expect(ok.exit).toEqual(Exit.succeed(3))
  })
})
