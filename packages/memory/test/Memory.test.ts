import { describe, expect, it } from "@effect/vitest"
import { Explore, Run, Sim } from "@kvmlab/sim"
import { Effect, Exit, STM, TRef } from "effect"
import { Cpu, Memory, Seqcount, Spinlock } from "../src/index.js"
import { StmBackend } from "../src/internal/backend.js"

const engines = ["fast", "effect"] as const

describe.each(engines)("Memory runtime on the %s engine", (engine) => {
  const run = <A>(p: Sim.Program<A>, o: Run.RunOptions) => Run.run(p, { engine, ...o })

  it.effect("peek and snapshot read what a store wrote (SC)", () =>
    Effect.gen(function*() {
      const r = yield* run(function*() {
        const mem = Memory.make(yield* Sim.kernel(), { model: "sc" })
        const x = mem.alloc("x", 5)
        const cpu = yield* mem.attach("cpu0")
        yield* cpu.store(x, 42)
        return [mem.peek(x), mem.snapshot()] as const
      }, { seed: 1 })
      expect(r.exit).toEqual(Exit.succeed([42, { x: 42 }]))
    }))

  it.effect("TSO: a store is invisible to others until its drain, visible to its own loads at once", () =>
    Effect.gen(function*() {
      const r = yield* run(function*() {
        const mem = Memory.make(yield* Sim.kernel(), { model: "tso", drainLatencyNs: 50 })
        const x = mem.alloc("x")
        const cpu = yield* mem.attach("cpu0")
        yield* cpu.store(x, 1)
        const own = yield* cpu.load(x)
        const inMemory = mem.peek(x)
        const pending = cpu.pending()
        yield* cpu.mfence()
        return { own, inMemory, pending, after: mem.peek(x), drained: mem.drained() }
      }, { seed: 1, strategy: { _tag: "timed" } })
      expect(r.exit).toEqual(Exit.succeed({ own: 1, inMemory: 0, pending: 1, after: 1, drained: true }))
      expect(r.timeNs).toBe(50) // the drain happened after drainLatencyNs of virtual time
    }))

  it.effect("smp_cond_load_acquire is a kernel-visible wait: never satisfied means deadlock, not a hang", () =>
    Effect.gen(function*() {
      const r = yield* run(function*() {
        const mem = Memory.make(yield* Sim.kernel(), { model: "tso" })
        const flag = mem.alloc("flag")
        const cpu = yield* mem.attach("waiter")
        yield* cpu.smp_cond_load_acquire(flag, (v) => v === 1)
      }, { seed: 1 })
      expect(r.outcome).toBe("deadlock")
      expect(r.violation?.message).toContain("flag changed")
    }))

  it.effect("smp_cond_load_acquire wakes when another thread's store drains", () =>
    Effect.gen(function*() {
      for (const seed of [1, 2, 3, 4, 5]) {
        const r = yield* run(function*() {
          const mem = Memory.make(yield* Sim.kernel(), { model: "tso" })
          const flag = mem.alloc("flag")
          const data = mem.alloc("data")
          const consumer = yield* Sim.spawn("consumer", function*() {
            const cpu = yield* mem.attach("consumer")
            yield* cpu.smp_cond_load_acquire(flag, (v) => v === 1)
            return yield* cpu.READ_ONCE(data)
          })
          yield* Sim.spawn("producer", function*() {
            const cpu = yield* mem.attach("producer")
            yield* cpu.WRITE_ONCE(data, 7)
            yield* cpu.smp_store_release(flag, 1) // pairs with smp_cond_load_acquire in the consumer
          })
          return yield* Sim.join(consumer)
        }, { seed })
        expect(r.exit).toEqual(Exit.succeed({ _tag: "success", value: 7 })) // TSO: stores drain in order, so data is seen
      }
    }))

  it.effect("bit operations and atomics follow Linux semantics", () =>
    Effect.gen(function*() {
      const r = yield* run(function*() {
        const mem = Memory.make(yield* Sim.kernel(), { model: "tso" })
        const w = mem.alloc("w")
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
      }, { seed: 1 })
      expect(r.exit).toEqual(Exit.succeed({ t1: true, t2: false, t3: false, b40: true, xv: 2 ** 40 + 1, cx1: true, cx2: false, dt: false, ir: 12, fo: 12, end: 12 | 4 }))
      expect(Cpu.orBits(2 ** 40, 1)).toBe(2 ** 40 + 1)
    }))

  it.effect("operations made before earlier ones are answered keep their own operands (each thread's reused operation objects)", () =>
    Effect.gen(function*() {
      const r = yield* run(function*() {
        const mem = Memory.make(yield* Sim.kernel(), { model: "tso" })
        const x = mem.alloc("x", 1)
        const y = mem.alloc("y", 2)
        const c = yield* mem.attach("c")
        // Made together, yielded later: the second cannot be the first's object.
        const lx = c.READ_ONCE(x)
        const ly = c.READ_ONCE(y)
        const a = yield* lx
        const b = yield* ly
        const bitOfX = c.test_bit(0, x)
        const sx = c.set_bit(3, y)
        const cy = c.cmpxchg(y, 2 + 8, 20)
        yield* sx
        const old = yield* cy
        const bx = yield* bitOfX
        // Answered operations are reused: one after another, every value still right.
        const seq: Array<number> = []
        for (let i = 0; i < 3; i++) {
          yield* c.WRITE_ONCE(x, 100 + i)
          seq.push(yield* c.READ_ONCE(x), yield* c.xchg(y, i))
        }
        return { a, b, bx, old, seq, y: mem.peek(y) }
      }, { seed: 1 })
      expect(r.exit).toEqual(Exit.succeed({ a: 1, b: 2, bx: true, old: 10, seq: [100, 20, 101, 0, 102, 1], y: 2 }))
    }))
})

