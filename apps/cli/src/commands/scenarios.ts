/**
 * The scenario commands: `list`, `show`, `run`, `explore`, `replay`, `shrink`, `compare`. Each
 * takes a built-in scenario name, a scenario file or a replay token. Exit 0 when no violation was
 * found, 1 when one was, 2 for bad input: one line naming the option, field, token part or file.
 */
import { Args, Command, Options } from "@effect/cli"
import { FileSystem } from "@effect/platform"
import { Costs, Variants } from "@kvmlab/kvm"
import { Campaign, History, Metrics, Perfetto, Runner, Scenario, Shrink } from "@kvmlab/scenarios"
import { Explore, ReplayToken, type Run, type Strategy } from "@kvmlab/sim"
import type { Schemas } from "@kvmlab/api"
import { Clock, Console, Effect, Either, Option, type Scope } from "effect"
import { BAD_INPUT, BadInput, exitWith, FOUND, OK } from "../Exit.js"
import * as Files from "../Files.js"
import * as Inputs from "../Inputs.js"
import * as Progress from "../Progress.js"
import type * as Remote from "../Remote.js"
import { cores, Workers } from "../Workers.js"

const scenarioArg = Args.text({ name: "scenario" }).pipe(Args.withDescription("a built-in scenario name (kvmlab list) or a scenario file"))
const variant = Options.text("variant").pipe(Options.repeated, Options.withDescription("key=value, e.g. flush=pv or extraBarriers=on; repeatable"))
const bug = Options.text("bug").pipe(Options.repeated, Options.withDescription(`a bug switch (${Variants.bugNames.join(", ")}); repeatable`))
const seed = Inputs.integer("seed", 0, 0xffff_ffff).pipe(Options.withDefault(1), Options.withDescription("seed, a 32-bit unsigned integer (base seed for explore and compare)"))
const json = Options.boolean("json").pipe(Options.withDescription("print JSON"))
/** Which engine runs the model: both give the same trace for the same seed. */
export const engine = Inputs.choice("engine", ["fast", "effect"], "engine").pipe(
  Options.withDefault("fast" as const),
  Options.withDescription("fast (default: the kernel steps the model's generators) or effect (the reference: every actor an Effect fiber, state in STM); same results")
)
const workers = Inputs.integer("workers", 1, 256).pipe(
  Options.withDefault(cores()),
  Options.withDescription(`worker threads, 1 to 256 (default: the number of cores, ${cores()}); results do not depend on it`)
)
/** pct's depth; the other strategies have none, so giving it with them is an error rather than ignored. */
const quiet = Options.boolean("quiet").pipe(Options.withDescription("no progress on stderr"))

const depth = Inputs.integer("depth", 1, 64).pipe(Options.optional, Options.withDescription("pct depth, 1 to 64 (default 3); only pct takes it"))

/** The largest scenario file read: the built-ins are about 1 kB, so a bigger file is a mistake (a trace, a binary). */
const MAX_SCENARIO_BYTES = 1 << 20

/** Reads a scenario from a file, or a built-in by name. */
export const load = (ref: string): Effect.Effect<Scenario.Scenario, BadInput, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    // Like existsSync: any error (not only "not found") means there is no file to read.
    const info = yield* Effect.option(fs.stat(ref))
    if (Option.isSome(info)) {
      if (info.value.type === "Directory") return yield* new BadInput({ field: ref, message: "is a directory, not a scenario file" })
      if (info.value.type === "File" && info.value.size > MAX_SCENARIO_BYTES) {
        return yield* new BadInput({ field: ref, message: `is ${(Number(info.value.size) / (1 << 20)).toFixed(1)} MB; a scenario file is a small JSON object (at most 1 MB; kvmlab show request-race prints one)` })
      }
      const text = yield* Effect.mapError(Files.readText(ref), (e) => new BadInput({ field: ref, message: Files.describe(e) }))
      return yield* fromEither(Runner.fromText(text, ref))
    }
    const b = Runner.builtin(ref)
    if (b !== undefined) return b
    return yield* new BadInput({ field: "scenario", message: `no file and no built-in scenario named ${Inputs.quote(ref)}; built-ins: ${Runner.builtinNames().join(", ")}` })
  })

/** Issues as one message: the missing fields together, then each other path and its problem. */
const issuesLine = (issues: ReadonlyArray<{ readonly path: string; readonly message: string }>): string => {
  const missing = issues.filter((i) => i.message === "is missing").map((i) => i.path)
  const rest = issues.filter((i) => i.message !== "is missing").map((i) => (i.path === "" ? i.message : `${i.path}: ${i.message}`))
  return [...(missing.length > 1 ? [`missing fields ${missing.join(", ")}`] : missing.map((p) => `${p}: is missing`)), ...rest].join("; ")
}

const fromEither = <A>(e: Either.Either<A, Scenario.ScenarioError>): Effect.Effect<A, BadInput> =>
  Either.match(e, {
    onLeft: (err) => Effect.fail(new BadInput({ field: err.source, message: issuesLine(err.issues) })),
    onRight: Effect.succeed
  })

const parseSetting = (field: string, s: string): Effect.Effect<readonly [string, string], BadInput> => {
  const i = s.indexOf("=")
  return i <= 0 || s.slice(0, i).trim() === ""
    ? Effect.fail(new BadInput({ field, message: `expected key=value, got ${Inputs.quote(s)}` }))
    : Effect.succeed([s.slice(0, i).trim(), s.slice(i + 1).trim()] as const)
}

/**
 * The scenario with the command line's --variant and --bug applied. A problem is blamed on what
 * caused it: a bug switch that does not fit the scenario on --bug (or on the file, when the file
 * names it), any other on --variant.
 */
