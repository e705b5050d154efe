import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { fileURLToPath } from "node:url"
import { Effect, Exit } from "effect"
import { Mailbox, ReplayToken, Run, Sim } from "../src/index.js"
import { both, interleave } from "./fixtures/programs.js"

const program = both
const engines = ["fast", "effect"] as const

describe.each(engines)("Run.run on the %s engine", (engine) => {
  const run = <A>(p: Sim.Program<A>, o: Run.RunOptions) => Run.run(p, { engine, ...o })

  it.effect("the same seed gives the same trace hash, decisions and result", () =>
    Effect.gen(function*() {
      const a = yield* run(program, { seed: 42 })
      const b = yield* run(program, { seed: 42 })
      expect(a.outcome).toBe("completed")
      expect(a.traceHash).toBe(b.traceHash)
      expect(a.decisions).toEqual(b.decisions)
      expect(a.steps).toBe(b.steps)
      expect(a.timeNs).toBe(b.timeNs)
      expect(a.exit).toEqual(b.exit)
      expect(a.timeNs).toBeGreaterThan(0) // virtual sleeps advanced virtual time
    }))

  it("the same seed gives the same trace hash in a separate process", async () => {
    const tsx = fileURLToPath(new URL("../../../node_modules/.bin/tsx", import.meta.url))
    const script = fileURLToPath(new URL("./fixtures/trace-hash.ts", import.meta.url))
    const inProcess = Run.runSync(program, { seed: 7, engine })
    const other = (await promisify(execFile)(tsx, [script, "7", engine], { encoding: "utf8" })).stdout.trim()
    expect(other).toBe(`${inProcess.traceHash} ${inProcess.steps}`)
    const otherSeed = (await promisify(execFile)(tsx, [script, "8", engine], { encoding: "utf8" })).stdout.trim()
    expect(otherSeed).not.toBe(other)
  })

  it.effect("pauses every pauseEvery steps change nothing in the run; interrupting at a pause stops it", () =>
    Effect.gen(function*() {
      const whole = Run.runSync(interleave(3, 10), { seed: 5, engine })
      const pauses: Array<number> = []
      const paused = yield* run(interleave(3, 10), { seed: 5, pauseEvery: 3, onPause: (at) => Effect.sync(() => pauses.push(at.steps)) })
      expect(paused.traceHash).toBe(whole.traceHash)
      expect(paused.steps).toBe(whole.steps)
      expect(pauses.length).toBe(Math.ceil(whole.steps / 3) - 1)
      expect(pauses.every((s, i) => s === 3 * (i + 1))).toBe(true)
      // Stopped at the second pause: no result, and nothing of the run goes on afterwards.
      let calls = 0
      const stopped = yield* Effect.exit(run(interleave(3, 10), { seed: 5, pauseEvery: 3, onPause: () => (++calls === 2 ? Effect.interrupt : Effect.void) }))
      expect(Exit.isInterrupted(stopped)).toBe(true)
      expect(calls).toBe(2)
      const bad = yield* Effect.flip(run(interleave(3, 10), { seed: 5, pauseEvery: 0 }))
      expect(bad).toMatchObject({ _tag: "InvalidRunOptions", field: "pauseEvery" })
    }))

  it.effect("different seeds give different schedules", () =>
    Effect.gen(function*() {
      const hashes = new Set<string>()
      const logs = new Set<string>()
      for (let seed = 0; seed < 20; seed++) {
        const r = yield* run(interleave(4, 6), { seed })
        hashes.add(r.traceHash)
        if (Exit.isSuccess(r.exit!)) logs.add(r.exit.value.join(""))
      }
      expect(hashes.size).toBe(20)
      expect(logs.size).toBe(20)
    }))

  it.effect("a replay token reproduces its run, and a tampered one is caught", () =>
    Effect.gen(function*() {
      const r = yield* run(program, { seed: 99, digest: "fixture" })
      const again = yield* Run.replay(program, r.token, { digest: "fixture", engine })
      expect(again.traceHash).toBe(r.traceHash)
      expect(again.steps).toBe(r.steps)
      expect(again.decisions).toEqual(r.decisions)
      expect(again.token).toBe(r.token)

      const data = ReplayToken.decode(r.token)
      if (data instanceof ReplayToken.InvalidReplayToken) throw data
      const flipped = ReplayToken.encode({ ...data, decisions: data.decisions.map((d, i) => (i === 3 ? (d === 1 ? 2 : 1) : d)) })
      const diverged = yield* Effect.flip(Run.replay(program, flipped, { engine }))
      expect(diverged._tag).toBe("ReplayDiverged")

      const wrongProgram = yield* Effect.flip(Run.replay(program, r.token, { digest: "another", engine }))
      expect(wrongProgram._tag).toBe("InvalidReplayToken")
      const garbage = yield* Effect.flip(Run.replay(program, "kvl1.not-a-token", { engine }))
      expect(garbage._tag).toBe("InvalidReplayToken")
      const noPrefix = yield* Effect.flip(Run.replay(program, "hello", { engine }))
      expect(noPrefix.message).toContain("kvl1.")
    }))

  it.effect("a replay of a token with the timed strategy also reproduces", () =>
    Effect.gen(function*() {
      const r = yield* run(program, { seed: 5, strategy: { _tag: "timed" } })
      const again = yield* Run.replay(program, r.token, { engine })
      expect(again.traceHash).toBe(r.traceHash)
      expect(again.strategy._tag).toBe("timed")
    }))

  it.effect("swarm: deterministic per seed, differs across seeds, and its tokens replay", () =>
    Effect.gen(function*() {
      const a = yield* run(program, { seed: 3, strategy: { _tag: "swarm" } })
      const b = yield* run(program, { seed: 3, strategy: { _tag: "swarm" } })
      expect(a.traceHash).toBe(b.traceHash)
      const again = yield* Run.replay(program, a.token, { engine })
      expect(again.traceHash).toBe(a.traceHash)
      expect(again.strategy._tag).toBe("swarm")
      const hashes = new Set<string>()
      for (let seed = 0; seed < 10; seed++) hashes.add((yield* run(interleave(4, 6), { seed, strategy: { _tag: "swarm" } })).traceHash)
      expect(hashes.size).toBe(10)
    }))

  it.effect("bad options name the field", () =>
    Effect.gen(function*() {
      const e1 = yield* Effect.flip(run(program, { seed: -1 }))
      expect(e1).toMatchObject({ _tag: "InvalidRunOptions", field: "seed" })
      const e2 = yield* Effect.flip(run(program, { seed: 1, maxSteps: 0 }))
      expect(e2).toMatchObject({ _tag: "InvalidRunOptions", field: "maxSteps" })
      const e3 = yield* Effect.flip(run(program, { seed: 1.5 }))
      expect(e3).toMatchObject({ _tag: "InvalidRunOptions", field: "seed" })
    }))

  it.effect("a deadlock is reported as one, naming the blocked actors", () =>
    Effect.gen(function*() {
      const deadlock = function*() {
        const k = yield* Sim.kernel()
        const ab = Mailbox.make<number>(k, "a->b", 1)
        const ba = Mailbox.make<number>(k, "b->a", 1)
        const a = yield* Sim.spawn("A", function*() {
          yield* ab.send(yield* ba.receive())
        })
        const b = yield* Sim.spawn("B", function*() {
          yield* ba.send(yield* ab.receive())
        })
        yield* Sim.join(a)
        yield* Sim.join(b)
      }
      const r = yield* run(deadlock, { seed: 3 })
      expect(r.outcome).toBe("deadlock")
      expect(r.violation?.invariant).toBe("deadlock")
      expect(r.violation?.message).toContain("A on b->a (empty)")
      expect(r.violation?.message).toContain("B on a->b (empty)")
      expect(r.exit).toBeUndefined()
    }))

  it.effect("the canary invariant fails, so the checker is wired", () =>
    Effect.gen(function*() {
      const canary = function*() {
        const k = yield* Sim.kernel()
        let x = 0
        k.invariant("canary", () => (x < 3 ? true : `x reached ${x}`))
        const a = yield* Sim.spawn("inc", function*() {
          for (let i = 0; i < 5; i++) {
            yield* Sim.point()
            x++
          }
        })
        yield* Sim.join(a)
      }
      const r = yield* run(canary, { seed: 1 })
      expect(r.outcome).toBe("violation")
      expect(r.violation).toMatchObject({ invariant: "canary", message: "x reached 3", actor: "inc" })
      expect(r.invariantChecks["canary"]).toBeGreaterThan(0)
      const again = yield* Run.replay(canary, r.token, { engine })
      expect(again.violation).toEqual(r.violation)
    }))

  it.effect("a violation reported by actor code stops the run", () =>
    Effect.gen(function*() {
      const r = yield* run(function*() {
        const k = yield* Sim.kernel()
        const a = yield* Sim.spawn("checker", () => Sim.check(k, "REQ-X", 1 + 1 === 3, () => "arithmetic broke"))
        yield* Sim.join(a)
        return "unreachable"
      }, { seed: 1 })
      expect(r.violation).toMatchObject({ invariant: "REQ-X", message: "arithmetic broke", actor: "checker" })
      expect(r.invariantChecks["REQ-X"]).toBe(1)
      expect(r.exit).toBeUndefined()
    }))

  it.effect("an actor that throws is a violation naming it", () =>
    Effect.gen(function*() {
      const r = yield* run(function*() {
        const a = yield* Sim.spawn("boom", function*() {
          yield* Sim.point()
          throw new Error("kaput")
        })
        yield* Sim.join(a)
      }, { seed: 1 })
      expect(r.violation?.invariant).toBe("actor-failed")
      expect(r.violation?.message).toBe("actor boom failed: kaput")
    }))

  it.effect("liveness monitors: hot too long, and hot at the end, are violations", () =>
    Effect.gen(function*() {
      const tooLong = function*() {
        const m = (yield* Sim.kernel()).monitor("LIVE-1", { maxHotSteps: 5 })
        m.hot("waiting for a flush")
        for (let i = 0; i < 10; i++) yield* Sim.point()
        m.cold()
      }
      const r1 = yield* run(tooLong, { seed: 1 })
      expect(r1.violation?.invariant).toBe("LIVE-1")
      expect(r1.violation?.message).toContain("more than 5 steps")

      const cooled = function*() {
        const m = (yield* Sim.kernel()).monitor("LIVE-1", { maxHotSteps: 50, maxHotNs: 1_000 })
        m.hot("waiting")
        yield* Sim.sleep(500)
        m.cold()
      }
      expect((yield* run(cooled, { seed: 1 })).outcome).toBe("completed")

      const timedOut = function*() {
        const m = (yield* Sim.kernel()).monitor("LIVE-2", { maxHotNs: 1_000 })
        m.hot("waiting")
        yield* Sim.sleep(2_000)
        yield* Sim.point()
        m.cold()
      }
      expect((yield* run(timedOut, { seed: 1 })).violation?.invariant).toBe("LIVE-2")

      const endsHot = function*() {
        const m = (yield* Sim.kernel()).monitor("LIVE-3", {})
        m.hot("never served")
      }
      const r3 = yield* run(endsHot, { seed: 1 })
      expect(r3.violation?.invariant).toBe("LIVE-3")
      expect(r3.violation?.message).toContain("still hot")
    }))

  it.effect("a fair liveness monitor counts only the steps of the actors that can cool it", () =>
    Effect.gen(function*() {
      // The heater runs on without meeting the obligation: a violation after 5 of its steps,
      // whatever else runs.
      const heaterRunsOn = function*() {
        const k = yield* Sim.kernel()
        const m = k.monitor("LIVE-F", { maxHotSteps: 5, fair: true })
        const busy = yield* Sim.spawn("busy", function*() {
          for (let i = 0; i < 50; i++) yield* Sim.point()
        })
        const heater = yield* Sim.spawn("heater", function*() {
          m.hot("owed")
          for (let i = 0; i < 20; i++) yield* Sim.point()
          m.cold()
        })
        yield* Sim.join(busy)
        yield* Sim.join(heater)
      }
      const r1 = yield* run(heaterRunsOn, { seed: 1 })
      expect(r1.violation?.invariant).toBe("LIVE-F")
      expect(r1.violation?.message).toContain("more than 5 steps of main and heater")

      // The heater is starved (it waits for a slow actor) and cools as soon as it runs again: no
      // violation however many steps the others take, where a plain monitor would report one.
      const starved = (fair: boolean) =>
        function*() {
          const k = yield* Sim.kernel()
          const m = k.monitor("LIVE-F", { maxHotSteps: 5, fair })
          const released = Sim.makeWaitQueue("release")
          let done = false
          const heater = yield* Sim.spawn("heater", function*() {
            m.hot("owed")
            while (!done) yield* Sim.wait(released)
            m.cold()
          })
          const slow = yield* Sim.spawn("slow", function*() {
            for (let i = 0; i < 50; i++) yield* Sim.point()
            done = true
            k.wakeAll(released)
          })
          yield* Sim.join(slow)
          yield* Sim.join(heater)
        }
      expect((yield* run(starved(true), { seed: 1 })).outcome).toBe("completed")
      expect((yield* run(starved(false), { seed: 1 })).violation?.invariant).toBe("LIVE-F")
    }))

  it.effect("step and time bounds stop a run", () =>
    Effect.gen(function*() {
      const forever = function*() {
        for (;;) {
          yield* Sim.point()
          yield* Sim.sleep(10)
        }
      }
      const r1 = yield* run(forever, { seed: 1, maxSteps: 100 })
      expect(r1.outcome).toBe("step-bound")
      expect(r1.steps).toBe(100)
      const r2 = yield* run(forever, { seed: 1, maxTimeNs: 1_000 })
      expect(r2.outcome).toBe("time-bound")
      expect(r2.timeNs).toBeLessThanOrEqual(1_000)
    }))

  it.effect("virtual time: sleeps wake in time order", () =>
    Effect.gen(function*() {
      const prog = function*() {
        const k = yield* Sim.kernel()
        const order: Array<string> = []
        const late = yield* Sim.spawn("late", function*() {
          yield* Sim.sleep(3_000)
          order.push("late")
        })
        const early = yield* Sim.spawn("early", function*() {
          yield* Sim.sleep(1_000)
          order.push("early")
        })
        yield* Sim.join(late)
        yield* Sim.join(early)
        return { order, nanos: k.now }
      }
      for (const seed of [1, 2, 3]) {
        const r = yield* run(prog, { seed })
        expect(r.exit).toEqual(Exit.succeed({ order: ["early", "late"], nanos: 3000 }))
      }
    }))

  it.effect("timed strategy: point costs advance virtual time; random ignores them", () =>
    Effect.gen(function*() {
      const prog = function*() {
        for (let i = 0; i < 10; i++) yield* Sim.point(100)
      }
      expect((yield* run(prog, { seed: 1, strategy: { _tag: "timed" } })).timeNs).toBe(1000)
      expect((yield* run(prog, { seed: 1, strategy: { _tag: "random" } })).timeNs).toBe(0)
    }))

  it.effect("a full mailbox blocks the sender until the receiver takes", () =>
    Effect.gen(function*() {
      const prog = function*() {
        const k = yield* Sim.kernel()
        const mb = Mailbox.make<number>(k, "mb", 1)
        const sent: Array<number> = []
        const sender = yield* Sim.spawn("sender", function*() {
          for (let i = 0; i < 3; i++) {
            yield* mb.send(i)
            sent.push(i)
          }
        })
        yield* Sim.sleep(1_000)
        const before = [...sent] // the sender ran until the mailbox filled
        const got = [yield* mb.receive(), yield* mb.receive(), yield* mb.receive()]
        yield* Sim.join(sender)
        return { before, got }
      }
      const r = yield* run(prog, { seed: 11 })
      expect(r.exit).toEqual(Exit.succeed({ before: [0], got: [0, 1, 2] }))
    }))

  it.effect("an actor behind others on a wait queue times out at its own deadline", () =>
    Effect.gen(function*() {
      // Three actors wait on q with no deadline; a fourth, behind them on q, with a deadline of 1 ns.
      const prog = function*() {
        const k = yield* Sim.kernel()
        const q = Sim.makeWaitQueue("shared")
        for (let i = 0; i < 3; i++) {
          yield* Sim.spawn(`forever${i}`, function*() {
            yield* Sim.wait(q)
          })
        }
        yield* Sim.point()
        yield* Sim.point()
        yield* Sim.point()
        const late = yield* Sim.spawn("deadline", function*() {
          const timedOut = yield* Sim.waitFor(q, 1)
          return [timedOut, k.now] as const
        })
        const exit = yield* Sim.join(late)
        k.wakeAll(q)
        return exit
      }
      for (const strategy of [{ _tag: "random" }, { _tag: "pct", depth: 3, steps: 20 }] as const) {
        for (const seed of [1, 2, 3]) {
          const r = yield* run(prog, { seed, strategy })
          expect(r.violation).toBeUndefined()
          expect(r.exit).toEqual(Exit.succeed({ _tag: "success", value: [true, 1] }))
        }
      }
    }))

  it.effect("waitFor times out at the deadline, or returns early when woken", () =>
    Effect.gen(function*() {
      const prog = function*() {
        const k = yield* Sim.kernel()
        const q = Sim.makeWaitQueue("q")
        const lonely = yield* Sim.spawn("lonely", function*() {
          const timedOut = yield* Sim.waitFor(Sim.makeWaitQueue("nobody"), 100)
          return [timedOut, k.now] as const
        })
        const woken = yield* Sim.spawn("woken", function*() {
          const timedOut = yield* Sim.waitFor(q, 1_000)
          return [timedOut, k.now] as const
        })
        yield* Sim.sleep(250)
        k.wakeAll(q)
        const a = yield* Sim.join(lonely)
        const b = yield* Sim.join(woken)
        // The stale deadline of the woken actor must not fire again later.
        yield* Sim.sleep(2_000)
        return [a, b]
      }
      const r = yield* run(prog, { seed: 1 })
      expect(r.violation).toBeUndefined()
      expect(r.exit).toEqual(Exit.succeed([{ _tag: "success", value: [true, 100] }, { _tag: "success", value: [false, 250] }]))
    }))
})

