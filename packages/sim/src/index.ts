/**
 * @kvmlab/sim — deterministic simulation of Effect programs: seeded interleavings over actors
 * sorted by id, virtual time, blocking waits the kernel sees, invariants and liveness monitors,
 * and replay tokens that reproduce any run exactly.
 */
export * as Explore from "./Explore.js"
export * as Mailbox from "./Mailbox.js"
export * as Prng from "./Prng.js"
export * as ReplayToken from "./ReplayToken.js"
export * as Run from "./Run.js"
export * as Sim from "./Sim.js"
export * as Strategy from "./Strategy.js"
export * as TraceHash from "./TraceHash.js"
