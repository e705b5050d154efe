/** The kvmlab command, as a library: its subcommands, for embedding and tests. */
export { litmus } from "./commands/litmus.js"
