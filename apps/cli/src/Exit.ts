/**
 * Exit codes and user-facing errors of the kvmlab command: 0 when all is well, 1 when a
 * violation (or a failing condition the user asked about) was found, 2 for bad input. A bad
 * input error names the field or file and the problem. The code is a value the commands set
 * in the `ExitCode` service, not `process.exitCode`, so the command runs in-process in tests and
 * only the bin hands the code to the process.
 */
import { Context, Effect, Ref, Schema } from "effect"

export const OK = 0
export const FOUND = 1
export const BAD_INPUT = 2

/** Bad input from the user: which field or file, and what is wrong with it. */
export class BadInput extends Schema.TaggedError<BadInput>()("BadInput", {
  field: Schema.String,
  message: Schema.String
}) {}

/** The code the command will exit with; one per run of the command, starting at OK. */
export class ExitCode extends Context.Tag("@kvmlab/cli/ExitCode")<ExitCode, Ref.Ref<number>>() {}

/** Sets the code the command will exit with (the last one set wins, as with `process.exitCode`). */
export const exitWith = (code: number): Effect.Effect<void, never, ExitCode> => Effect.flatMap(ExitCode, (ref) => Ref.set(ref, code))
