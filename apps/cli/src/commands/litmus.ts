/**
 * `kvmlab litmus <file-or-dir>...`: checks litmus tests in herd7's X86_64 dialect under TSO or
 * SC, with the exhaustive engine (every reachable final state) or the actor engine (runs on the
 * simulated STM memory). `--json` prints one object per test per line. A test that does not
 * parse, or whose condition names a thread, register or location it does not have, is reported
 * with file, line and problem; a test whose search explores more than `--max-states` states is
 * reported with file and bound. The others still run, and the exit code is 2.
 *
 * Bounds: the exhaustive search stops after `--max-states` states. The actor engine first counts
 * the exhaustive engine's final states (to stop its runs early), so the same bound ends it; its
 * runs are bounded by `--runs`, each by the kernel's 1,000,000 scheduling steps.
 */
import { Args, Command, Options } from "@effect/cli"
import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Actors, Exhaustive, Litmus } from "@kvmlab/memory"
import type { Outcome } from "@kvmlab/memory"
import { Clock, Console, Effect } from "effect"
import { BAD_INPUT, BadInput, exitWith, OK } from "../Exit.js"
import * as Files from "../Files.js"
import * as Inputs from "../Inputs.js"
import * as Progress from "../Progress.js"

const paths = Args.text({ name: "file-or-dir" }).pipe(Args.atLeast(1), Args.withDescription("litmus files, or folders searched for *.litmus"))
const model = Inputs.choice("model", ["tso", "sc"], "memory model").pipe(Options.withDefault("tso" as const), Options.withDescription("memory model: tso or sc"))
const engine = Inputs.choice("engine", ["exhaustive", "fast", "actors", "effect"], "engine").pipe(
  Options.withDefault("exhaustive" as const),
  Options.withDescription("exhaustive (every final state), or the actor engine run on the fast or the effect simulation engine: fast (alias actors) or effect")
)
const runs = Inputs.integer("runs", 1, 1_000_000_000).pipe(
  Options.withDefault(2000),
  Options.withDescription("actor engine: runs per test, 1 to 10^9 (it stops early once it has the exhaustive engine's state count)")
)
const seed = Inputs.integer("seed", 0, 0xffff_ffff).pipe(Options.withDefault(1), Options.withDescription("actor engine: base seed, a 32-bit unsigned integer"))
const json = Options.boolean("json").pipe(Options.withDescription("one JSON object per test per line"))
const maxStates = Inputs.integer("max-states", 1, Exhaustive.MAX_STATES_LIMIT).pipe(
  Options.withDefault(Exhaustive.MAX_STATES_DEFAULT),
  Options.withDescription(
    `bound per test: a search that explores more than this many states stops, prints "<file>: more than N states explored (bound --max-states N): ..." ` +
      `on stderr, and the exit code is 2; the actor engine counts the exhaustive states first, so the bound holds for it too ` +
      `(default ${Exhaustive.MAX_STATES_DEFAULT}, reached in a few seconds; the largest of herd7's 2,595 x86 tests explores 3,035; at most ${Exhaustive.MAX_STATES_LIMIT})`
  )
)

/** Every *.litmus file under the given paths, sorted; a missing path is bad input. */
export const expand = (inputs: ReadonlyArray<string>): Effect.Effect<Array<string>, BadInput, FileSystem.FileSystem | Path.Path> =>
  Effect.forEach(inputs, (p) =>
    Effect.flatMap(FileSystem.FileSystem, (fs) => fs.stat(p)).pipe(
      Effect.flatMap((info) => (info.type === "Directory" ? walk(p) : Effect.succeed([p]))),
      Effect.mapError(() => new BadInput({ field: "file-or-dir", message: `${p}: no such file or directory` }))
    )).pipe(Effect.map((xs) => xs.flat()))

const walk = (dir: string): Effect.Effect<Array<string>, PlatformError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const names = [...(yield* fs.readDirectory(dir))].sort()
    const found = yield* Effect.forEach(names, (name) => {
      const p = path.join(dir, name)
      return Effect.flatMap(fs.stat(p), (info) => (info.type === "Directory" ? walk(p) : Effect.succeed(name.endsWith(".litmus") ? [p] : [])))
    })
    return found.flat()
  })

interface Row extends Outcome.LitmusOutcome {
  readonly runs?: number
}

const table = (rows: ReadonlyArray<Row>): string => {
  const head = ["test", "verdict", "states", "condition holds", "condition"]
  const body = rows.map((r) => [r.test, r.observation, String(r.states.length), r.holds ? "yes" : "no", r.condition])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => Math.min(b[i]!.length, 60))))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => (c.length > 60 ? c.slice(0, 59) + "…" : c).padEnd(widths[i]!)).join("  ").trimEnd()
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n")
}

/** The one line reporting a test beyond the state bound. */
const boundLine = (e: Exhaustive.StateBoundExceeded, engine: string): string =>
  `error: ${e.file}: more than ${e.maxStates} states explored (bound --max-states ${e.maxStates}): ` +
  `test ${e.test} has ${e.threads} threads and ${e.instructions} instructions` +
  (engine === "exhaustive" ? "" : ` (--engine ${engine} counts the exhaustive engine's states first)`) +
  "; raise --max-states or make the test smaller"

