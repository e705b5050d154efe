/**
 * The kvmlab command line. Subcommands live in `commands/`; errors from bad input print one
 * clear line naming the field and exit 2.
 */
import { Command } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { litmus } from "./commands/litmus.js"
import { compare, explore, list, replay, run, show } from "./commands/scenarios.js"
import { BAD_INPUT } from "./Exit.js"

const kvmlab = Command.make("kvmlab").pipe(
  Command.withDescription("deterministic models of the x86 KVM coordination protocols"),
  Command.withSubcommands([list, show, run, explore, replay, compare, litmus])
)

const cli = Command.run(kvmlab, { name: "kvmlab", version: "0.1.0" })

cli(process.argv).pipe(
  Effect.catchTags({
    BadInput: (e) => Effect.sync(() => {
      process.stderr.write(`kvmlab: ${e.field}: ${e.message}\n`)
      process.exitCode = BAD_INPUT
    })
  }),
  Effect.catchIf(
    (e): e is Extract<typeof e, { readonly _tag: string }> => typeof e === "object" && e !== null && "_tag" in e,
    () => Effect.sync(() => { process.exitCode = BAD_INPUT }) // @effect/cli already printed the usage error
  ),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
