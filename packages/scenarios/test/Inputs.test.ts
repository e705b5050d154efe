/**
 * What a scenario file's reader says about bad input: one issue per wrong field with its path,
 * costs within their stated physical bounds, text that is empty, not JSON (binary bytes kept off
 * the message) or not an object, and an optional field's bound said plainly.
 */
import { describe, expect, it } from "@effect/vitest"
import { Costs } from "@kvmlab/kvm"
import { Runner, Scenario } from "@kvmlab/scenarios"
import { Either } from "effect"

const base = Scenario.encode(Runner.builtin("request-race")!)

/** The issues of `text` read as a scenario file, as `path: message`. */
const issues = (text: string): ReadonlyArray<string> => {
  const r = Runner.fromText(text, "f.json")
  return Either.isLeft(r) ? r.left.issues.map((i) => `${i.path}: ${i.message}`) : []
}

const withCosts = (costs: Record<string, unknown>) => JSON.stringify({ ...base, costs })

describe("costs within stated bounds", () => {
  it("accepts whole nanoseconds from 0 to each bound, and every default", () => {
    expect(issues(withCosts({ ipiSendNs: 0, schedLatencyNs: 1_000_000_000, pleWindowMaxNs: 10_000_000_000 }))).toEqual([])
    expect(issues(withCosts({ ...Costs.defaults }))).toEqual([])
  })

  for (const [value, shown] of [[1e300, "1e+300"], [-1, "-1"], [0.5, "0.5"], [1_000_000_001, "1000000001"], ["800", '"800"']] as const) {
    it(`refuses ipiSendNs ${shown}, naming the field and the bound`, () => {
      expect(issues(withCosts({ ipiSendNs: value }))).toEqual([
        `costs.ipiSendNs: expected whole nanoseconds from 0 to 1000000000 (at most 1 virtual second), got ${shown}`
      ])
    })
  }

  it("pleWindowMaxNs has its own bound (its default is 1.72 s), and each bad cost is its own issue", () => {
    expect(issues(withCosts({ pleWindowMaxNs: 2e10, vmExitNs: -5 }))).toEqual([
      "costs.vmExitNs: expected whole nanoseconds from 0 to 1000000000 (at most 1 virtual second), got -5",
      "costs.pleWindowMaxNs: expected whole nanoseconds from 0 to 10000000000 (at most 10 virtual seconds: UINT_MAX cycles at 0.43 GHz), got 20000000000"
    ])
  })
})

describe("text that is not a scenario", () => {
  it("empty or blank text", () => {
    for (const text of ["", " \n\t"]) expect(issues(text)).toEqual([": is empty; a scenario is a JSON object (kvmlab show request-race prints one)"])
  })

  it("not JSON: where, and no quoted input (which may be binary)", () => {
    expect(issues('{\n  "name": "x",\n  "vms": }')).toEqual([": not JSON: Unexpected token '}'"])
    const [binary] = issues("\u0001\u0002\u00ff\n\u001b[31mred")
    expect(binary).toMatch(/^: not JSON: /)
    expect(binary).not.toContain("red")
    expect(binary).not.toContain("\n")
    expect(issues('{"name": "x", "vms": 1')).toEqual([": not JSON: Expected ',' or '}' after property value at line 1, column 23"])
  })

  it("JSON that is not an object says what it is", () => {
    expect(issues("[]")).toEqual([": expected a JSON object (a scenario; kvmlab show request-race prints one), got an array"])
    expect(issues("null")).toEqual([": expected a JSON object (a scenario; kvmlab show request-race prints one), got null"])
    expect(issues("42")).toEqual([": expected a JSON object (a scenario; kvmlab show request-race prints one), got a number"])
    expect(issues('"request-race"')).toEqual([": expected a JSON object (a scenario; kvmlab show request-race prints one), got a string"])
  })

  it("an optional field's bound is said plainly, not as a one-member choice", () => {
    expect(issues(JSON.stringify({ ...base, maxSteps: 1e12 }))).toEqual(["maxSteps: Expected a number less than or equal to 100000000, actual 1000000000000"])
  })
})