const configure = (ref: string, variants: ReadonlyArray<string>, bugs: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const base = yield* load(ref)
    const set = yield* Effect.forEach(variants, (v) => parseSetting("--variant", v))
    for (const b of bugs) {
      if (!(Variants.bugNames as ReadonlyArray<string>).includes(b)) {
        return yield* new BadInput({ field: "--bug", message: `unknown bug switch ${Inputs.quote(b)}; known: ${Variants.bugNames.join(", ")}` })
      }
    }
    const s = yield* fromEither(Scenario.withOverrides(base, { set, bugs }, "--variant"))
    const checked = Runner.validate(s, "--variant")
    if (Either.isLeft(checked)) {
      const [first] = checked.left.issues
      const bug = /^bugs\.(\d+)$/.exec(first!.path)
      const index = bug === null ? -1 : Number(bug[1])
      const field = index < 0 ? "--variant" : index < base.bugs.length ? `${ref}: bugs.${index}` : "--bug"
      return yield* new BadInput({ field, message: index < 0 ? issuesLine(checked.left.issues) : first!.message })
    }
    for (const n of Runner.notes(checked.right)) yield* Console.error(`note: ${n}`)
    return checked.right
  })

const print = (s: string) => Console.log(s)

// ------------------------------------------------------------------ list, show

export const list = Command.make("list", { json }, (o) =>
  Effect.gen(function*() {
    const rows = Runner.builtinNames().map((n) => {
      const s = Runner.builtin(n)!
      return { name: n, kind: s.workload.kind, vms: s.vms, vcpusPerVm: s.vcpusPerVm, pcpus: s.pcpus, description: s.description ?? "" }
    })
    if (o.json) return yield* print(JSON.stringify(rows))
    for (const r of rows) yield* print(`${r.name.padEnd(16)} ${r.description}`)
  })).pipe(Command.withDescription("list the built-in scenarios"))

/** The cost table a scenario runs with: each figure, whether the file overrides it, and its source. */
const costTable = (s: Scenario.Scenario) => {
  const effective = Costs.resolve(s.costs)
  return (Object.keys(effective) as Array<keyof Costs.Costs>).map((name) => ({
    name,
    ns: effective[name],
    overridden: s.costs[name] !== undefined,
    source: s.costs[name] !== undefined ? "this scenario's costs" : Costs.sources[name]
  }))
}

export const show = Command.make("show", {
  scenario: scenarioArg,
  json,
  costs: Options.boolean("costs").pipe(Options.withDescription("print the effective cost table (virtual ns), each figure with its source, instead of the file"))
}, (o) =>
  Effect.gen(function*() {
    const s = yield* load(o.scenario)
    if (o.costs) {
      const rows = costTable(s)
      if (o.json) return yield* print(JSON.stringify(rows))
      const width = Math.max(...rows.map((r) => r.name.length))
      for (const r of rows) yield* print(`${r.name.padEnd(width)}  ${String(r.ns).padStart(12)} ns${r.overridden ? " *" : "  "}  ${r.source}`)
      return yield* print(`(* set by the scenario's costs; the others are the defaults)`)
    }
    yield* print(o.json ? Scenario.canonical(s) : Scenario.toJson(s))
  })).pipe(Command.withDescription("print a scenario as a file every command accepts, or with --costs its effective cost table"))

// ------------------------------------------------------------------ run

const runStrategy = Inputs.choice("strategy", ["timed", "random", "pct", "swarm"], "strategy").pipe(
  Options.withDefault("timed" as const),
  Options.withDescription("timed (costs advance virtual time; default), random, pct or swarm")
)

/** The strategy named on the command line; --depth belongs to pct alone. */
const strategyOf = (name: "timed" | "random" | "pct" | "swarm", depth: Option.Option<number>): Effect.Effect<Strategy.SearchStrategy, BadInput> => {
  if (name === "pct") return Effect.succeed({ _tag: "pct", depth: Option.getOrElse(depth, () => 3) })
  if (Option.isSome(depth)) return Effect.fail(new BadInput({ field: "--depth", message: `--strategy ${name} ignores it; only pct takes a depth` }))
  return Effect.succeed({ _tag: name })
}

/** A failure of the simulation's own option checks, on the option it came from. */
const runOptionsError = (e: Run.InvalidRunOptions) => new BadInput({ field: `--${e.field}`, message: e.message })

/** A run as `run --json` and `replay --json` print it (`run` also names the outcome). */
const runJson = (
  r: Pick<Runner.ScenarioRun, "scenario" | "bugs" | "seed" | "strategy" | "outcome" | "traceHash" | "token" | "metrics"> & {
    readonly variant: Readonly<Record<string, string>>
    readonly violations: ReadonlyArray<Pick<Runner.FoundViolation, "invariant" | "message" | "replay">>
  },
  withOutcome: boolean
) => ({
  scenario: r.scenario,
  variant: r.variant,
  bugs: r.bugs,
  seed: r.seed,
  strategy: r.strategy,
  ...(withOutcome ? { outcome: r.outcome } : {}),
  traceHash: r.traceHash,
  // run's own token: any run, passing or not, replays from it (replay's input is its token).
  ...(withOutcome ? { replay: r.token } : {}),
  metrics: r.metrics,
  metricUnits: Metrics.unitsOf(r.metrics),
  violations: r.violations.map((v) => ({ invariant: v.invariant, message: v.message, replay: v.replay }))
})

/** The longest token printed in a text result; a longer one would fill screens (long runs of many vCPUs make tokens of tens of kB). */
const MAX_PRINTED_TOKEN = 2000

/** The `replay:` line of a result: the token, or where it was written, or why it was not printed. */
const tokenLine = (token: string, written: string | undefined): string =>
  written !== undefined
    ? `replay: written to ${written} (${token.length} characters; kvmlab replay --token-file ${written})`
    : token.length > MAX_PRINTED_TOKEN
    ? `replay: a token of ${token.length} characters, not printed; --token-file FILE writes it (--json prints it)`
    : `replay: ${token}`

const violationLines = (vs: ReadonlyArray<Pick<Runner.FoundViolation, "invariant" | "message" | "step" | "actor" | "replay"> & { readonly run?: number }>, written?: string) =>
  vs.map((v, i) =>
    `VIOLATION ${v.invariant}${v.run !== undefined ? ` (run ${v.run})` : ""} at step ${v.step} by ${v.actor}: ${v.message}\n  ${tokenLine(v.replay, i === 0 ? written : undefined)}`
  ).join("\n")

