/**
 * Named variants and bug switches as data, with the spec's names (§1.9, §1.10, §2.8, §2.9).
 * A bug switch reintroduces one defect; every switch off is the merged kernel.
 */
import { Schema } from "effect"

/** The bug switches this model implements, each with the spec section that describes it. */
export const bugs = {
  "A.noEntryBarrier": "§1.9: drop smp_mb__after_srcu_read_unlock in vcpu_enter_guest (REQ-1, TLB-1)",
  "A.noRequesterBarrier": "§1.9: no full barrier between setting the request (and page-table writes) and reading vcpu->mode (REQ-1, TLB-1, WALK-1)",
  "A.noWalkBarrier": "§1.9: plain store of READING_SHADOW_PAGE_TABLES in walk_shadow_page_lockless_begin (WALK-1)",
  "A.kickNoWaitForFlush": "§1.9: KVM_REQ_TLB_FLUSH without KVM_REQUEST_WAIT (REQ-2, WALK-1)",
  "A.exitingSkipsIpiForWait": "§1.9: EXITING_GUEST_MODE suppresses the IPI for WAIT requests too (REQ-2)",
  "B.readCopyWriteback": "§2.8, CVE-2019-3016: record_steal_time reads the struct, clears preempted in a copy and writes it back (PV-1)",
  "B.preemptedMidEmulation": "§2.8, CVE-2022-39189: preempted reported outside an instruction boundary (PV-1)",
  "B.noPreemptedCache": "§10.1, CVE-2019-3016's second half (8c6de56a42e0): kvm_steal_time_set_preempted without the cached preempted check, so a second put rewrites PREEMPTED over a FLUSH_TLB (PV-1)",
  "B.reportVoluntaryPut": "§10.1, 54aa83c90198: PREEMPTED reported on every vcpu_put, voluntary ones included (blocking, return to userspace) (PV-3)",
  "P.invertedMaskClear": "§2.9: IPI_PENDING scheme drops the CPU from the mask when the new state has IPI_PENDING (PV-1)",
  "P.sharedPendingBitABA": "§2.9: IPI_PENDING as one shared bit instead of a per-initiator generation (PV-1)",
  "P.transferWithoutFlushRequest": "§2.9: the VM-exit transfer of IPI_PENDING to SHOULD_FLUSH raises no flush request (PV-1)"
} as const

export type Bug = keyof typeof bugs
export const BugName = Schema.Literal(...(Object.keys(bugs) as Array<Bug>))
export const bugNames = Object.keys(bugs) as ReadonlyArray<Bug>

/** Which remote TLB flush the guest uses (thread 1). */
export const Flush = Schema.Literal("native", "pv", "pv-ipi-pending")
export type Flush = typeof Flush.Type

/** Per-scenario variant knobs. */
export const Variant = Schema.Struct({
  /** Guest remote flush: native IPIs, the merged PV flush (§2.4-2.6), or Peter's IPI_PENDING scheme (§2.9). */
  flush: Schema.optionalWith(Flush, { default: () => "native" as const }),
  /**
   * The two smp_mb()s thread 4 removed as redundant: in kvm_flush_remote_tlbs (a4ee1ca4) and in
   * kvm_mmu_commit_zap_page (c142786c6). The merged kernel has neither ("off").
   */
  extraBarriers: Schema.optionalWith(Schema.Literal("on", "off"), { default: () => "off" as const })
})
export type Variant = typeof Variant.Type
export const defaultVariant: Variant = { flush: "native", extraBarriers: "off" }

/** Variant keys and the values each accepts, for command-line parsing and messages. */
export const variantValues: Readonly<Record<keyof Variant, ReadonlyArray<string>>> = {
  flush: Flush.literals,
  extraBarriers: ["on", "off"]
}

/** The switches of one run. */
export interface Switches {
  readonly variant: Variant
  readonly bugs: ReadonlySet<Bug>
}

export const has = (s: Switches, bug: Bug): boolean => s.bugs.has(bug)
