/** Mechanism C: memslot generations, MMIO SPTEs and zapping on memslot removal (spec §3, §10.2). */
export * as Extension from "./Extension.js"
export * as Invariants from "./Invariants.js"
export * as KvmMain from "./KvmMain.js"
export * as Protocol from "./Protocol.js"
export * as State from "./State.js"
export * as Variants from "./Variants.js"
export * as X86 from "./X86.js"
