/**
 * @kvmlab/memory — x86-TSO and SC shared memory for simulated actors, the Linux barrier and
 * atomic vocabulary on top of it, a spinlock and a seqcount, and a litmus checker for herd7's
 * X86_64 dialect with an exhaustive engine and an actor engine.
 */
export * as Exhaustive from "./Exhaustive.js"
export * as Litmus from "./Litmus.js"
export * as Outcome from "./Outcome.js"
export * as Actors from "./Actors.js"
export * as Cpu from "./Cpu.js"
export * as Memory from "./Memory.js"
export * as Seqcount from "./Seqcount.js"
export * as Rwlock from "./Rwlock.js"
export * as Spinlock from "./Spinlock.js"
export * as Tso from "./Tso.js"
