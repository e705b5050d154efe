/**
 * The scenario file: a JSON object with the VM shape (`vms`, `vcpusPerVm`, `pcpus`), a virtual
 * duration, the variant, the bug switches, cost overrides and a workload. Decoding rejects a
 * wrong or unknown field with its path and the reason; nothing is guessed.
 */
import { Costs, Variants } from "@kvmlab/kvm"
import { Either, ParseResult, Schema } from "effect"

const Count = (min: number, max: number) => Schema.Int.pipe(Schema.greaterThanOrEqualTo(min), Schema.lessThanOrEqualTo(max))
const Percent = Count(0, 100)

/** A requester against vCPUs entering the guest (§1.3-1.5, A1/A3/A4). */
export const RequestRace = Schema.Struct({
  kind: Schema.Literal("request-race"),
  /** Host threads each zapping a gfn and flushing remote TLBs, then kicking a vCPU with an event. */
  requesters: Count(1, 16),
  rounds: Count(1, 10_000),
  /** Guest-mapped gfns, each through its own shadow page. */
  gfns: Count(1, 64),
  /** Guest accesses per guest-mode interval before a voluntary exit. */
  guestSteps: Count(1, 1000),
  /** Guest steps each vCPU executes in all; then it halts for good (runs end, and PCT's run length is bounded). */
  guestWork: Count(1, 1_000_000),
  /** Share of voluntary exits that are HLT (the rest are port I/O). */
  haltPercent: Percent,
  /** Whether requesters follow each flush with KVM_REQ_EVENT and kvm_vcpu_kick. */
  kicks: Schema.Boolean
})

/** A zapper against a lockless shadow walker (§1.6, A2/A5). */
export const LocklessWalk = Schema.Struct({
  kind: Schema.Literal("lockless-walk"),
  rounds: Count(1, 10_000),
  gfns: Count(1, 64),
  guestSteps: Count(1, 1000),
  guestWork: Count(1, 1_000_000),
  /** Share of guest steps that exit for an MMIO lookup (a lockless walk). */
  mmioPercent: Percent
})

/** A guest TLB shootdown against a target that is preempted and resumed (§2.4-2.6, thread 1). */
export const PvFlushRace = Schema.Struct({
  kind: Schema.Literal("pv-flush-race"),
  /** Shootdowns the initiator makes. */
  rounds: Count(1, 10_000),
  /** Pages of the guest mm. */
  pages: Count(1, 64),
  /** Target guest steps between exits. */
  guestSteps: Count(1, 1000),
  /** Target guest steps in all; then it halts. */
  guestWork: Count(1, 1_000_000),
  /** Chance, at each preemption point of the target's thread, that the host preempts it. */
  preemptPercent: Percent,
  /** Most steps the competing host thread runs when it gets the CPU. */
  hogSteps: Count(1, 1000),
  /**
   * Commands the VMM's I/O thread sends the target's vCPU thread (QEMU's `run_on_cpu`): each
   * signals it out of KVM_RUN to userspace and back, a voluntary `vcpu_put` (default 0).
   */
  vmmCommands: Schema.optionalWith(Count(0, 1000), { default: () => 0 })
})

/** ebizzy -M-like guest threads that unmap memory, on an overcommitted host (§6 N1, thread 1). */
export const TlbShootdown = Schema.Struct({
  kind: Schema.Literal("tlb-shootdown"),
  /** Pages of each guest process. */
  pages: Count(1, 4096),
  /** Guest work per record, in virtual ns. */
  workNs: Count(100, 100_000_000),
  /** Chance per record, in 1/10,000, that the thread unmaps a page (a shootdown). */
  shootdownPerTenThousand: Count(0, 10_000)
})

export const Workload = Schema.Union(RequestRace, LocklessWalk, PvFlushRace, TlbShootdown)
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
      const expected = literal.map((m) => m![1]!).filter((x) => x !== "undefined")
      return { path, message: `expected one of ${expected.join(", ")}, got ${literal[0]![2]}` }
    }
    return { path, message: messages.join("; ") }
  })
}

/** Decodes a scenario from parsed JSON; `source` names the file in errors. */
export const decode = (input: unknown, source: string): Either.Either<Scenario, ScenarioError> =>
  Either.mapLeft(decodeEither(input), (e) =>
    new ScenarioError({
      source,
      issues: condense(ParseResult.ArrayFormatter.formatErrorSync(e).map((i) => ({ path: i.path.map(String).join("."), message: i.message })))
    }))

/** Parses and decodes JSON text. */
export const parse = (text: string, source: string): Either.Either<Scenario, ScenarioError> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    return Either.left(new ScenarioError({ source, issues: [{ path: "", message: `not JSON: ${(e as Error).message}` }] }))
  }
  return decode(json, source)
}

/** The scenario as a file every command accepts (stable key order, defaults filled in). */
export const encode = (s: Scenario): ScenarioEncoded => Schema.encodeSync(Scenario)(s)

export const toJson = (s: Scenario): string => JSON.stringify(encode(s), null, 2)

/** A compact canonical form: the digest carried by replay tokens, from which `replay` rebuilds the run. */
export const canonical = (s: Scenario): string => JSON.stringify(encode(s))

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
    } else if (key.startsWith("workload.") && key.slice(9) in out.workload && key !== "workload.kind") {
      const field = key.slice(9)
      const n = Number(value)
      out.workload[field] = value === "true" ? true : value === "false" ? false : value.trim() !== "" && Number.isFinite(n) ? n : value
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