/** The largest token file read: a token of a billion-step run is far smaller. */
const MAX_TOKEN_FILE_BYTES = 64 << 20

/** --token-file where a command writes a token. */
const tokenFileOut = (what: string) => Options.text("token-file").pipe(Options.withPseudoName("file"), Options.optional, Options.withDescription(`write ${what} to this file (one line)`))

/** Writes `token` to the --token-file, if one was given; gives the file's name. */
const writeToken = (file: Option.Option<string>, token: string | undefined): Effect.Effect<string | undefined, BadInput, FileSystem.FileSystem> =>
  Option.isNone(file) || token === undefined
    ? Effect.succeed(undefined)
    : Effect.flatMap(FileSystem.FileSystem, (fs) =>
      fs.writeFileString(file.value, `${token}\n`).pipe(
        Effect.mapError((e) => new BadInput({ field: `--token-file ${file.value}`, message: Files.describe(e) })),
        Effect.as(file.value)
      ))

/** A token given on the command line, or read from --token-file: exactly one of them. */
const tokenIn = {
  token: Args.text({ name: "token" }).pipe(Args.optional, Args.withDescription("a replay token (or give --token-file)")),
  tokenFile: Options.text("token-file").pipe(Options.withPseudoName("file"), Options.optional, Options.withDescription("read the token from this file (as run --token-file writes it)"))
}

const readToken = (o: { readonly token: Option.Option<string>; readonly tokenFile: Option.Option<string> }): Effect.Effect<string, BadInput, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    if (Option.isSome(o.token) && Option.isSome(o.tokenFile)) return yield* new BadInput({ field: "--token-file", message: "give a token or --token-file, not both" })
    if (Option.isSome(o.token)) return o.token.value
    if (Option.isNone(o.tokenFile)) return yield* new BadInput({ field: "token", message: "missing: give a replay token, or --token-file FILE" })
    const file = o.tokenFile.value
    const fs = yield* FileSystem.FileSystem
    const info = yield* Effect.mapError(fs.stat(file), (e) => new BadInput({ field: `--token-file ${file}`, message: Files.describe(e) }))
    if (info.type === "Directory") return yield* new BadInput({ field: `--token-file ${file}`, message: "is a directory, not a token file" })
    if (info.size > MAX_TOKEN_FILE_BYTES) return yield* new BadInput({ field: `--token-file ${file}`, message: `is ${(Number(info.size) / (1 << 20)).toFixed(1)} MB; a token file holds one token (at most 64 MB)` })
    const text = (yield* Effect.mapError(Files.readText(file), (e) => new BadInput({ field: `--token-file ${file}`, message: Files.describe(e) }))).trim()
    if (text === "") return yield* new BadInput({ field: `--token-file ${file}`, message: "is empty; it should hold one replay token" })
    if (/\s/.test(text)) return yield* new BadInput({ field: `--token-file ${file}`, message: "holds more than one word; a token file holds one replay token on one line" })
    return text
  })

/**
 * The service's client, loaded when a command is given --server: its HTTP client and the API's
 * schemas are a third of the bundle, and every other start would pay for them.
 */
const remote = Effect.promise(() => import("../Remote.js"))

/**
 * Submits a job to the service (its spec made with the loaded client) and follows it to its end,
 * with `progressOf`'s display; gives the job's id and its result, of the kind asked for, or
 * undefined after printing the id (--detach). A job that does not end done is bad input: its
 * state and, when the service says why, the reason.
 */
const remoteJob = <K extends Schemas.JobResult["_tag"]>(
  server: Remote.Server,
  kind: K,
  specOf: (client: typeof Remote) => Schemas.JobSpec,
  o: { readonly json: boolean; readonly detach: boolean },
  progressOf: (runsTotal: number) => Effect.Effect<Progress.Progress, never, Progress.Reporter | Scope.Scope>
) =>
  Effect.gen(function*() {
    const client = yield* remote
    const job = yield* client.submit(server, specOf(client))
    if (o.detach) {
      yield* print(o.json ? JSON.stringify({ server: server.url, job: job.id }) : `submitted ${job.id} to ${server.url}: kvmlab jobs ${job.id} --server ${server.url}`)
      return undefined
    }
    const progress = yield* progressOf(job.runsTotal)
    const state = yield* client.follow(server, job.id, progress).pipe(
      Effect.onInterrupt(() => Effect.zipRight(progress.done, Console.error(`kvmlab: stopped following job ${job.id}; it goes on at ${server.url} (kvmlab jobs ${job.id} --server ${server.url})`)))
    )
    yield* progress.done
    if (state !== "done") {
      const { error } = yield* client.job(server, job.id)
      return yield* new BadInput({ field: "job", message: `${job.id} at ${server.url} ended ${state}${error !== undefined ? `: ${error}` : ""}` })
    }
    const r = yield* client.result(server, job.id)
    if (r._tag !== kind) return yield* Effect.dieMessage(`job ${job.id} gave a ${r._tag} result where a ${kind} result was asked for`)
    return { job: job.id, result: r as Extract<Schemas.JobResult, { readonly _tag: K }> }
  })

/** The options of a command that can run on kvmlab-service instead of here. */
const remoteOptions = {
  server: Options.text("server").pipe(Options.withPseudoName("url"), Options.optional, Options.withDescription("submit to kvmlab-service at this URL (e.g. http://127.0.0.1:8420) and follow the job")),
  token: Options.text("token").pipe(Options.optional, Options.withDescription("with --server: the service's bearer token (default: KVMLAB_TOKEN)")),
  detach: Options.boolean("detach").pipe(Options.withDescription("with --server: print the job id and return"))
}

const maxSteps = Inputs.integer("max-steps", 1, Number.MAX_SAFE_INTEGER).pipe(
  Options.optional,
  Options.withDescription(
    "bound on scheduling steps, honoured by every strategy (default: the scenario's maxSteps, 50000 unless the file sets it, for random, pct and swarm; " +
      "none for a timed run of a scenario with a virtual duration, which ends at its durationNs); a run that reaches it ends as step-bound"
  )
)

