import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { Clock, Effect, Exit } from "effect"
import { Mailbox, ReplayToken, Run, Sim } from "../src/index.js"
import { interleave, pingPong } from "./fixtures/programs.js"

const program = Effect.zip(interleave(4, 6), pingPong(5))

describe("Run.run", () => {
  it.effect("the same seed gives the same trace hash, decisions and result", () =>
    Effect.gen(function*() {
      const a = yield* Run.run(program, { seed: 42 })
      const b = yield* Run.run(program, { seed: 42 })
      expect(a.outcome).toBe("completed")
      expect(a.traceHash).toBe(b.traceHash)
      expect(a.decisions).toEqual(b.decisions)
      expect(a.steps).toBe(b.steps)
      expect(a.timeNs).toBe(b.timeNs)
      expect(a.exit).toEqual(b.exit)
      expect(a.timeNs).toBeGreaterThan(0) // virtual sleeps advanced virtual time
    }))

  // Async, never execFileSync: a worker blocked on a child cannot answer the vitest runner.
  it("the same seed gives the same trace hash in a separate process", async () => {
    const tsx = fileURLToPath(new URL("../../../node_modules/.bin/tsx", import.meta.url))
    const script = fileURLToPath(new URL("./fixtures/trace-hash.ts", import.meta.url))
    const traceHashIn = async (seed: number) => (await promisify(execFile)(tsx, [script, String(seed)], { encoding: "utf8" })).stdout.trim()
    const inProcess = Run.runSync(program, { seed: 7 })
    const other = await traceHashIn(7)
    expect(other).toBe(`${inProcess.traceHash} ${inProcess.steps}`)
    const otherSeed = await traceHashIn(8)
    expect(otherSeed).not.toBe(other)
  })

  it.effect("different seeds give different schedules", () =>
    Effect.gen(function*() {
      const hashes = new Set<string>()
      const logs = new Set<string>()
      for (let seed = 0; seed < 20; seed++) {
        const r = yield* Run.run(interleave(4, 6), { seed })
        hashes.add(r.traceHash)
        if (Exit.isSuccess(r.exit!)) logs.add(r.exit.value.join(""))
      }
      expect(hashes.size).toBe(20)
      expect(logs.size).toBe(20)
    }))

  it.effect("a replay token reproduces its run, and a tampered one is caught", () =>
    Effect.gen(function*() {
      const r = yield* Run.run(program, { seed: 99, digest: "fixture" })
      const again = yield* Run.replay(program, r.token, { digest: "fixture" })
      expect(again.traceHash).toBe(r.traceHash)
      expect(again.steps).toBe(r.steps)
      expect(again.decisions).toEqual(r.decisions)
      expect(again.token).toBe(r.token)

      const data = ReplayToken.decode(r.token)
      if (data instanceof ReplayToken.InvalidReplayToken) throw data
      const flipped = ReplayToken.encode({ ...data, decisions: data.decisions.map((d, i) => (i === 3 ? (d === 1 ? 2 : 1) : d)) })
      const diverged = yield* Effect.flip(Run.replay(program, flipped))
      expect(diverged._tag).toBe("ReplayDiverged")

      const wrongProgram = yield* Effect.flip(Run.replay(program, r.token, { digest: "another" }))
      expect(wrongProgram._tag).toBe("InvalidReplayToken")
      const garbage = yield* Effect.flip(Run.replay(program, "kvl1.not-a-token"))
      expect(garbage._tag).toBe("InvalidReplayToken")
      const noPrefix = yield* Effect.flip(Run.replay(program, "hello"))
      expect(noPrefix.message).toContain("kvl1.")
    }))

  it.effect("a replay of a token with the timed strategy also reproduces", () =>
    Effect.gen(function*() {
      const r = yield* Run.run(program, { seed: 5, strategy: { _tag: "timed" } })
      const again = yield* Run.replay(program, r.token)
      expect(again.traceHash).toBe(r.traceHash)
      expect(again.strategy._tag).toBe("timed")
    }))

  it.effect("swarm: deterministic per seed, differs across seeds, and its tokens replay", () =>
    Effect.gen(function*() {
      const a = yield* Run.run(program, { seed: 3, strategy: { _tag: "swarm" } })
      const b = yield* Run.run(program, { seed: 3, strategy: { _tag: "swarm" } })
      expect(a.traceHash).toBe(b.traceHash)
      const again = yield* Run.replay(program, a.token)
      expect(again.traceHash).toBe(a.traceHash)
      expect(again.strategy._tag).toBe("swarm")
      const hashes = new Set<string>()
      for (let seed = 0; seed < 10; seed++) hashes.add((yield* Run.run(interleave(4, 6), { seed, strategy: { _tag: "swarm" } })).traceHash)
      expect(hashes.size).toBe(10)
    }))

  it.effect("bad options name the field", () =>
    Effect.gen(function*() {
      const e1 = yield* Effect.flip(Run.run(program, { seed: -1 }))
      expect(e1).toMatchObject({ _tag: "InvalidRunOptions", field: "seed" })
      const e2 = yield* Effect.flip(Run.run(program, { seed: 1, maxSteps: 0 }))
      expect(e2).toMatchObject({ _tag: "InvalidRunOptions", field: "maxSteps" })
      const e3 = yield* Effect.flip(Run.run(program, { seed: 1.5 }))
      expect(e3).toMatchObject({ _tag: "InvalidRunOptions", field: "seed" })
    }))

  it.effect("a deadlock is reported as one, naming the blocked actors", () =>
    Effect.gen(function*() {
      const deadlock = Effect.gen(function*() {
        const ab = yield* Mailbox.make<number>("a->b", 1)
        const ba = yield* Mailbox.make<number>("b->a", 1)
        const a = yield* Sim.spawn("A", Effect.flatMap(ba.receive, (m) => ab.send(m)))
        const b = yield* Sim.spawn("B", Effect.flatMap(ab.receive, (m) => ba.send(m)))
        yield* a.join
        yield* b.join
      })
      const r = yield* Run.run(deadlock, { seed: 3 })
      expect(r.outcome).toBe("deadlock")
      expect(r.violation?.invariant).toBe("deadlock")
      expect(r.violation?.message).toContain("A on b->a (empty)")
      expect(r.violation?.message).toContain("B on a->b (empty)")
      expect(r.exit).toBeUndefined()
    }))

  it.effect("the canary invariant fails, so the checker is wired", () =>
    Effect.gen(function*() {
      const canary = Effect.gen(function*() {
        let x = 0
        yield* Sim.invariant("canary", () => (x < 3 ? true : `x reached ${x}`))
        const a = yield* Sim.spawn("inc", Effect.gen(function*() {
          for (let i = 0; i < 5; i++) {
            yield* Sim.point
            x++
          }
        }))
        yield* a.join
      })
      const r = yield* Run.run(canary, { seed: 1 })
      expect(r.outcome).toBe("violation")
      expect(r.violation).toMatchObject({ invariant: "canary", message: "x reached 3", actor: "inc" })
      expect(r.invariantChecks["canary"]).toBeGreaterThan(0)
      const again = yield* Run.replay(canary, r.token)
      expect(again.violation).toEqual(r.violation)
    }))

  it.effect("a violation reported by actor code stops the run", () =>
    Effect.gen(function*() {
      const r = yield* Run.run(
        Effect.gen(function*() {
          const a = yield* Sim.spawn("checker", Sim.check("REQ-X", 1 + 1 === 3, () => "arithmetic broke"))
          yield* a.join
          return "unreachable"
        }),
        { seed: 1 }
      )
      expect(r.violation).toMatchObject({ invariant: "REQ-X", message: "arithmetic broke", actor: "checker" })
      expect(r.exit).toBeUndefined()
    }))

  it.effect("an actor that dies is a violation", () =>
    Effect.gen(function*() {
      const r = yield* Run.run(
        Effect.gen(function*() {
          const a = yield* Sim.spawn("boom", Effect.zipRight(Sim.point, Effect.dieMessage("kaput")))
          yield* a.join
        }),
        { seed: 1 }
      )
      expect(r.violation?.invariant).toBe("actor-failed")
      expect(r.violation?.message).toContain("kaput")
    }))

  it.effect("a fiber forked behind the kernel's back is caught at its first point", () =>
    Effect.gen(function*() {
      const r = yield* Run.run(
        Effect.gen(function*() {
          const f = yield* Effect.fork(Sim.point)
          return yield* f.await
        }),
        { seed: 1 }
      )
      expect(r.outcome).toBe("violation")
      expect(r.violation?.invariant).toBe("kernel.not-an-actor")
    }))

  it.effect("liveness monitors: hot too long, and hot at the end, are violations", () =>
    Effect.gen(function*() {
      const tooLong = Effect.gen(function*() {
        const m = yield* Sim.monitor("LIVE-1", { maxHotSteps: 5 })
        yield* m.hot("waiting for a flush")
        for (let i = 0; i < 10; i++) yield* Sim.point
        yield* m.cold
      })
      const r1 = yield* Run.run(tooLong, { seed: 1 })
      expect(r1.violation?.invariant).toBe("LIVE-1")
      expect(r1.violation?.message).toContain("more than 5 steps")

      const cooled = Effect.gen(function*() {
        const m = yield* Sim.monitor("LIVE-1", { maxHotSteps: 50, maxHotNs: 1_000 })
        yield* m.hot("waiting")
        yield* Effect.sleep("500 nanos")
        yield* m.cold
      })
      expect((yield* Run.run(cooled, { seed: 1 })).outcome).toBe("completed")

      const timedOut = Effect.gen(function*() {
        const m = yield* Sim.monitor("LIVE-2", { maxHotNs: 1_000 })
        yield* m.hot("waiting")
        yield* Effect.sleep("2 micros")
        yield* Sim.point
        yield* m.cold
      })
      expect((yield* Run.run(timedOut, { seed: 1 })).violation?.invariant).toBe("LIVE-2")

      const endsHot = Effect.gen(function*() {
        const m = yield* Sim.monitor("LIVE-3", {})
        yield* m.hot("never served")
      })
      const r3 = yield* Run.run(endsHot, { seed: 1 })
      expect(r3.violation?.invariant).toBe("LIVE-3")
      expect(r3.violation?.message).toContain("still hot")
    }))

  it.effect("step and time bounds stop a run", () =>
    Effect.gen(function*() {
      const forever = Effect.forever(Effect.zipRight(Sim.point, Effect.sleep("10 nanos")))
      const r1 = yield* Run.run(forever, { seed: 1, maxSteps: 100 })
      expect(r1.outcome).toBe("step-bound")
      expect(r1.steps).toBe(100)
      const r2 = yield* Run.run(forever, { seed: 1, maxTimeNs: 1_000 })
      expect(r2.outcome).toBe("time-bound")
      expect(r2.timeNs).toBeLessThanOrEqual(1_000)
    }))

  it.effect("virtual time: sleeps wake in time order and the Clock reads virtual nanoseconds", () =>
    Effect.gen(function*() {
      const prog = Effect.gen(function*() {
        const order: Array<string> = []
        const late = yield* Sim.spawn("late", Effect.zipRight(Effect.sleep("3 micros"), Effect.sync(() => order.push("late"))))
        const early = yield* Sim.spawn("early", Effect.zipRight(Effect.sleep("1 micros"), Effect.sync(() => order.push("early"))))
        yield* late.join
        yield* early.join
        return { order, nanos: yield* Clock.currentTimeNanos }
      })
      for (const seed of [1, 2, 3]) {
        const r = yield* Run.run(prog, { seed })
        expect(r.exit).toEqual(Exit.succeed({ order: ["early", "late"], nanos: 3000n }))
      }
    }))

  it.effect("timed strategy: point costs advance virtual time; random ignores them", () =>
    Effect.gen(function*() {
      const prog = Effect.gen(function*() {
        for (let i = 0; i < 10; i++) yield* Sim.pointCost(100)
      })
      expect((yield* Run.run(prog, { seed: 1, strategy: { _tag: "timed" } })).timeNs).toBe(1000)
      expect((yield* Run.run(prog, { seed: 1, strategy: { _tag: "random" } })).timeNs).toBe(0)
    }))

  it.effect("a full mailbox blocks the sender until the receiver takes", () =>
    Effect.gen(function*() {
      const prog = Effect.gen(function*() {
        const mb = yield* Mailbox.make<number>("mb", 1)
        const sent: Array<number> = []
        const sender = yield* Sim.spawn("sender", Effect.gen(function*() {
          for (let i = 0; i < 3; i++) {
            yield* mb.send(i)
            sent.push(i)
          }
        }))
        yield* Effect.sleep("1 micros")
        const before = [...sent] // the sender ran until the mailbox filled
        const got = [yield* mb.receive, yield* mb.receive, yield* mb.receive]
        yield* sender.join
        return { before, got }
      })
      const r = yield* Run.run(prog, { seed: 11 })
      expect(r.exit).toEqual(Exit.succeed({ before: [0], got: [0, 1, 2] }))
    }))
})
