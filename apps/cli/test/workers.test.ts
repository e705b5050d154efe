/**
 * `explore` and `compare` on worker threads give what one worker gives: the same violations at
 * the same run indices with the same tokens, the same counts and distinct traces, the same rows.
 * The engines give the same results too. (Runs real worker threads: the bundled worker.)
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { kvmlab } from "./fixtures/kvmlab.js"

const json = (stdout: string) => {
  const { workers: _w, runsPerSecond: _r, stepsPerSecond: _s, engine: _e, ...rest } = JSON.parse(stdout)
  return rest
}

describe("explore --workers", () => {
  it.live("a violation: the lowest violating run, its token and every count are the same for 1, 2 and 3 workers", () =>
    Effect.gen(function*() {
      // Found at run 953 of 2000: many blocks are dealt, and later ones must not count.
      const args = ["explore", "pv-flush-race", "--bug", "B.readCopyWriteback", "--strategy", "pct", "--runs", "2000", "--json"] as const
      const one = yield* kvmlab(...args, "--workers", "1")
      expect(one.status).toBe(1)
      const first = json(one.stdout)
      expect(first.violations).toHaveLength(1)
      expect(first.runs).toBe(first.violations[0].run + 1)
      expect(first.violations[0].run).toBeGreaterThan(250) // beyond the first block of every worker count
      for (const w of ["2", "3"]) {
        const many = yield* kvmlab(...args, "--workers", w)
        expect(many.status).toBe(1)
        expect(json(many.stdout)).toEqual(first)
      }
    }))

  it.live("no violation, and --all: identical results for 1 and 2 workers", () =>
    Effect.gen(function*() {
      for (const args of [
        ["explore", "lockless-walk", "--runs", "1500", "--json"],
        ["explore", "pv-flush-race", "--bug", "B.preemptedMidEmulation", "--all", "--runs", "1500", "--strategy", "pct", "--json"],
        ["explore", "pv-flush-race", "--bug", "B.readCopyWriteback", "--all", "--runs", "1000", "--strategy", "swarm", "--json"]
      ]) {
        const one = yield* kvmlab(...args, "--workers", "1")
        const two = yield* kvmlab(...args, "--workers", "2")
        expect(two.status).toBe(one.status)
        expect(json(two.stdout)).toEqual(json(one.stdout))
        expect(JSON.parse(two.stdout).workers).toBe(2)
      }
    }))

  it.live("the effect engine explores to the same result", () =>
    Effect.gen(function*() {
      const args = ["explore", "request-race", "--bug", "A.exitingSkipsIpiForWait", "--runs", "300", "--json", "--workers", "1"] as const
      const fast = yield* kvmlab(...args, "--engine", "fast")
      const effect = yield* kvmlab(...args, "--engine", "effect")
      expect(json(effect.stdout)).toEqual(json(fast.stdout))
      expect(JSON.parse(effect.stdout).engine).toBe("effect")
    }))

  it.live("bad --workers and --engine values name the option", () =>
    Effect.gen(function*() {
      const w = yield* kvmlab("explore", "request-race", "--workers", "0")
      expect(w.status).toBe(2)
      expect(w.stderr).toContain("--workers")
      const e = yield* kvmlab("run", "request-race", "--engine", "turbo")
      expect(e.status).toBe(2)
    }))
})

describe("compare --workers", () => {
  it.live("the same rows for 1 and 2 workers, timed and under a search strategy", () =>
    Effect.gen(function*() {
      for (const extra of [[], ["--strategy", "random"]]) {
        const args = ["compare", "pv-flush-race", "--vary", "flush=native,pv", "--seeds", "4", "--json", ...extra]
        const one = yield* kvmlab(...args, "--workers", "1")
        const two = yield* kvmlab(...args, "--workers", "2")
        expect(one.status).toBe(0)
        expect(JSON.parse(two.stdout)).toEqual(JSON.parse(one.stdout))
      }
    }))
})

describe("shrink", () => {
  it.live("kvmlab shrink prints a token that replays to the same invariant in fewer steps; explore --shrink does it for each violation", () =>
    Effect.gen(function*() {
      const found = yield* kvmlab("explore", "request-race", "--bug", "A.kickNoWaitForFlush", "--json", "--workers", "1")
      const v = JSON.parse(found.stdout).violations[0]
      const s = yield* kvmlab("shrink", v.replay, "--json")
      expect(s.status).toBe(1)
      const shrunk = JSON.parse(s.stdout)
      expect(shrunk.invariant).toBe(v.invariant)
      expect(shrunk.stepsBefore).toBe(v.steps)
      expect(shrunk.stepsAfter).toBeLessThan(shrunk.stepsBefore)
      const again = yield* kvmlab("replay", shrunk.token, "--json")
      expect(again.status).toBe(1)
      expect(JSON.parse(again.stdout).violations[0].invariant).toBe(v.invariant)
      const withShrink = yield* kvmlab("explore", "request-race", "--bug", "A.kickNoWaitForFlush", "--json", "--workers", "1", "--shrink")
      expect(JSON.parse(withShrink.stdout).violations[0].shrunk).toEqual(shrunk)
      const bad = yield* kvmlab("shrink", "kvl1.nonsense")
      expect(bad.status).toBe(2)
      expect(bad.stderr).toContain("token")
    }))
})