/** Virtual nanoseconds as a person reads them. */
const virtual = (ns: number): string =>
  ns >= 1e9 ? `${(ns / 1e9).toFixed(3)} s` : ns >= 1e6 ? `${(ns / 1e6).toFixed(3)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(3)} µs` : `${ns} ns`

/**
 * A long run's progress, from its first pause (50,000 steps): in virtual time for a timed run of
 * a scenario with a duration, in steps otherwise; and at every pause a turn of the event loop, so
 * Ctrl-C stops the run within a chunk. `at` is how far it came, for the interrupted message.
 */
const runProgress = (what: string, s: Scenario.Scenario, timed: boolean, stepBound: number, quiet: boolean) =>
  Effect.gen(function*() {
    const reporter = yield* Progress.Reporter
    const progress = quiet
      ? Progress.silent
      : yield* Progress.onFirstTick(reporter.make(timed ? `${what} (virtual µs)` : `${what} (steps)`, timed ? Math.ceil(s.durationNs / 1000) : stepBound, 0))
    const at = { steps: 0, timeNs: 0 }
    const onPause = (p: Run.RunProgress) => {
      at.steps = p.steps
      at.timeNs = p.timeNs
      return Effect.zipRight(progress.tick(timed ? Math.floor(p.timeNs / 1000) : p.steps), Progress.eventLoopTurn)
    }
    const interrupted = (command: string) =>
      Effect.zipRight(
        progress.done,
        Console.error(
          `kvmlab: ${command} ${s.name} interrupted at step ${at.steps}, ${virtual(at.timeNs)} of virtual time` +
            `${timed ? ` (of ${virtual(s.durationNs)})` : ""}; no violation so far; a run does not resume: start it again (a smaller scenario, or --max-steps, ends sooner)`
        )
      )
    return { progress, onPause, interrupted }
  })

/** A run job on kvmlab-service, followed to its end, as `run` prints its result (or, with --detach, its id). */
const remoteRun = (
  server: Remote.Server,
  s: Scenario.Scenario,
  strategy: Strategy.SearchStrategy,
  o: { readonly seed: number; readonly maxSteps: Option.Option<number>; readonly json: boolean; readonly quiet: boolean; readonly detach: boolean }
) =>
  Effect.map(
    remoteJob(server, "run", (client) =>
      client.spec("run", {
        scenario: Scenario.encode(s) as Record<string, unknown>,
        seed: o.seed,
        strategy: strategy._tag,
        ...(strategy._tag === "pct" ? { depth: strategy.depth } : {}),
        ...(Option.isSome(o.maxSteps) ? { maxSteps: o.maxSteps.value } : {})
      }), o, () => Effect.succeed(Progress.silent)),
    (done) => (done === undefined ? undefined : { ...done.result, token: done.result.replay })
  )

export const run = Command.make("run", {
  scenario: scenarioArg,
  variant,
  bug,
  seed,
  json,
  engine,
  strategy: runStrategy,
  depth,
  maxSteps,
  quiet,
  tokenFile: tokenFileOut("the run's replay token"),
  ...remoteOptions
}, (o) =>
  Effect.gen(function*() {
    const strategy = yield* strategyOf(o.strategy, o.depth)
    const s = yield* configure(o.scenario, o.variant, o.bug)
    const timed = strategy._tag === "timed" && s.durationNs > 0
    const stepBound = Option.getOrElse(o.maxSteps, () => Runner.boundsOf(s, strategy).maxSteps)
    if (Option.isNone(o.server) && (o.detach || Option.isSome(o.token))) {
      return yield* new BadInput({ field: o.detach ? "--detach" : "--token", message: "only with --server: a local run has no job to detach from, and no token" })
    }
    if (Option.isSome(o.server) && o.engine === "effect") return yield* new BadInput({ field: "--engine", message: "the service runs the fast engine; --engine effect is for local runs" })
    const local = Effect.gen(function*() {
      const { progress, onPause, interrupted } = yield* runProgress(`run ${s.name}`, s, timed, stepBound, o.quiet)
      const r = yield* Runner.run(s, { seed: o.seed, strategy, engine: o.engine, onPause, ...(Option.isSome(o.maxSteps) ? { maxSteps: o.maxSteps.value } : {}) }).pipe(
        Effect.catchTag("InvalidRunOptions", (e) => Effect.fail(runOptionsError(e))),
        Effect.onInterrupt(() => interrupted("run"))
      )
      yield* progress.done
      return r
    })
    const r = Option.isSome(o.server) ? yield* remoteRun(yield* (yield* remote).serverOf(o.server.value, o.token), s, strategy, o) : yield* local
    if (r === undefined) return // detached: the job id is printed
    const written = yield* writeToken(o.tokenFile, r.token)
    if (o.json) yield* print(JSON.stringify(runJson(r, true)))
    else {
      yield* print(`${r.scenario} (seed ${r.seed}, ${r.strategy}): ${r.outcome} after ${r.steps} steps, ${r.timeNs} ns virtual; trace ${r.traceHash}`)
      if (r.outcome === "step-bound") yield* print(`  the run reached its step bound, ${stepBound} steps (${Option.isSome(o.maxSteps) ? "--max-steps" : "the scenario's maxSteps; raise it with --max-steps"})`)
      for (const [k, v] of Object.entries(r.metrics)) yield* print(`  ${k.padEnd(28)} ${String(v).padStart(12)}  ${Metrics.unitOf(k)}`)
      if (r.violations.length > 0) yield* print(violationLines(r.violations, written))
      // Any run, passing or not, can be replayed, traced and read (replay --history).
      else yield* print(`  ${tokenLine(r.token, written)}`)
    }
    yield* exitWith(r.violations.length > 0 ? FOUND : OK)
  }).pipe(Effect.scoped)).pipe(Command.withDescription("run a scenario once"))

