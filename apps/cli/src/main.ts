/**
 * The kvmlab bin: runs the command (`Cli.ts`) on the process's arguments with Node's file
 * system and terminal, and is the one place that hands the exit code to the process.
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { runCli } from "./Cli.js"
import * as Progress from "./Progress.js"

runCli(process.argv).pipe(
  Effect.flatMap(({ exitCode }) => Effect.sync(() => { process.exitCode = exitCode })),
  Effect.provide(Layer.merge(NodeContext.layer, Progress.layerTerminal)),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