describe("the two engines", () => {
  it("agree on trace hash, steps, decisions and result for every strategy", () => {
    for (const strategy of [{ _tag: "random" }, { _tag: "swarm" }, { _tag: "timed" }, { _tag: "pct", depth: 3, steps: 60 }] as const) {
      for (let seed = 0; seed < 10; seed++) {
        const f = Run.runSync(program, { seed, strategy, engine: "fast" })
        const e = Run.runSync(program, { seed, strategy, engine: "effect" })
        expect([e.traceHash, e.steps, e.decisions, e.timeNs, e.exit]).toEqual([f.traceHash, f.steps, f.decisions, f.timeNs, f.exit])
        expect(Run.runSync(program, { seed: 0, strategy: { _tag: "replay", token: f.token }, engine: "effect" }).traceHash).toBe(f.traceHash)
      }
    }
  })
})

describe("a replay that does not fit its token says where and why", () => {
  const r = Run.runSync(program, { seed: 99, digest: "fixture" })
  const data = ReplayToken.decode(r.token) as ReplayToken.ReplayTokenData
  const edited = (change: Partial<ReplayToken.ReplayTokenData>) => ReplayToken.encode({ ...data, ...change })
  const flipped = data.decisions.map((d, i) => (i === 3 ? (d === 1 ? 2 : 1) : d))

  it.effect("the step, the actor the token chose and those runnable; and the effect versions", () =>
    Effect.gen(function*() {
      const same = yield* Effect.flip(Run.replay(program, edited({ decisions: flipped })))
      expect(same._tag).toBe("ReplayDiverged")
      expect(same.message).toMatch(/^replay diverged at step \d+: the token chooses actor \d+, runnable are \[[\d, ]+\]$/)
      expect(same).toMatchObject({ tokenEffectVersion: Run.effectVersion(), effectVersion: Run.effectVersion() })
      const older = yield* Effect.flip(Run.replay(program, edited({ decisions: flipped, effectVersion: "3.10.0" })))
      expect(older.message).toMatch(/^replay diverged at step \d+: .* \(the token was made with effect 3\.10\.0, this is \d+\.\d+\.\d+\)$/)
      expect(older).toMatchObject({ tokenEffectVersion: "3.10.0", effectVersion: Run.effectVersion() })
      const atEnd = yield* Effect.flip(Run.replay(program, edited({ traceHash: "0000000000000000", effectVersion: "3.10.0" })))
      expect(atEnd.message).toMatch(/^replay diverged: expected \d+ steps and trace 0000000000000000, got \d+ steps and trace [0-9a-f]+ \(the token was made with effect 3\.10\.0/)
    }))

  it.effect("a token for another program: where the digests part, in one short line", () =>
    Effect.gen(function*() {
      const long = JSON.stringify({ name: "a scenario", padding: "x".repeat(5000), vms: 1 })
      const token = Run.runSync(program, { seed: 1, digest: long }).token
      const e = yield* Effect.flip(Run.replay(program, token, { digest: long.replace('"vms":1', '"vms":2') }))
      expect(e._tag).toBe("InvalidReplayToken")
      expect(e.message).toMatch(/its digest differs from this one's at character 5041: the token has '1}' where this one has '2}'$/)
      expect(e.message.length).toBeLessThan(300)
    }))

  it("empty tokens and a bare prefix are told apart from damaged ones", () => {
    expect((ReplayToken.decode("") as ReplayToken.InvalidReplayToken).message).toBe('the token is empty; a replay token starts with "kvl1."')
    expect((ReplayToken.decode(" kvl1. ") as ReplayToken.InvalidReplayToken).message).toBe('the token has nothing after "kvl1."')
  })
})
