import { describe, expect, it } from "@effect/vitest"
import { Explore, Run, Sim } from "@kvmlab/sim"
import { Effect, Exit, STM, TRef } from "effect"
import { Cpu, Memory, Seqcount, Spinlock } from "../src/index.js"

describe("Memory runtime", () => {
  it.effect("peek reads what STM commits (guards the TRef internals it relies on)", () =>
    Effect.gen(function*() {
      const r = yield* Run.run(
        Effect.gen(function*() {
          const mem = yield* Memory.make({ model: "sc" })
          const x = yield* mem.alloc("x", 5)
          const cpu = yield* mem.attach("cpu0")
          yield* cpu.store(x, 42)
          return [mem.peek(x), yield* STM.commit(TRef.get(x.ref)), mem.snapshot()] as const
        }),
        { seed: 1 }
      )
      expect(r.exit).toEqual(Exit.succeed([42, 42, { x: 42 }]))
    }))

  it.effect("TSO: a store is invisible to others until its drain, visible to its own loads at once", () =>
    Effect.gen(function*() {
      const r = yield* Run.run(
        Effect.gen(function*() {
          const mem = yield* Memory.make({ model: "tso", drainLatencyNs: 50 })
          const x = yield* mem.alloc("x")
          const cpu = yield* mem.attach("cpu0")
          yield* cpu.store(x, 1)
          const own = yield* cpu.load(x)
          const inMemory = mem.peek(x)
          const pending = cpu.pending()
          yield* cpu.mfence()
          return { own, inMemory, pending, after: mem.peek(x), drained: mem.drained() }
        }),
        { seed: 1, strategy: { _tag: "timed" } }
      )
      expect(r.exit).toEqual(Exit.succeed({ own: 1, inMemory: 0, pending: 1, after: 1, drained: true }))
      expect(r.timeNs).toBe(50) // the drain happened after drainLatencyNs of virtual time
    }))

  it.effect("smp_cond_load_acquire is a kernel-visible wait: never satisfied means deadlock, not a hang", () =>
    Effect.gen(function*() {
      const r = yield* Run.run(
        Effect.gen(function*() {
          const mem = yield* Memory.make({ model: "tso" })
          const flag = yield* mem.alloc("flag")
          const cpu = yield* mem.attach("waiter")
          yield* cpu.smp_cond_load_acquire(flag, (v) => v === 1)
        }),
        { seed: 1 }
      )
      expect(r.outcome).toBe("deadlock")
      expect(r.violation?.message).toContain("flag changed")
    }))

  it.effect("smp_cond_load_acquire wakes when another thread's store drains", () =>
    Effect.gen(function*() {
      for (const seed of [1, 2, 3, 4, 5]) {
        const r = yield* Run.run(
          Effect.gen(function*() {
            const mem = yield* Memory.make({ model: "tso" })
            const flag = yield* mem.alloc("flag")
            const data = yield* mem.alloc("data")
            const consumer = yield* Sim.spawn("consumer", Effect.gen(function*() {
              const cpu = yield* mem.attach("consumer")
              yield* cpu.smp_cond_load_acquire(flag, (v) => v === 1)
              return yield* cpu.READ_ONCE(data)
            }))
            yield* Sim.spawn("producer", Effect.gen(function*() {
              const cpu = yield* mem.attach("producer")
              yield* cpu.WRITE_ONCE(data, 7)
              yield* cpu.smp_store_release(flag, 1) // pairs with smp_cond_load_acquire in the consumer
            }))
            return yield* consumer.join
          }),
          { seed }
        )
        expect(r.exit).toEqual(Exit.succeed(Exit.succeed(7))) // TSO: stores drain in order, so data is seen
      }
    }))

  it.effect("bit operations and atomics follow Linux semantics", () =>
    Effect.gen(function*() {
      const r = yield* Run.run(
        Effect.gen(function*() {
          const mem = yield* Memory.make({ model: "tso" })
          const w = yield* mem.alloc("w")
          const c = yield* mem.attach("c")
          yield* c.set_bit(3, w)
          yield* c.set_bit(40, w)
          const t1 = yield* c.test_and_clear_bit(3, w)
          const t2 = yield* c.test_and_clear_bit(3, w)
          const t3 = yield* c.test_and_set_bit(0, w)
          const b40 = yield* c.test_bit(40, w)
          const xv = yield* c.xchg(w, 10)
          const cx1 = yield* c.try_cmpxchg(w, 10, 11)
          const cx2 = yield* c.try_cmpxchg(w, 10, 12)
          yield* c.atomic_inc(w)
          const dt = yield* c.atomic_dec_and_test(w)
          const ir = yield* c.atomic_inc_return(w)
          const fo = yield* c.atomic_fetch_or(0b100, w)
          return { t1, t2, t3, b40, xv, cx1, cx2, dt, ir, fo, end: mem.peek(w) }
        }),
        { seed: 1 }
      )
      expect(r.exit).toEqual(Exit.succeed({ t1: true, t2: false, t3: false, b40: true, xv: 2 ** 40 + 1, cx1: true, cx2: false, dt: false, ir: 12, fo: 12, end: 12 | 4 }))
      expect(Cpu.orBits(2 ** 40, 1)).toBe(2 ** 40 + 1)
    }))
})

