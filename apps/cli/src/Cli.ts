/**
 * The kvmlab command as one Effect: argv in, exit code out. Output goes through the `Console`,
 * files through the platform `FileSystem`, progress through `Progress.Reporter`, and the exit
 * code is a value, so the same program runs in the bin (`main.ts`) and in-process in tests,
 * without a process start (seconds of CPU each, through tsx) per case. Every failure ends here
 * as one line on stderr: bad input (ours, or a usage error of @effect/cli) names the option,
 * field, token part or file and exits 2; anything unexpected (a defect) is reported as an
 * internal error with its first stack frames and exits 3, never silently.
 */
import { Command, HelpDoc, ValidationError } from "@effect/cli"
import type { CliApp } from "@effect/cli"
import { Cause, Console, Context, Effect, Exit, Option, Ref } from "effect"
import { litmus } from "./commands/litmus.js"
import { compare, explore, jobs, list, replay, run, show, shrink } from "./commands/scenarios.js"
import { BAD_INPUT, BadInput, badInputLine, ExitCode, INTERNAL, internalErrorReport, OK, oneLine } from "./Exit.js"
import type * as Progress from "./Progress.js"
import type { Workers } from "./Workers.js"

/** Where a command's own output goes: the caller's Console, whatever the parser is given. */
class CommandConsole extends Context.Tag("@kvmlab/cli/CommandConsole")<CommandConsole, Console.Console>() {}

/** The command, printing through the caller's Console (see `runCli`). */
const ownConsole = <Name extends string, R, E, A>(c: Command.Command<Name, R, E, A>) =>
  Command.transformHandler(c, (effect) => Effect.flatMap(CommandConsole, (console) => Effect.withConsole(effect, console)))

const kvmlab = Command.make("kvmlab").pipe(
  Command.withDescription("deterministic models of the x86 KVM coordination protocols"),
  Command.withSubcommands([
    ownConsole(list),
    ownConsole(show),
    ownConsole(run),
    ownConsole(explore),
    ownConsole(replay),
    ownConsole(shrink),
    ownConsole(compare),
    ownConsole(jobs),
    ownConsole(litmus)
  ])
)

const cli = Command.run(kvmlab, { name: "kvmlab", version: "0.1.0" })

/** What one run of the command ended with. */
export interface CliResult {
  readonly exitCode: number
}

/** A usage error of @effect/cli as one line (its text can span paragraphs). */
const usageLine = (e: ValidationError.ValidationError, argv: ReadonlyArray<string>): string => {
  const text = oneLine(HelpDoc.toAnsiText(e.error))
  // An option last on the line without its value reads to the parser as an unknown argument.
  const last = argv.length > 2 ? argv[argv.length - 1]! : ""
  if (last.startsWith("-") && !last.includes("=") && text === `Received unknown argument: '${last}'`) return `kvmlab: ${text}: not an option here, or an option missing its value`
  if (text !== "") return `kvmlab: ${text}`
  return ValidationError.isMultipleValuesDetected(e) ? `kvmlab: more than one value given: ${e.values.join(", ")}` : `kvmlab: bad command line (${e._tag})`
}

/** The options that take no value: an empty argument after one of them is a positional argument. */
const FLAGS = new Set(["--json", "--all", "--shrink", "--quiet", "--history", "--costs", "--detach", "--help", "-h", "--version", "--wizard"])

/**
 * An option given an empty value (`--bug ""`): @effect/cli drops the empty text, so the option
 * would be silently ignored; it is refused here instead.
 */
const emptyValue = (argv: ReadonlyArray<string>): BadInput | undefined => {
  for (let i = 3; i < argv.length; i++) {
    const option = argv[i - 1]!
    if (argv[i]!.trim() === "" && option.startsWith("--") && !FLAGS.has(option)) return new BadInput({ field: option, message: "empty value" })
  }
  return undefined
}

/**
 * Runs kvmlab on `argv`, shaped like `process.argv` (runtime, script, then the arguments), and
 * gives its exit code: 0 ok, 1 violation found, 2 bad input, 3 internal error. Never fails: a
 * defect is reported and exits 3; only an interruption (Ctrl-C) passes through.
 *
 * @effect/cli prints its usage errors ("Received unknown argument", a bad option value) through
 * the Console before failing; those are kept aside and printed as one `kvmlab: ...` line like
 * every other error, while the commands print through the caller's Console.
 */
export const runCli = (argv: ReadonlyArray<string>): Effect.Effect<CliResult, never, CliApp.CliApp.Environment | Progress.Reporter | Workers> =>
  Effect.gen(function*() {
    const code = yield* Ref.make(OK)
    const console = yield* Effect.console
    const usage = yield* Ref.make<ReadonlyArray<ReadonlyArray<unknown>>>([])
    const parser: Console.Console = { ...console, error: (...args) => Ref.update(usage, (xs) => [...xs, args]) }
    const empty = emptyValue(argv)
    if (empty !== undefined) {
      yield* Console.error(badInputLine(empty))
      return { exitCode: BAD_INPUT }
    }
    const exit = yield* cli(argv).pipe(
      Effect.provideService(CommandConsole, console),
      Effect.provideService(ExitCode, code),
      Effect.withConsole(parser),
      Effect.exit
    )
    const report = (line: string, exitCode: number) => Effect.zipRight(Console.error(line), Ref.set(code, exitCode))
    if (Exit.isFailure(exit)) {
      const cause = exit.cause
      if (Cause.isInterruptedOnly(cause)) return yield* Effect.interrupt
      const failure = Option.getOrUndefined(Cause.failureOption(cause))
      if (!Cause.isDie(cause) && failure instanceof BadInput) yield* report(badInputLine(failure), BAD_INPUT)
      else if (!Cause.isDie(cause) && ValidationError.isValidationError(failure)) yield* report(usageLine(failure, argv), BAD_INPUT)
      else yield* report(internalErrorReport(Cause.squash(cause)), INTERNAL)
    } else {
      // Nothing of the parser's is hidden when it did not fail (there is none today).
      for (const args of yield* Ref.get(usage)) yield* Console.error(...args)
    }
    return { exitCode: yield* Ref.get(code) }
  })