// ------------------------------------------------------------------ explore

/**
 * What an interrupted exploration had done: runs finished, and the runs from the first that are
 * all done (blocks finish out of order on several workers), where it can go on.
 */
export const interruptedExplore = (name: string, seed: number, runs: number, done: number, prefix: number): string =>
  `kvmlab: explore ${name} interrupted after ${done} of ${runs} runs; ` +
  (prefix === 0
    ? `no block of runs was finished: start again with --seed ${seed}`
    : `runs 0-${prefix - 1} (seeds ${seed}-${seed + prefix - 1}) are all done: go on with --seed ${seed + prefix} --runs ${runs - prefix}`)

/** What explore's options say, as both ways of exploring read them. */
interface ExploreOptions {
  readonly seed: number
  readonly runs: number
  readonly all: boolean
  readonly engine: "fast" | "effect"
  readonly workers: number
  readonly quiet: boolean
  readonly json: boolean
  readonly detach: boolean
}

/** An exploration on this machine's worker threads. */
const localExplore = (s: Scenario.Scenario, o: ExploreOptions, strategy: Strategy.SearchStrategy) =>
  Effect.gen(function*() {
    const progress = yield* Progress.unlessQuiet(o.quiet, `explore ${s.name}`, o.runs, 200)
    const dealer = yield* (yield* Workers).dealer(o.workers)
    let done = 0
    let prefix = 0
    const found = yield* Campaign.explore(s, {
      seed: o.seed,
      runs: o.runs,
      strategy,
      all: o.all,
      engine: o.engine,
      dealer,
      onProgress: (d, _, p) => {
        done = d
        prefix = p
        return progress.tick(d)
      }
    }).pipe(
      Effect.catchTag("InvalidRunOptions", (e) => Effect.fail(runOptionsError(e))),
      // Ctrl-C or SIGTERM: what was explored, and how to go on from there (exit 130, main.ts).
      Effect.onInterrupt(() => Effect.zipRight(progress.done, Console.error(interruptedExplore(s.name, o.seed, o.runs, done, prefix))))
    )
    yield* progress.done
    return found
  })

/**
 * An exploration submitted to kvmlab-service: the scenario as configured here (so its tokens are
 * the ones a local run makes), followed to its end; or, with --detach, its job id printed.
 */
const remoteExplore = (server: Remote.Server, s: Scenario.Scenario, o: ExploreOptions, strategy: Strategy.SearchStrategy) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeNanos
    const done = yield* remoteJob(server, "explore", (client) =>
      client.spec("explore", {
        scenario: Scenario.encode(s) as Record<string, unknown>,
        seed: o.seed,
        runs: o.runs,
        strategy: strategy._tag === "timed" ? "random" : strategy._tag,
        ...(strategy._tag === "pct" ? { depth: strategy.depth } : {}),
        all: o.all
      }), o, () => Progress.unlessQuiet(o.quiet, `explore ${s.name} on ${server.url}`, o.runs, 200))
    if (done === undefined) return undefined
    const r = done.result
    const rates = Explore.rates(r.runs, r.steps, Number((yield* Clock.currentTimeNanos) - start))
    return {
      scenario: r.scenario,
      strategy: r.strategy,
      engine: "fast" as const,
      workers: 0,
      server: server.url,
      job: done.job,
      seed: r.seed,
      runs: r.runs,
      steps: r.steps,
      distinctTraces: r.distinctTraces,
      violations: r.violations,
      outcomes: r.outcomes,
      invariantChecks: r.invariantChecks,
      ...rates
    }
  })

export const explore = Command.make("explore", {
  scenario: scenarioArg,
  variant,
  bug,
  seed,
  json,
  strategy: Inputs.choice("strategy", ["random", "pct", "swarm"], "strategy").pipe(Options.withDefault("random" as const), Options.withDescription("random (default), pct or swarm")),
  depth,
  runs: Inputs.integer("runs", 1, 1_000_000_000).pipe(Options.withDefault(2000), Options.withDescription("runs, 1 to 10^9 (default 2000)")),
  all: Options.boolean("all").pipe(Options.withDescription("keep going after a violation; one per invariant")),
  engine,
  workers,
  shrink: Options.boolean("shrink").pipe(Options.withDescription("shrink each violation found to as few steps as possible (see kvmlab shrink)")),
  quiet,
  tokenFile: tokenFileOut("the first violation's replay token (shrunk, with --shrink)"),
  ...remoteOptions
}, (o) =>
  Effect.gen(function*() {
    const strategy = yield* strategyOf(o.strategy, o.depth)
    const s = yield* configure(o.scenario, o.variant, o.bug)
    const server = Option.isSome(o.server) ? Option.some(yield* (yield* remote).serverOf(o.server.value, o.token)) : Option.none()
    if (Option.isNone(server) && (o.detach || Option.isSome(o.token))) {
      return yield* new BadInput({ field: o.detach ? "--detach" : "--token", message: "only with --server: a local exploration has no job to detach from, and no token" })
    }
    if (Option.isSome(server) && o.engine === "effect") return yield* new BadInput({ field: "--engine", message: "the service runs the fast engine; --engine effect is for local runs" })
    const found = Option.isSome(server)
      ? yield* remoteExplore(server.value, s, o, strategy)
      : yield* localExplore(s, o, strategy)
    if (found === undefined) return // detached: the job id is printed
    const r = o.shrink ? { ...found, violations: yield* Effect.forEach(found.violations, (v) => Effect.map(shrinkToken(v.replay), (k) => ({ ...v, shrunk: k }))) } : found
    const first = r.violations[0]
    const written = yield* writeToken(o.tokenFile, first === undefined ? undefined : "shrunk" in first ? (first.shrunk as Shrink.ShrinkResult).token : first.replay)
    if (o.json) {
      yield* print(JSON.stringify({
        scenario: r.scenario,
        strategy: r.strategy,
        engine: r.engine,
        ...("server" in r ? { server: r.server, job: r.job } : { workers: r.workers }),
        seed: r.seed,
        seedOfRun: `run i uses seed ${r.seed} + i (a violation's seed is its run's, and replays alone from its token)`,
        runs: r.runs,
        steps: r.steps,
        distinctTraces: r.distinctTraces,
        violations: r.violations.map((v) => ({
          invariant: v.invariant,
          message: v.message,
          replay: v.replay,
          run: v.run,
          seed: v.seed,
          steps: v.steps,
          count: v.count,
          ...("shrunk" in v ? { shrunk: shrinkJson(v.shrunk as Shrink.ShrinkResult) } : {})
        })),
        runsPerSecond: r.runsPerSecond,
        stepsPerSecond: r.stepsPerSecond,
        outcomes: r.outcomes,
        invariantChecks: r.invariantChecks
      }))
    } else {
      const where = "server" in r ? `job ${r.job} on ${r.server}` : `${r.engine} engine, ${r.workers} worker${r.workers === 1 ? "" : "s"}`
      yield* print(`${r.scenario} ${r.strategy} (${where}): ${r.runs} runs, ${r.distinctTraces} distinct traces, ${r.runsPerSecond} runs/s, ${r.stepsPerSecond} steps/s`)
      yield* print(`  outcomes: ${Object.entries(r.outcomes).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(", ")}`)
      yield* print(`  checks:   ${Object.entries(r.invariantChecks).map(([k, n]) => `${k} ${n}`).join(", ")}`)
      yield* print(r.violations.length === 0 ? "  no violation" : violationLines(r.violations, o.shrink ? undefined : written))
      for (const [i, v] of r.violations.entries()) if ("shrunk" in v) yield* print(shrinkLines(v.shrunk as Shrink.ShrinkResult, i === 0 ? written : undefined))
    }
    yield* exitWith(r.violations.length > 0 ? FOUND : OK)
  }).pipe(Effect.scoped)).pipe(Command.withDescription("run a scenario under many seeds; stop at the first violation unless --all"))

