/**
 * The kvmlab command as one Effect: argv in, exit code out. Output goes through the `Console`,
 * files through the platform `FileSystem`, progress through `Progress.Reporter`, and the exit
 * code is a value, so the same program runs in the bin (`main.ts`) and in-process in tests,
 * without a process start (seconds of CPU each, through tsx) per case. Bad input prints one line
 * naming the field and exits 2.
 */
import { Command } from "@effect/cli"
import type { CliApp } from "@effect/cli"
import { Console, Effect, Ref } from "effect"
import { litmus } from "./commands/litmus.js"
import { compare, explore, list, replay, run, show, shrink } from "./commands/scenarios.js"
import { BAD_INPUT, ExitCode, OK } from "./Exit.js"
import type * as Progress from "./Progress.js"
import type { Workers } from "./Workers.js"

const kvmlab = Command.make("kvmlab").pipe(
  Command.withDescription("deterministic models of the x86 KVM coordination protocols"),
  Command.withSubcommands([list, show, run, explore, replay, shrink, compare, litmus])
)

const cli = Command.run(kvmlab, { name: "kvmlab", version: "0.1.0" })

/** What one run of the command ended with. */
export interface CliResult {
  readonly exitCode: number
}

/**
 * Runs kvmlab on `argv`, shaped like `process.argv` (runtime, script, then the arguments), and
 * gives its exit code: 0 ok, 1 violation found, 2 bad input. Never fails; defects stay defects.
 */
export const runCli = (argv: ReadonlyArray<string>): Effect.Effect<CliResult, never, CliApp.CliApp.Environment | Progress.Reporter | Workers> =>
  Effect.gen(function*() {
    const code = yield* Ref.make(OK)
    yield* cli(argv).pipe(
      Effect.catchTags({
        BadInput: (e) => Effect.zipRight(Console.error(`kvmlab: ${e.field}: ${e.message}`), Ref.set(code, BAD_INPUT))
      }),
      Effect.catchAll(() => Ref.set(code, BAD_INPUT)), // @effect/cli already printed the usage error
      Effect.provideService(ExitCode, code)
    )
    return { exitCode: yield* Ref.get(code) }
  })
