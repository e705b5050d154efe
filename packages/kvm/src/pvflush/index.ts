/** Mechanism B: the paravirtual remote TLB flush that skips preempted vCPUs (spec §2, thread 1). */
export * as Guest from "./Guest.js"
export * as Host from "./Host.js"
export * as Invariants from "./Invariants.js"
export * as Protocol from "./Protocol.js"
export * as State from "./State.js"
