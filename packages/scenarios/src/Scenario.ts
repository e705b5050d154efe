/**
 * The scenario file: a JSON object with the VM shape (`vms`, `vcpusPerVm`, `pcpus`), a virtual
 * duration, the variant, the bug switches, cost overrides and a workload. Decoding rejects a
 * wrong or unknown field with its path and the reason; nothing is guessed.
 */
import { Costs, Variants } from "@kvmlab/kvm"
import { Either, ParseResult, Schema } from "effect"
import { Workload } from "./Mechanisms.js"
import { Count } from "./Schemas.js"

export { Workload } from "./Mechanisms.js"
export type Workload = typeof Workload.Type

export const Scenario = Schema.Struct({
  name: Schema.String.pipe(Schema.minLength(1)),
  description: Schema.optional(Schema.String),
  vms: Count(1, 64),
  vcpusPerVm: Count(1, 256),
  pcpus: Count(1, 1024),
  /** Virtual time bound of a run, in nanoseconds (0: none, the workload ends the run). */
  durationNs: Schema.Int.pipe(Schema.nonNegative()),
  /**
   * Scheduling steps a run may take (default 50,000). Search strategies can starve an actor (a
   * vCPU that never halts outruns the requester); such a run ends at this bound, not a violation.
   */
  maxSteps: Schema.optionalWith(Count(100, 100_000_000), { default: () => 50_000 }),
  variant: Variants.Variant,
  bugs: Schema.Array(Variants.BugName),
  costs: Costs.CostOverrides,
  workload: Workload
})
export type Scenario = typeof Scenario.Type
export type ScenarioEncoded = typeof Scenario.Encoded

/** A scenario that failed to decode: the path of each wrong field and why. */
export class ScenarioError extends Schema.TaggedError<ScenarioError>()("ScenarioError", {
  source: Schema.String,
  issues: Schema.Array(Schema.Struct({ path: Schema.String, message: Schema.String }))
}) {
  override get message(): string {
    return this.issues.map((i) => `${this.source}: ${i.path || "(top level)"}: ${i.message}`).join("\n")
  }
}

const decodeEither = Schema.decodeUnknownEither(Scenario, { errors: "all", onExcessProperty: "error" })

/**
 * One issue per path: a literal union's members each report "Expected X, actual Y"; they are
 * merged into "expected one of X, Y, Z, got W".
 */
const condense = (issues: ReadonlyArray<{ readonly path: string; readonly message: string }>) => {
  const byPath = new Map<string, Array<string>>()
  for (const i of issues) byPath.set(i.path, [...(byPath.get(i.path) ?? []), i.message])
  return [...byPath].map(([path, messages]) => {
    const literal = messages.map((m) => /^Expected (.+), actual (.+)$/.exec(m))
    if (messages.length > 1 && literal.every((m) => m !== null)) {
      // An optional field's union also says "Expected undefined": not worth saying.
      const expected = literal.map((m) => m![1]!).filter((x) => x !== "undefined")
      return { path, message: expected.length === 1 ? `Expected ${expected[0]}, actual ${literal[0]![2]}` : `expected one of ${expected.join(", ")}, got ${literal[0]![2]}` }
    }
    return { path, message: messages.join("; ") }
  })
}

/** What a JSON value is, in words, for "expected an object, got ...". */
const kindOf = (x: unknown): string =>
  x === null ? "null" : Array.isArray(x) ? "an array" : typeof x === "string" ? "a string" : typeof x === "number" ? "a number" : typeof x === "boolean" ? "a boolean" : typeof x

/** Decodes a scenario from parsed JSON; `source` names the file in errors. */
export const decode = (input: unknown, source: string): Either.Either<Scenario, ScenarioError> => {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    // The schema would say "Expected Struct (Encoded side)": true, and no help.
    return Either.left(new ScenarioError({ source, issues: [{ path: "", message: `expected a JSON object (a scenario; kvmlab show request-race prints one), got ${kindOf(input)}` }] }))
  }
  return Either.mapLeft(decodeEither(input), (e) =>
    new ScenarioError({
      source,
      issues: condense(ParseResult.ArrayFormatter.formatErrorSync(e).map((i) => ({ path: i.path.map(String).join("."), message: i.message })))
    }))
}

