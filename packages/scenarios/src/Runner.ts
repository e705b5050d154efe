/**
 * Running scenarios: one run (`run`), many (`explore`), a replay token again (`replay`), and a
 * side-by-side of variants (`compare`). The replay token carries the scenario itself (as its
 * digest), so a token alone reproduces the run.
 */
import type { Variants } from "@kvmlab/kvm"
import { ReplayToken, Run, type Sim, Strategy } from "@kvmlab/sim"
import { Effect, Either } from "effect"
import * as Catalogue from "./Catalogue.js"
import { canonical, decode, parse, type Scenario, ScenarioError } from "./Scenario.js"
import type * as Mechanism from "./Mechanism.js"
import * as Mechanisms from "./Mechanisms.js"

export type Metrics = Mechanism.Metrics

/** Checks what the schema cannot: fields that constrain each other, and switches that cannot run here. */
export const validate = (s: Scenario, source: string): Either.Either<Scenario, ScenarioError> => {
  const found = Mechanisms.issues(s)
  return found.length === 0 ? Either.right(s) : Either.left(new ScenarioError({ source, issues: found }))
}

/**
 * Settings that are valid but change nothing in this scenario, as notes for the user (the
 * commands print them on stderr).
 */
export const notes = (s: Scenario): ReadonlyArray<string> => Mechanisms.notes(s)

/** A built-in scenario by name, decoded. */
export const builtin = (name: string): Scenario | undefined => {
  const raw = Catalogue.builtins.find((b) => b.name === name)
  return raw === undefined ? undefined : Either.getOrThrow(decode(raw, name))
}

export const builtinNames = (): ReadonlyArray<string> => Catalogue.builtins.map((b) => b.name)

/** Decodes scenario text (a file's contents) and validates it. */
export const fromText = (text: string, source: string): Either.Either<Scenario, ScenarioError> =>
  Either.flatMap(parse(text, source), (s) => validate(s, source))

type Sink = Mechanism.Sink

/** The simulation program of a scenario. */
export const program = (s: Scenario, sink?: Sink): Sim.Program<Metrics> => Mechanisms.workloadOf(s.workload.kind).program(s, sink)

/** One violation as the commands print it. */
export interface FoundViolation {
  readonly invariant: string
  readonly message: string
  readonly replay: string
  readonly step: number
  readonly timeNs: number
  readonly actor: string
}

export interface ScenarioRun {
  readonly scenario: string
  readonly variant: Variants.Variant
  readonly bugs: ReadonlyArray<string>
  readonly seed: number
  readonly strategy: string
  readonly outcome: string
  readonly traceHash: string
  readonly steps: number
  readonly timeNs: number
  readonly metrics: Metrics
  readonly violations: ReadonlyArray<FoundViolation>
  readonly invariantChecks: Readonly<Record<string, number>>
  readonly token: string
  readonly decisions: ReadonlyArray<number>
  readonly trace: ReadonlyArray<Sim.TraceEvent>
  /** With a trace: the names of the memory locations its loads and stores refer to, by id. */
  readonly locations: ReadonlyArray<string>
}

export interface RunOptions {
  readonly seed: number
  readonly strategy?: Strategy.Strategy
  readonly trace?: boolean
  readonly maxSteps?: number
  /** Default `fast`. */
  readonly engine?: Run.Engine
  /** Follow these decisions where they fit (shrinking); see `Run.RunOptions.guide`. */
  readonly guide?: ReadonlyArray<number>
  /** Called between chunks of a long run (progress, a turn of the event loop); see `Run.RunOptions.onPause`. */
  readonly onPause?: (at: Run.RunProgress) => Effect.Effect<void>
}

/**
 * `maxSteps` bounds runs of the search strategies; a timed run of a scenario with a duration
 * runs to that duration.
 */
export const boundsOf = (s: Scenario, strategy?: Strategy.Strategy) =>
  strategy?._tag === "timed" && s.durationNs > 0
    ? { maxSteps: Number.MAX_SAFE_INTEGER, maxTimeNs: s.durationNs }
    : { maxSteps: s.maxSteps, ...(s.durationNs > 0 ? { maxTimeNs: s.durationNs } : {}) }