// ------------------------------------------------------------------ shrink

/** Why a token that decodes may not replay: said with every divergence. */
const DIVERGENCE_HINT = "a token diverges when it was made by another kvmlab or Effect version, or edited"

/** A token's scenario that does not decode, with the path in the scenario of each problem. */
const tokenScenarioError = (e: Scenario.ScenarioError) =>
  new BadInput({ field: "token", message: `its scenario does not decode: ${e.issues.map((i) => (i.path === "" ? i.message : `${i.path}: ${i.message}`)).join("; ")}` })

/** A token that is not one (empty, damaged, truncated, another format), before anything is run. */
const checkToken = (token: string): Effect.Effect<void, BadInput> => {
  const data = ReplayToken.decode(token)
  return data instanceof ReplayToken.InvalidReplayToken ? Effect.fail(new BadInput({ field: "token", message: data.message })) : Effect.void
}

/** A token problem found while shrinking: the shrinker reports errors as their text ("Error: replay diverged ..."). */
const shrinkError = (message: string) => {
  const m = message.replace(/^(Error|InvalidReplayToken|InvalidRunOptions): /, "")
  return new BadInput({ field: "token", message: /replay diverged|made for another/.test(m) ? `${m}; ${DIVERGENCE_HINT}` : m })
}

const shrinkToken = (token: string) =>
  Effect.zipRight(
    checkToken(token),
    Shrink.shrink(token).pipe(Effect.catchAll((e) => Effect.fail("issues" in e ? tokenScenarioError(e) : shrinkError(e.message))))
  )

const shrinkJson = (r: Shrink.ShrinkResult) => ({
  invariant: r.invariant,
  message: r.message,
  token: r.token,
  stepsBefore: r.stepsBefore,
  stepsAfter: r.stepsAfter,
  preemptionsBefore: r.preemptionsBefore,
  preemptionsAfter: r.preemptionsAfter,
  changes: r.changes,
  candidates: r.candidates
})

const shrinkLines = (r: Shrink.ShrinkResult, written?: string) =>
  `SHRUNK ${r.invariant}: ${r.stepsBefore} -> ${r.stepsAfter} steps, ${r.preemptionsBefore} -> ${r.preemptionsAfter} preemptions` +
  `${r.changes.length > 0 ? `; scenario ${r.changes.join(", ")}` : ""} (${r.candidates} candidate runs)\n  ${r.message}\n  ${tokenLine(r.token, written)}`

export const shrink = Command.make("shrink", {
  ...tokenIn,
  json
}, (o) =>
  Effect.gen(function*() {
    const r = yield* shrinkToken(yield* readToken(o))
    yield* print(o.json ? JSON.stringify(shrinkJson(r)) : shrinkLines(r))
    yield* exitWith(FOUND)
  })).pipe(Command.withDescription("shrink a violating run to a token that breaks the same invariant in as few steps as it can find"))

// ------------------------------------------------------------------ replay

