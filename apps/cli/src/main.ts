/**
 * The kvmlab bin: runs the command (`Cli.ts`) on the process's arguments with Node's file
 * system and terminal, and is the one place that hands the exit code to the process.
 *
 * Three ends are the process's own. Ctrl-C (or SIGTERM) interrupts the command and exits 130,
 * not 0. A reader that goes away (`kvmlab run ... | head -1`) makes the next write to stdout fail
 * with EPIPE: nothing more can be said, so the command ends quietly with code 0, as a command
 * ended by SIGPIPE says nothing either. And a throw outside the Effect program (a stream error, a
 * library's timer) is still a defect of kvmlab: reported in the same short form as `runCli`
 * reports one, exit 3, never a silent exit or a page of stack.
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer } from "effect"
import { runCli } from "./Cli.js"
import { INTERNAL, internalErrorReport, INTERRUPTED, OK } from "./Exit.js"
import * as Progress from "./Progress.js"
import * as Workers from "./Workers.js"

const isEpipe = (e: unknown) => typeof e === "object" && e !== null && (e as { code?: unknown }).code === "EPIPE"

for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e) => {
    if (isEpipe(e)) process.exit(OK)
    throw e // to the handler below
  })
}

process.on("uncaughtException", (e) => {
  if (isEpipe(e)) process.exit(OK)
  // stderr itself may be what failed; then there is no one left to tell.
  try {
    process.stderr.write(`${internalErrorReport(e)}\n`)
  } finally {
    process.exit(INTERNAL)
  }
})

runCli(process.argv).pipe(
  Effect.flatMap(({ exitCode }) => Effect.sync(() => { process.exitCode = exitCode })),
  Effect.provide(Layer.mergeAll(NodeContext.layer, Progress.layerTerminal, Workers.layerThreads)),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    // runCli never fails: its end is the code it set, or an interruption (Ctrl-C), which is not "ok".
    teardown: (exit, onExit) =>
      onExit(Exit.isSuccess(exit) ? (typeof process.exitCode === "number" ? process.exitCode : OK) : Cause.isInterruptedOnly(exit.cause) ? INTERRUPTED : INTERNAL)
  })
)