const counterUnder = (lock: boolean, threads: number, rounds: number) =>
  Effect.gen(function*() {
    const mem = yield* Memory.make({ model: "tso" })
    const counter = yield* mem.alloc("counter")
    const spin = yield* Spinlock.make(mem, "lock")
    const actors = []
    for (let t = 0; t < threads; t++) {
      actors.push(yield* Sim.spawn(`t${t}`, Effect.gen(function*() {
        const cpu = yield* mem.attach(`cpu${t}`)
        for (let i = 0; i < rounds; i++) {
          const inc = Effect.flatMap(cpu.READ_ONCE(counter), (v) => cpu.WRITE_ONCE(counter, v + 1))
          yield* lock ? Spinlock.withLock(cpu, spin, inc) : inc
        }
      })))
    }
    for (const a of actors) yield* a.join
    yield* mem.quiesce
    yield* Sim.check("COUNTER", mem.peek(counter) === threads * rounds, () => `counter ${mem.peek(counter)} != ${threads * rounds}`)
  })

describe("Spinlock", () => {
  it.effect("gives mutual exclusion: no lost increments over many schedules", () =>
    Effect.gen(function*() {
      for (const strategy of [{ _tag: "random" }, { _tag: "pct", depth: 3 }] as const) {
        const r = yield* Explore.explore(counterUnder(true, 3, 3), { seed: 1, runs: 300, strategy })
        expect(r.violations).toEqual([])
        expect(r.outcomes.completed).toBe(300)
      }
    }))

  it.effect("without the lock, increments are lost (the check can fail)", () =>
    Effect.gen(function*() {
      const r = yield* Explore.explore(counterUnder(false, 3, 3), { seed: 1, runs: 300, strategy: { _tag: "random" } })
      expect(r.violations[0]?.invariant).toBe("COUNTER")
    }))
})

describe("Seqcount", () => {
  const readerWriter = (useRetry: boolean) =>
    Effect.gen(function*() {
      const mem = yield* Memory.make({ model: "tso" })
      const s = yield* Seqcount.make(mem, "seq")
      const a = yield* mem.alloc("a")
      const b = yield* mem.alloc("b")
      const writer = yield* Sim.spawn("writer", Effect.gen(function*() {
        const cpu = yield* mem.attach("writer")
        for (let i = 1; i <= 3; i++) {
          yield* Seqcount.write_seqcount_begin(cpu, s)
          yield* cpu.WRITE_ONCE(a, i)
          yield* cpu.WRITE_ONCE(b, i)
          yield* Seqcount.write_seqcount_end(cpu, s)
        }
      }))
      const reader = yield* Sim.spawn("reader", Effect.gen(function*() {
        const cpu = yield* mem.attach("reader")
        const pair = Effect.zip(cpu.READ_ONCE(a), cpu.READ_ONCE(b))
        for (let i = 0; i < 3; i++) {
          const [x, y] = yield* useRetry ? Seqcount.read(cpu, s, pair) : pair
          yield* Sim.check("SEQ-1", x === y, () => `torn read a=${x} b=${y}`)
        }
      }))
      yield* writer.join
      yield* reader.join
    })

  it.effect("readers that retry never see a torn pair", () =>
    Effect.gen(function*() {
      const r = yield* Explore.explore(readerWriter(true), { seed: 1, runs: 500, strategy: { _tag: "random" } })
      expect(r.violations).toEqual([])
    }))

  it.effect("readers that skip the retry do see torn pairs (the check can fail)", () =>
    Effect.gen(function*() {
      const r = yield* Explore.explore(readerWriter(false), { seed: 1, runs: 500, strategy: { _tag: "random" } })
      expect(r.violations[0]?.invariant).toBe("SEQ-1")
    }))
})