const toRun = (s: Scenario, r: Run.RunResult<Metrics>, sink: Sink): ScenarioRun => ({
  scenario: s.name,
  variant: s.variant,
  bugs: s.bugs,
  seed: r.seed,
  strategy: Strategy.format(r.strategy),
  outcome: r.outcome,
  traceHash: r.traceHash,
  steps: r.steps,
  timeNs: r.timeNs,
  metrics: { ...sink.metrics(), steps: r.steps, timeNs: r.timeNs },
  violations: r.violation === undefined
    ? []
    : [{ invariant: r.violation.invariant, message: r.violation.message, replay: r.token, step: r.violation.step, timeNs: r.violation.timeNs, actor: r.violation.actor }],
  invariantChecks: r.invariantChecks,
  get token() {
    return r.token
  },
  decisions: r.decisions,
  trace: r.trace,
  locations: r.trace.length > 0 ? sink.locations?.() ?? [] : []
})

/** Runs a scenario once. The default strategy is `timed`: costs advance virtual time. */
export const run = (s: Scenario, o: RunOptions): Effect.Effect<ScenarioRun, Run.InvalidRunOptions | ReplayToken.InvalidReplayToken | Run.ReplayDiverged> =>
  Effect.suspend(() => {
    const sink: Sink = { metrics: () => ({}) }
    return Effect.map(
      Run.run(program(s, sink), {
        seed: o.seed,
        strategy: o.strategy ?? { _tag: "timed" },
        digest: canonical(s),
        ...boundsOf(s, o.strategy ?? { _tag: "timed" }),
        ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}),
        ...(o.trace !== undefined ? { trace: o.trace } : {}),
        ...(o.engine !== undefined ? { engine: o.engine } : {}),
        ...(o.guide !== undefined ? { guide: o.guide } : {}),
        ...(o.onPause !== undefined ? { onPause: o.onPause } : {})
      }),
      (r) => toRun(s, r, sink)
    )
  })

/** The scenario a replay token was made for. */
export const scenarioOfToken = (token: string): Either.Either<Scenario, ScenarioError | Run.InvalidRunOptions> => {
  const data = ReplayToken.decode(token)
  if (data instanceof ReplayToken.InvalidReplayToken) {
    return Either.left(new ScenarioError({ source: "token", issues: [{ path: "", message: data.message }] }))
  }
  return Either.flatMap(parse(data.digest, "token"), (s) => validate(s, "token"))
}

/** Replays a token, on either engine: the same run, the same trace hash (or a `ReplayDiverged` failure). */
export const replay = (
  token: string,
  o: { readonly trace?: boolean; readonly engine?: Run.Engine; readonly onPause?: (at: Run.RunProgress) => Effect.Effect<void> } = {}
) =>
  Effect.gen(function*() {
    const s = yield* Either.match(scenarioOfToken(token), { onLeft: (e) => Effect.fail(e), onRight: (x) => Effect.succeed(x) })
    const sink: Sink = { metrics: () => ({}) }
    const r = yield* Run.replay(program(s, sink), token, {
      digest: canonical(s),
      ...(o.trace !== undefined ? { trace: o.trace } : {}),
      ...(o.engine !== undefined ? { engine: o.engine } : {}),
      ...(o.onPause !== undefined ? { onPause: o.onPause } : {})
    })
    return toRun(s, r, sink)
  })

/** One row of a comparison: the settings that differ and the mean metrics over the seeds. */
export interface CompareRow {
  readonly variant: Readonly<Record<string, string>>
  readonly metrics: Metrics
  readonly violations: number
}

/** Every combination of the varied settings (the first setting varies slowest). */
export const combinations = (vary: ReadonlyArray<readonly [string, ReadonlyArray<string>]>): Array<Array<readonly [string, string]>> =>
  vary.reduce<Array<Array<readonly [string, string]>>>(
    (acc, [key, values]) => acc.flatMap((prefix) => values.map((v) => [...prefix, [key, v] as const])),
    [[]]
  )
