/**
 * @kvmlab/sim — deterministic simulation of actor programs: model code written once as
 * generators over a small vocabulary of operations, run by two engines (`fast`, stepping the
 * generators itself, and `effect`, the reference, with every actor an Effect fiber) that give
 * the same trace for the same seed; seeded interleavings over actors sorted by id, virtual time,
 * blocking waits the kernel sees, invariants and liveness monitors, and replay tokens that
 * reproduce any run exactly.
 */
export * as Explore from "./Explore.js"
export * as Mailbox from "./Mailbox.js"
export * as Op from "./Op.js"
export * as Prng from "./Prng.js"
export * as ReplayToken from "./ReplayToken.js"
export * as Run from "./Run.js"
export * as Sim from "./Sim.js"
export * as Strategy from "./Strategy.js"
export * as TraceHash from "./TraceHash.js"