export const replay = Command.make("replay", {
  ...tokenIn,
  json,
  engine,
  traceOut: Options.text("trace-out").pipe(Options.withPseudoName("file"), Options.optional, Options.withDescription("write a Chrome/Perfetto trace-event JSON file")),
  history: Options.boolean("history").pipe(
    Options.withDescription("print the run's history, one step per line, in the kernel's names (locations, values, VM entries and exits, requests, IPIs), the violation last")
  ),
  last: Inputs.integer("last", 1, 100_000_000).pipe(Options.optional, Options.withDescription("with --history: only the last N lines of events"))
}, (o) =>
  Effect.gen(function*() {
    if (o.last._tag === "Some" && !o.history) return yield* new BadInput({ field: "--last", message: "only --history takes it" })
    const tracing = o.traceOut._tag === "Some" || o.history
    const token = yield* readToken(o)
    yield* checkToken(token)
    let at = 0
    const onPause = (p: Run.RunProgress) => Effect.zipRight(Effect.sync(() => (at = p.steps)), Progress.eventLoopTurn)
    const r = yield* Runner.replay(token, { trace: tracing, engine: o.engine, onPause }).pipe(
      Effect.onInterrupt(() => Console.error(`kvmlab: replay interrupted at step ${at}`)),
      Effect.catchTags({
        ScenarioError: (e) => Effect.fail(tokenScenarioError(e)),
        InvalidReplayToken: (e) => Effect.fail(new BadInput({ field: "token", message: e.message })),
        InvalidRunOptions: (e) => Effect.fail(new BadInput({ field: `token ${e.field}`, message: e.message })),
        ReplayDiverged: (e) => Effect.fail(new BadInput({ field: "token", message: `${e.message}; ${DIVERGENCE_HINT}` }))
      })
    )
    if (o.traceOut._tag === "Some") {
      const file = o.traceOut.value
      const doc = Perfetto.fromTrace(r.trace, { timed: r.strategy === "timed", title: `${r.scenario} seed ${r.seed} ${r.strategy}`, violation: r.violations[0] })
      const fs = yield* FileSystem.FileSystem
      yield* Effect.mapError(fs.writeFileString(file, JSON.stringify(doc)), (e) => new BadInput({ field: `--trace-out ${file}`, message: Files.describe(e) }))
    }
    if (o.history) yield* print(History.render(r, Option.getOrElse(o.last, () => 0)).join("\n"))
    else if (o.json) yield* print(JSON.stringify(runJson(r, false)))
    else {
      yield* print(`replayed ${r.scenario} (seed ${r.seed}, ${r.strategy}, bugs: ${r.bugs.join(", ") || "none"}): ${r.outcome} after ${r.steps} steps; trace ${r.traceHash}`)
      if (r.violations.length > 0) yield* print(violationLines(r.violations))
      if (o.traceOut._tag === "Some") yield* print(`trace written to ${o.traceOut.value} (open in ui.perfetto.dev)`)
    }
    yield* exitWith(r.violations.length > 0 ? FOUND : OK)
  })).pipe(Command.withDescription("run a replay token again (same trace hash) and optionally export its trace"))

// ------------------------------------------------------------------ compare

export const compare = Command.make("compare", {
  scenario: scenarioArg,
  vary: Options.text("vary").pipe(Options.repeated, Options.withDescription("key=v1,v2[,...]; repeatable (every combination is run)")),
  variant,
  bug,
  seed,
  seeds: Inputs.integer("seeds", 1, 1_000_000).pipe(Options.withDefault(3), Options.withDescription("runs per row, 1 to 10^6 (metrics are means; default 3)")),
  strategy: Inputs.choice("strategy", ["timed", "random", "pct", "swarm"], "strategy").pipe(
    Options.optional,
    Options.withDescription(
      "timed (costs advance virtual time: the default for a scenario with a virtual duration, like tlb-shootdown), or random, pct, swarm " +
        "to compare what schedules do (random is the default for the race scenarios, whose runs have no duration: timed runs of a race take one schedule)"
    )
  ),
  depth,
  json,
  engine,
  workers,
  quiet,
  ...remoteOptions
}, (o) =>
  Effect.gen(function*() {
    const vary = yield* varyOf(o.vary, o.seeds)
    const s = yield* configure(o.scenario, o.variant, o.bug)
    const strategy = yield* strategyOf(Option.getOrElse(o.strategy, () => (s.durationNs > 0 ? "timed" as const : "random" as const)), o.depth)
    const combos = vary.reduce((n, [, vs]) => n * vs.length, 1)
    if (Option.isSome(o.server)) {
      if (o.engine === "effect") return yield* new BadInput({ field: "--engine", message: "the service runs the fast engine; --engine effect is for local runs" })
      return yield* remoteCompare(yield* (yield* remote).serverOf(o.server.value, o.token), s, vary, strategy, o)
    }
    if (o.detach || Option.isSome(o.token)) {
      return yield* new BadInput({ field: o.detach ? "--detach" : "--token", message: "only with --server: a local comparison has no job to detach from, and no token" })
    }
    const progress = yield* Progress.unlessQuiet(o.quiet, `compare ${s.name}`, combos * o.seeds, 4)
    const dealer = yield* (yield* Workers).dealer(o.workers)
    const finished: Array<readonly [number, Runner.CompareRow]> = []
    let runsDone = 0
    const r = yield* Campaign.compare(s, {
      vary,
      seeds: o.seeds,
      seed: o.seed,
      strategy,
      engine: o.engine,
      dealer,
      onProgress: (d) => Effect.zipRight(Effect.sync(() => (runsDone = d)), progress.tick(d)),
      onRow: (row, i) => Effect.sync(() => finished.push([i, row]))
    }).pipe(
      Effect.catchTag("ScenarioError", (e) => Effect.fail(new BadInput({ field: `--vary ${e.issues[0]?.path ?? ""}`, message: e.issues[0]?.message ?? e.message }))),
      // Ctrl-C or SIGTERM: the rows whose seeds were all run, and how far it got (exit 130, main.ts).
      Effect.onInterrupt(() =>
        Effect.gen(function*() {
          yield* progress.done
          const rows = [...finished].sort(([a], [b]) => a - b).map(([, row]) => row)
          if (rows.length > 0) yield* print(o.json ? JSON.stringify({ rows, interrupted: true, means: `over ${o.seeds} seeds per row` }) : compareTable(rows))
          yield* Console.error(
            `kvmlab: compare ${s.name} interrupted after ${runsDone} of ${combos * o.seeds} runs; ` +
              (rows.length === 0 ? "no row had all its seeds run" : `the ${rows.length} of ${combos} rows whose ${o.seeds} seeds all ran are shown`)
          )
        })
      )
    )
    yield* progress.done
    if (o.json) {
      yield* print(JSON.stringify({ rows: r.rows, metricUnits: Metrics.unitsOf(Object.assign({}, ...r.rows.map((row) => row.metrics))), means: `over ${o.seeds} seeds per row` }))
    }
    else yield* print(compareTable(r.rows))
    yield* exitWith(r.rows.some((row) => row.violations > 0) ? FOUND : OK)
  }).pipe(Effect.scoped)).pipe(Command.withDescription("run every combination of --vary settings and tabulate the mean metrics, with ratios to the first row"))

