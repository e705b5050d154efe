import { describe, expect, it } from "@effect/vitest"
import { Prng, ReplayToken, TraceHash } from "../src/index.js"

describe("Prng", () => {
  it("is a pure function of the seed", () => {
    const a = new Prng.Prng(123)
    const b = new Prng.Prng(123)
    const c = new Prng.Prng(124)
    const xs = Array.from({ length: 100 }, () => a.nextU32())
    expect(Array.from({ length: 100 }, () => b.nextU32())).toEqual(xs)
    expect(Array.from({ length: 100 }, () => c.nextU32())).not.toEqual(xs)
  })

  it("int(n) stays in range and covers it roughly uniformly", () => {
    const p = new Prng.Prng(9)
    const counts = [0, 0, 0, 0, 0, 0, 0]
    for (let i = 0; i < 70_000; i++) counts[p.int(7)]!++
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500)
    expect(() => p.int(0)).toThrow(RangeError)
  })

  it("checks seeds", () => {
    expect(Prng.seedProblem(0)).toBeUndefined()
    expect(Prng.seedProblem(4294967295)).toBeUndefined()
    expect(Prng.seedProblem(-1)).toContain("[0, 4294967295]")
    expect(Prng.seedProblem(2 ** 32)).toContain("[0, 4294967295]")
    expect(Prng.seedProblem(1.5)).toContain("integer")
  })
})

describe("TraceHash", () => {
  it("depends on every integer and on order", () => {
    const h = (xs: Array<number>) => {
      const t = new TraceHash.TraceHash()
      for (const x of xs) t.int(x)
      return t.digest()
    }
    expect(h([1, 2, 3])).toBe(h([1, 2, 3]))
    expect(h([1, 2, 3])).not.toBe(h([3, 2, 1]))
    expect(h([2 ** 40])).not.toBe(h([0]))
    expect(h([1, 2, 3])).toMatch(/^[0-9a-f]{16}$/)
  })
})

describe("ReplayToken", () => {
  it("round-trips every field, and stays short for long schedules", () => {
    const data = {
      seed: 4294967295,
      strategy: { _tag: "pct", depth: 3, steps: 37 } as const,
      maxSteps: 1_000_000,
      maxTimeNs: Number.MAX_SAFE_INTEGER,
      digest: "scenario:request-race",
      effectVersion: "3.22.4",
      steps: 5000,
      traceHash: "0123456789abcdef",
      decisions: Array.from({ length: 5000 }, (_, i) => (i * 7) % 9)
    }
    const token = ReplayToken.encode(data)
    expect(token.startsWith("kvl1.")).toBe(true)
    expect(token).toMatch(/^kvl1\.[A-Za-z0-9_-]+$/)
    expect(ReplayToken.decode(token)).toEqual(data)
    expect(token.length).toBeLessThan(1000)
  })

  it("rejects damaged tokens with a reason", () => {
    const bad = ReplayToken.decode("kvl1.AAAA")
    expect(bad).toBeInstanceOf(ReplayToken.InvalidReplayToken)
    expect((bad as ReplayToken.InvalidReplayToken).message).toMatch(/damaged|truncated/)
  })
})
