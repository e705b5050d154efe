/**
 * The queued rwlock: writers exclude everyone (two fields written under the write lock are never
 * seen torn by a reader, whether it took the lock or won a `read_trylock`; no increment is lost),
 * and every reader and writer gets through.
 */
import { describe, expect, it } from "@effect/vitest"
import { Explore, Sim } from "@kvmlab/sim"
import { Effect } from "effect"
import { Memory, Rwlock } from "../src/index.js"

const engines = ["fast", "effect"] as const

/** Writers set `a` and `b` to the same new value under the write lock; readers check them equal under the read lock. */
const pairUnder = (locked: boolean, readers: number, writers: number, rounds: number) =>
  function*() {
    const k = yield* Sim.kernel()
    const mem = Memory.make(k, { model: "tso" })
    const a = mem.alloc("a")
    const b = mem.alloc("b")
    const lock = Rwlock.make(mem, "lock")
    const actors = []
    for (let t = 0; t < writers; t++) {
      actors.push(yield* Sim.spawn(`w${t}`, function*() {
        const cpu = yield* mem.attach(`w${t}`)
        for (let i = 0; i < rounds; i++) {
          if (locked) yield* Rwlock.write_lock(cpu, lock)
          const v = (yield* cpu.READ_ONCE(a)) + 1
          yield* cpu.WRITE_ONCE(a, v)
          yield* cpu.WRITE_ONCE(b, v)
          if (locked) yield* Rwlock.write_unlock(cpu, lock)
        }
      }))
    }
    for (let t = 0; t < readers; t++) {
      actors.push(yield* Sim.spawn(`r${t}`, function*() {
        const cpu = yield* mem.attach(`r${t}`)
        for (let i = 0; i < rounds; i++) {
          // Even readers block; odd ones try (read_trylock) and skip the round when it fails.
          if (locked && t % 2 === 1) {
            if (!(yield* Rwlock.read_trylock(cpu, lock))) continue
          } else if (locked) yield* Rwlock.read_lock(cpu, lock)
          const x = yield* cpu.READ_ONCE(a)
          const y = yield* cpu.READ_ONCE(b)
          if (locked) yield* Rwlock.read_unlock(cpu, lock)
          yield* Sim.check(k, "TORN", x === y, () => `r${t} read a=${x}, b=${y}`)
        }
      }))
    }
    for (const x of actors) yield* Sim.join(x)
    yield* mem.quiesce()
    yield* Sim.check(k, "LOST", mem.peek(a) === writers * rounds, () => `a is ${mem.peek(a)}, not ${writers * rounds}`)
  }

describe.each(engines)("Rwlock on the %s engine", (engine) => {
  it.effect("writers exclude readers and each other, and every thread gets through (no deadlock, no starvation to the step bound)", () =>
    Effect.gen(function*() {
      for (const strategy of [{ _tag: "random" }, { _tag: "pct", depth: 3 }, { _tag: "swarm" }] as const) {
        const r = yield* Explore.explore(pairUnder(true, 2, 2, 3), { seed: 1, runs: 300, strategy, engine })
        expect(r.violations).toEqual([])
        expect(r.outcomes.completed).toBe(300)
      }
    }))

  it.effect("without the lock, readers see torn pairs or increments are lost (the checks can fail)", () =>
    Effect.gen(function*() {
      const r = yield* Explore.explore(pairUnder(false, 2, 2, 3), { seed: 1, runs: 300, strategy: { _tag: "random" }, engine })
      expect(["TORN", "LOST"]).toContain(r.violations[0]?.invariant)
    }))
})
