/**
 * Exit codes and user-facing errors of the kvmlab command: 0 when all is well, 1 when a
 * violation (or a failing condition the user asked about) was found, 2 for bad input, 3 for an
 * internal error (a defect of kvmlab). A bad input error is one line naming the option, field,
 * token part or file and the problem; an internal error is a short report with the first stack
 * frames. The code is a value the commands set in the `ExitCode` service, not
 * `process.exitCode`, so the command runs in-process in tests and only the bin hands the code
 * to the process.
 */
import { Context, Effect, Ref, Schema } from "effect"

export const OK = 0
export const FOUND = 1
export const BAD_INPUT = 2
export const INTERNAL = 3
/** Stopped by Ctrl-C (or SIGTERM): the shell's 128 + SIGINT, so a script does not read it as "no violation". */
export const INTERRUPTED = 130

/** Bad input from the user: which field or file, and what is wrong with it. */
export class BadInput extends Schema.TaggedError<BadInput>()("BadInput", {
  field: Schema.String,
  message: Schema.String
}) {}

/** The code the command will exit with; one per run of the command, starting at OK. */
export class ExitCode extends Context.Tag("@kvmlab/cli/ExitCode")<ExitCode, Ref.Ref<number>>() {}

/** Sets the code the command will exit with (the last one set wins, as with `process.exitCode`). */
export const exitWith = (code: number): Effect.Effect<void, never, ExitCode> => Effect.flatMap(ExitCode, (ref) => Ref.set(ref, code))

// eslint-disable-next-line no-control-regex
const ansi = /\u001b\[[0-9;]*[A-Za-z]/g
// eslint-disable-next-line no-control-regex
const control = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g

/**
 * Text as one line on a terminal: colours dropped, line breaks joined with "; ", other control
 * characters escaped (a binary file's bytes must not reach the terminal), at most `max` characters.
 */
export const oneLine = (text: string, max = 2000): string => {
  const s = text
    .replace(ansi, "")
    .split(/\s*[\r\n]+\s*/)
    .filter((l) => l !== "")
    .join("; ")
    .replace(control, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
  return s.length > max ? `${s.slice(0, max - 1)}…` : s
}

/** The line that reports bad input. */
export const badInputLine = (e: BadInput): string => oneLine(`kvmlab: ${e.field}: ${e.message}`)

/** What a thrown value says about itself, on one line. */
const describe = (defect: unknown): string => {
  if (defect instanceof Error) return defect.message || defect.name
  if (typeof defect === "string") return defect
  try {
    return JSON.stringify(defect) ?? String(defect)
  } catch {
    return String(defect)
  }
}

/**
 * The report of a defect: one line saying so, then at most two stack frames, enough to find the
 * place without burying the message.
 */
export const internalErrorReport = (defect: unknown): string => {
  const frames = defect instanceof Error
    ? (defect.stack ?? "").split("\n").filter((l) => /^\s+at /.test(l)).slice(0, 2).map((l) => `    ${oneLine(l.trim(), 300)}`)
    : []
  return [`kvmlab: internal error: ${oneLine(describe(defect), 500)} — please report it with the command line`, ...frames].join("\n")
}