/** A comparison submitted to kvmlab-service, followed to its end (or, with --detach, its job id printed); printed as a local one. */
const remoteCompare = (
  server: Remote.Server,
  s: Scenario.Scenario,
  vary: ReadonlyArray<readonly [string, ReadonlyArray<string>]>,
  strategy: Strategy.SearchStrategy,
  o: { readonly seed: number; readonly seeds: number; readonly json: boolean; readonly quiet: boolean; readonly detach: boolean }
) =>
  Effect.gen(function*() {
    const done = yield* remoteJob(server, "compare", (client) =>
      client.spec("compare", {
        scenario: Scenario.encode(s) as Record<string, unknown>,
        vary: Object.fromEntries(vary),
        seed: o.seed,
        seeds: o.seeds,
        strategy: strategy._tag,
        ...(strategy._tag === "pct" ? { depth: strategy.depth } : {})
      }), o, (runsTotal) => Progress.unlessQuiet(o.quiet, `compare ${s.name} on ${server.url}`, runsTotal, 4))
    if (done === undefined) return
    const rows: ReadonlyArray<Runner.CompareRow> = done.result.rows.map((row) => ({ variant: row.variant, metrics: row.metrics, violations: row.violations }))
    yield* print(o.json ? JSON.stringify({ rows, metricUnits: done.result.metricUnits, means: `over ${o.seeds} seeds per row` }) : compareTable(rows))
    yield* exitWith(rows.some((row) => row.violations > 0) ? FOUND : OK)
  })

// ------------------------------------------------------------------ jobs

export const jobs = Command.make("jobs", {
  id: Args.text({ name: "id" }).pipe(Args.optional, Args.withDescription("a job id: show that job (default: list the jobs)")),
  server: Options.text("server").pipe(Options.withPseudoName("url"), Options.withDescription("kvmlab-service's URL, e.g. http://127.0.0.1:8420")),
  json
}, (o) =>
  Effect.gen(function*() {
    const Remote = yield* remote
    const server = yield* Remote.serverOf(o.server, Option.none())
    if (Option.isSome(o.id)) {
      const j = yield* Remote.job(server, o.id.value)
      if (o.json) return yield* print(JSON.stringify(Remote.encodeJob(j)))
      yield* print(`${j.id}  ${j.kind} ${j.scenario}: ${j.state}, ${j.runsDone}/${j.runsTotal} runs (${j.shardsDone}/${j.shardsTotal} shards), ${j.violations} violation${j.violations === 1 ? "" : "s"}; submitted ${j.createdAt}`)
      if (j.error !== undefined) yield* print(`  error: ${j.error}`)
      return
    }
    const page = yield* Remote.jobs(server)
    if (o.json) return yield* print(JSON.stringify(Remote.encodePage(page)))
    if (page.jobs.length === 0) return yield* print(`no jobs at ${server.url}`)
    for (const j of page.jobs) {
      yield* print(`${j.id}  ${j.kind.padEnd(7)} ${j.state.padEnd(9)} ${`${j.runsDone}/${j.runsTotal}`.padStart(15)} runs  ${String(j.violations).padStart(3)} viol.  ${j.scenario}  ${j.createdAt}`)
    }
    if (page.total > page.jobs.length) yield* print(`(${page.jobs.length} of ${page.total} jobs, newest first)`)
  })).pipe(Command.withDescription("list the jobs of a kvmlab-service, or show one"))

/** The most runs one comparison makes (rows times seeds): more is a typo, not a measurement. */
const MAX_COMPARE_RUNS = 1_000_000

/** The --vary settings: each `key=v1,v2,...` with at least one value, no key or value twice, and a bounded number of runs. */
const varyOf = (given: ReadonlyArray<string>, seeds: number) =>
  Effect.gen(function*() {
    if (given.length === 0) return yield* new BadInput({ field: "--vary", message: "give at least one --vary key=v1,v2" })
    const vary: Array<readonly [string, ReadonlyArray<string>]> = []
    for (const v of given) {
      const [key, list] = yield* parseSetting("--vary", v)
      const values = list.split(",").map((x) => x.trim()).filter((x) => x !== "")
      if (values.length === 0) return yield* new BadInput({ field: `--vary ${key}`, message: `give at least one value, as in --vary ${key}=a,b; got ${Inputs.quote(v)}` })
      if (vary.some(([k]) => k === key)) return yield* new BadInput({ field: `--vary ${key}`, message: "given twice; give one --vary per key, with all its values" })
      const twice = values.find((x, i) => values.indexOf(x) !== i)
      if (twice !== undefined) return yield* new BadInput({ field: `--vary ${key}`, message: `value ${Inputs.quote(twice)} given twice` })
      vary.push([key, values])
    }
    const runs = vary.reduce((n, [, vs]) => n * vs.length, seeds)
    if (runs > MAX_COMPARE_RUNS) {
      return yield* new BadInput({ field: "--vary", message: `${runs} runs (every combination, times --seeds ${seeds}) is more than ${MAX_COMPARE_RUNS}` })
    }
    return vary
  })

/** Rows as a table: one line per metric, one column per variant, ratios to the first column. */
export const compareTable = (rows: ReadonlyArray<Runner.CompareRow>): string => {
  const metrics = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))]
  const head = ["metric", ...rows.map((r) => Object.entries(r.variant).map(([k, v]) => `${k}=${v}`).join(" ")), "unit (each cell: the mean over the seeds)"]
  const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1))
  const body = metrics.map((m) => {
    const first = rows[0]!.metrics[m] ?? 0
    return [m, ...rows.map((r, i) => {
      const x = r.metrics[m] ?? 0
      return i === 0 || first === 0 ? fmt(x) : `${fmt(x)} (${(x / first).toFixed(2)}x)`
    }), Metrics.unitOf(m)]
  })
  body.push(["violations", ...rows.map((r) => String(r.violations)), "runs with a violation"])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n")
}

export { BAD_INPUT }
