/** Mechanism E: the gfn_to_pfn_cache and the MMU notifier's invalidation (spec §5, §10.4). */
export * as Extension from "./Extension.js"
export * as Invariants from "./Invariants.js"
export * as KvmMain from "./KvmMain.js"
export * as PfnCache from "./PfnCache.js"
export * as Protocol from "./Protocol.js"
export * as State from "./State.js"
export * as Variants from "./Variants.js"
export * as X86 from "./X86.js"