/**
 * Why text is not JSON, on one line: where (line and column), and what, without the quoted input
 * V8 adds ("Unexpected token 'x', "<the text>" is not valid JSON"), which may be binary or long.
 */
const notJson = (text: string, e: unknown): string => {
  const reason = (e instanceof Error ? e.message : String(e)).replace(/, .*is not valid JSON$/s, "").replace(/ in JSON at position \d+.*$/s, "")
  const at = /at position (\d+)/.exec(e instanceof Error ? e.message : "")
  // "Unexpected end of JSON input" names no position: it is the end of the text.
  const position = at !== null ? Number(at[1]) : /end of JSON input/.test(reason) ? text.length : undefined
  if (position === undefined) return `not JSON: ${reason}`
  const before = text.slice(0, position).split("\n")
  return `not JSON: ${reason} at line ${before.length}, column ${before[before.length - 1]!.length + 1}`
}

/** Parses and decodes JSON text. */
export const parse = (text: string, source: string): Either.Either<Scenario, ScenarioError> => {
  if (text.trim() === "") {
    return Either.left(new ScenarioError({ source, issues: [{ path: "", message: "is empty; a scenario is a JSON object (kvmlab show request-race prints one)" }] }))
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    return Either.left(new ScenarioError({ source, issues: [{ path: "", message: notJson(text, e) }] }))
  }
  return decode(json, source)
}

/** The scenario as a file every command accepts (stable key order, defaults filled in). */
export const encode = (s: Scenario): ScenarioEncoded => Schema.encodeSync(Scenario)(s)

export const toJson = (s: Scenario): string => JSON.stringify(encode(s), null, 2)

/** A compact canonical form: the digest carried by replay tokens, from which `replay` rebuilds the run. */
export const canonical = (s: Scenario): string => JSON.stringify(encode(s))

/** A command-line value: a number, true/false, a JSON array or object, or else the text itself. */
const settingValue = (value: string): unknown => {
  const t = value.trim()
  if (t === "true" || t === "false") return t === "true"
  if (t !== "" && Number.isFinite(Number(t))) return Number(t)
  if (t.startsWith("[") || t.startsWith("{")) {
    try {
      return JSON.parse(t)
    } catch {
      return value
    }
  }
  return value
}

/** Applies command-line overrides: `key=value` variant settings, `vms=3`-style shape settings, and bugs. */
export const withOverrides = (
  s: Scenario,
  o: { readonly set?: ReadonlyArray<readonly [string, string]>; readonly bugs?: ReadonlyArray<string> },
  source = "command line"
): Either.Either<Scenario, ScenarioError> => {
  const base = encode(s) as Record<string, unknown> & { variant: Record<string, unknown>; bugs: ReadonlyArray<string>; workload: Record<string, unknown> }
  const out = { ...base, variant: { ...base.variant }, workload: { ...base.workload }, bugs: [...base.bugs] }
  const issues: Array<{ path: string; message: string }> = []
  for (const [key, value] of o.set ?? []) {
    if (key in Variants.variantValues) out.variant[key] = value
    else if (key === "vms" || key === "vcpusPerVm" || key === "pcpus" || key === "durationNs") {
      const n = Number(value)
      ;(out as Record<string, unknown>)[key] = value.trim() !== "" && Number.isFinite(n) ? n : value
    } else if (key.startsWith("workload.") && key.length > 9 && key !== "workload.kind") {
      // Any workload field (optional ones too): the workload's schema rejects those it lacks.
      out.workload[key.slice(9)] = settingValue(value)
    } else {
      issues.push({
        path: key,
        message: `unknown setting; expected one of ${[...Object.keys(Variants.variantValues), "vms", "vcpusPerVm", "pcpus", "durationNs", ...Object.keys(out.workload).filter((f) => f !== "kind").map((f) => `workload.${f}`)].join(", ")}`
      })
    }
  }
  for (const b of o.bugs ?? []) if (!out.bugs.includes(b)) out.bugs.push(b)
  if (issues.length > 0) return Either.left(new ScenarioError({ source, issues }))
  return decode(out, source)
}