const counterUnder = (lock: boolean, threads: number, rounds: number) =>
  function*() {
    const k = yield* Sim.kernel()
    const mem = Memory.make(k, { model: "tso" })
    const counter = mem.alloc("counter")
    const spin = Spinlock.make(mem, "lock")
    const actors = []
    for (let t = 0; t < threads; t++) {
      actors.push(yield* Sim.spawn(`t${t}`, function*() {
        const cpu = yield* mem.attach(`cpu${t}`)
        const inc = function*() {
          yield* cpu.WRITE_ONCE(counter, (yield* cpu.READ_ONCE(counter)) + 1)
        }
        for (let i = 0; i < rounds; i++) yield* lock ? Spinlock.withLock(cpu, spin, inc) : inc()
      }))
    }
    for (const a of actors) yield* Sim.join(a)
    yield* mem.quiesce()
    yield* Sim.check(k, "COUNTER", mem.peek(counter) === threads * rounds, () => `counter ${mem.peek(counter)} != ${threads * rounds}`)
  }

describe.each(engines)("Spinlock on the %s engine", (engine) => {
  it.effect("gives mutual exclusion: no lost increments over many schedules", () =>
    Effect.gen(function*() {
      for (const strategy of [{ _tag: "random" }, { _tag: "pct", depth: 3 }] as const) {
        const r = yield* Explore.explore(counterUnder(true, 3, 3), { seed: 1, runs: 300, strategy, engine })
        expect(r.violations).toEqual([])
        expect(r.outcomes.completed).toBe(300)
      }
    }))

  it.effect("without the lock, increments are lost (the check can fail)", () =>
    Effect.gen(function*() {
      const r = yield* Explore.explore(counterUnder(false, 3, 3), { seed: 1, runs: 300, strategy: { _tag: "random" }, engine })
      expect(r.violations[0]?.invariant).toBe("COUNTER")
    }))
})

describe.each(engines)("Seqcount on the %s engine", (engine) => {
  const readerWriter = (useRetry: boolean) =>
    function*() {
      const k = yield* Sim.kernel()
      const mem = Memory.make(k, { model: "tso" })
      const s = Seqcount.make(mem, "seq")
      const a = mem.alloc("a")
      const b = mem.alloc("b")
      const writer = yield* Sim.spawn("writer", function*() {
        const cpu = yield* mem.attach("writer")
        for (let i = 1; i <= 3; i++) {
          yield* Seqcount.write_seqcount_begin(cpu, s)
          yield* cpu.WRITE_ONCE(a, i)
          yield* cpu.WRITE_ONCE(b, i)
          yield* Seqcount.write_seqcount_end(cpu, s)
        }
      })
      const reader = yield* Sim.spawn("reader", function*() {
        const cpu = yield* mem.attach("reader")
        const pair = function*() {
          return [yield* cpu.READ_ONCE(a), yield* cpu.READ_ONCE(b)] as const
        }
        for (let i = 0; i < 3; i++) {
          const [x, y] = yield* useRetry ? Seqcount.read(cpu, s, pair) : pair()
          yield* Sim.check(k, "SEQ-1", x === y, () => `torn read a=${x} b=${y}`)
        }
      })
      yield* Sim.join(writer)
      yield* Sim.join(reader)
    }

  it.effect("readers that retry never see a torn pair", () =>
    Effect.gen(function*() {
      const r = yield* Explore.explore(readerWriter(true), { seed: 1, runs: 500, strategy: { _tag: "random" }, engine })
      expect(r.violations).toEqual([])
    }))

  it.effect("readers that skip the retry do see torn pairs (the check can fail)", () =>
    Effect.gen(function*() {
      const r = yield* Explore.explore(readerWriter(false), { seed: 1, runs: 500, strategy: { _tag: "random" }, engine })
      expect(r.violations[0]?.invariant).toBe("SEQ-1")
    }))
})

describe("the STM backend", () => {
  it.effect("keeps cells in TRefs that STM reads as peek does (guards the TRef internals it relies on)", () =>
    Effect.gen(function*() {
      const b = new StmBackend()
      b.alloc(5)
      b.alloc(7)
      yield* b.writeEffect(1, 42)
      expect([b.peek(0), b.peek(1)]).toEqual([5, 42])
      expect([yield* STM.commit(TRef.get(b.ref(0))), yield* STM.commit(TRef.get(b.ref(1)))]).toEqual([5, 42])
      expect(yield* b.rmwEffect(0, (x) => x + 1)).toBe(5)
      expect(yield* STM.commit(TRef.get(b.ref(0)))).toBe(6)
    }))
})

describe("the memory on both engines", () => {
  it("gives the same trace for the same seed (seqcount and spinlock programs, every strategy)", () => {
    for (const prog of [counterUnder(true, 3, 2), counterUnder(false, 3, 2)]) {
      for (const strategy of [{ _tag: "random" }, { _tag: "swarm" }, { _tag: "timed" }, { _tag: "pct", depth: 3, steps: 80 }] as const) {
        for (let seed = 0; seed < 8; seed++) {
          const f = Run.runSync(prog, { seed, strategy, engine: "fast" })
          const e = Run.runSync(prog, { seed, strategy, engine: "effect" })
          expect([e.traceHash, e.steps, e.outcome, e.violation]).toEqual([f.traceHash, f.steps, f.outcome, f.violation])
        }
      }
    }
  })
})
