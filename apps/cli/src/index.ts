/** The kvmlab command, as a library: the whole command in-process, and its subcommands, for embedding and tests. */
export { type CliResult, runCli } from "./Cli.js"
export { litmus } from "./commands/litmus.js"
export * as Progress from "./Progress.js"
export * as Workers from "./Workers.js"
export * as Inputs from "./Inputs.js"