/** The largest litmus file read: herd7's largest x86 test is about 2 kB. */
const MAX_LITMUS_BYTES = 1 << 20

const quiet = Options.boolean("quiet").pipe(Options.withDescription("no progress on stderr"))

export const litmus = Command.make("litmus", { paths, model, engine, runs, seed, json, maxStates, quiet }, (o) =>
  Effect.gen(function*() {
    // --model, --engine, --runs, --seed and --max-states are checked where they are declared (Inputs).
    const m = o.model
    const files = yield* expand(o.paths)
    if (files.length === 0) return yield* new BadInput({ field: "file-or-dir", message: `no *.litmus files under ${o.paths.join(", ")}` })

    const path = yield* Path.Path
    const start = yield* Clock.currentTimeMillis
    const progress = yield* Progress.unlessQuiet(o.quiet, `litmus (${o.engine}, ${m})`, files.length, o.engine === "exhaustive" ? 200 : 5)
    const rows: Array<Row> = []
    let parseErrors = 0
    let beyondBound = 0
    let current = ""
    // Ctrl-C or SIGTERM: the tests checked so far, and where it stopped (exit 130, main.ts).
    const interrupted = Effect.gen(function*() {
      yield* progress.done
      if (!o.json && rows.length > 0) yield* Console.log(table(rows) + "\n")
      yield* Console.error(
        `kvmlab: litmus interrupted after ${rows.length + parseErrors + beyondBound} of ${files.length} tests, in ${current}; ` +
          `the ${rows.length} checked ${o.json ? "are printed above" : "are in the table"}`
      )
    })
    yield* Effect.onInterrupt(Effect.forEach(files, (file, i) => Effect.gen(function*() {
      const shown = path.relative(path.resolve("."), file) || file
      current = shown
      // A litmus test is a few hundred bytes: a file of megabytes is a mistake (a trace, a binary), refused before it is read.
      const size = Number((yield* Effect.orDie(Effect.flatMap(FileSystem.FileSystem, (fs) => fs.stat(file)))).size)
      // Found by stat but unreadable: a defect (exit 3), as it was with readFileSync.
      if (size > MAX_LITMUS_BYTES) {
        parseErrors++
        yield* Console.error(`error: ${shown}: is ${(size / (1 << 20)).toFixed(1)} MB; a litmus test is a small text file (at most 1 MB)`)
        return yield* progress.tick(i + 1)
      }
      const text = yield* Effect.orDie(Files.readText(file))
      const test = Litmus.parse(text, shown)
      if (test instanceof Litmus.LitmusParseError) {
        parseErrors++
        yield* Console.error(`error: ${test.message}`)
      } else {
        // Both engines pause every few milliseconds, so Ctrl-C stops even a search of a million states.
        const exhaustive = yield* Progress.stepwise(Exhaustive.searchInChunks(test, m, { maxStates: o.maxStates }))
        if (exhaustive instanceof Exhaustive.StateBoundExceeded) {
          beyondBound++
          yield* Console.error(boundLine(exhaustive, o.engine))
          return yield* progress.tick(i + 1)
        }
        const { statesVisited: _, ...ex } = exhaustive
        const row: Row = o.engine === "exhaustive"
          ? ex
          : yield* Progress.stepwise(
            Actors.checkInChunks(test, { model: m, runs: o.runs, seed: o.seed, stopAtStates: exhaustive.states.length, engine: o.engine === "effect" ? "effect" : "fast" })
          )
        rows.push(row)
        if (o.json) yield* Console.log(JSON.stringify({ ...row, model: m, engine: o.engine }))
      }
      yield* progress.tick(i + 1)
    }), { discard: true }), () => interrupted)
    const seconds = ((yield* Clock.currentTimeMillis) - start) / 1000
    yield* progress.done
    if (!o.json) {
      if (rows.length > 0) yield* Console.log(table(rows) + "\n")
      const by = (v: string) => rows.filter((r) => r.observation === v).length
      yield* Console.log(
        `${files.length} tests (${o.engine}, ${m}) in ${seconds.toFixed(2)} s: ${by("Never")} Never, ${by("Sometimes")} Sometimes, ` +
          `${by("Always")} Always; condition holds in ${rows.filter((r) => r.holds).length}` +
          (parseErrors > 0 ? `; ${parseErrors} did not parse` : "") +
          (beyondBound > 0 ? `; ${beyondBound} explored more than --max-states ${o.maxStates} states` : "")
      )
    }
    yield* exitWith(parseErrors > 0 || beyondBound > 0 ? BAD_INPUT : OK)
  }).pipe(Effect.scoped)).pipe(Command.withDescription(
  "check x86 litmus tests (herd7's X86_64 dialect) under TSO or SC. Exit 0 when every test was checked; exit 2 for bad input, " +
    "one line on stderr per test: a test that does not parse or whose condition names a thread, register or location it does not have " +
    "(\"<file>:<line>: ...\"), or a test that explores more than --max-states states (\"<file>: more than N states explored ...\"); " +
    "the other tests still run"
))
