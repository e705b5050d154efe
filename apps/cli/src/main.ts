/**
 * The kvmlab bin: runs the command (`Cli.ts`) on the process's arguments with Node's file
 * system and terminal, and is the one place that hands the exit code to the process.
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { runCli } from "./Cli.js"
import * as Progress from "./Progress.js"
import * as Workers from "./Workers.js"

runCli(process.argv).pipe(
  Effect.flatMap(({ exitCode }) => Effect.sync(() => { process.exitCode = exitCode })),
  Effect.provide(Layer.mergeAll(NodeContext.layer, Progress.layerTerminal, Workers.layerThreads)),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
