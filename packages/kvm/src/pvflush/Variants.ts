/**
 * Mechanism B's variants and bug switches (spec §2.8, §2.9, §10.1), with the spec's names. Every
 * switch off is the merged kernel; `flush` picks the guest's remote flush.
 */
import { Schema } from "effect"
import { knob, type Switch } from "../vcpu/Switch.js"

const pvFlush = { flush: ["pv", "pv-ipi-pending"] }
const ipiPending = { flush: ["pv-ipi-pending"] }

export const switches = {
  "B.readCopyWriteback": {
    spec: "§2.8, CVE-2019-3016: record_steal_time reads the struct, clears preempted in a copy and writes it back",
    breaks: "PV-1",
    needs: pvFlush
  },
  "B.preemptedMidEmulation": {
    spec: "§2.8, CVE-2022-39189: preempted reported outside an instruction boundary",
    breaks: "PV-1",
    needs: pvFlush
  },
  "B.noPreemptedCache": {
    spec: "§10.1, CVE-2019-3016's second half (8c6de56a42e0): kvm_steal_time_set_preempted without the cached preempted check, so a second put rewrites PREEMPTED over a FLUSH_TLB",
    breaks: "PV-1",
    needs: pvFlush
  },
  "B.reportVoluntaryPut": {
    spec: "§10.1, 54aa83c90198: PREEMPTED reported on every vcpu_put, voluntary ones included (blocking, return to userspace)",
    breaks: "PV-3",
    needs: pvFlush
  },
  "P.invertedMaskClear": {
    spec: "§2.9: the IPI_PENDING scheme drops the CPU from the mask when the new state has IPI_PENDING",
    breaks: "PV-1",
    needs: ipiPending
  },
  "P.sharedPendingBitABA": {
    spec: "§2.9: IPI_PENDING as one shared bit instead of a per-initiator generation",
    breaks: "PV-1",
    needs: ipiPending
  },
  "P.transferWithoutFlushRequest": {
    spec: "§2.9: the VM-exit transfer of IPI_PENDING to SHOULD_FLUSH raises no flush request",
    breaks: "PV-1",
    needs: ipiPending
  },
  "M.waitsForSkipped": {
    spec: "mutant (no historical bug): kvm_flush_tlb_multi leaves a preempted vCPU it gave KVM_VCPU_FLUSH_TLB in the mask, and waits for it",
    breaks: "PV-2",
    needs: { flush: ["pv"] },
    mutant: true
  },
  "M.stealClockNoRetry": {
    spec: "mutant (no historical bug): kvm_steal_clock accepts its first read, without the version retry",
    breaks: "PV-4",
    needs: {},
    mutant: true
  }
} as const satisfies Record<string, Switch>

/** Which remote TLB flush the guest uses (thread 1): native IPIs, the merged PV flush (§2.4-2.6), or Peter's IPI_PENDING scheme (§2.9). */
export const Flush = Schema.Literal("native", "pv", "pv-ipi-pending")
export type Flush = typeof Flush.Type

/** Mechanism B's variant settings. */
export const variant = {
  /** The guest's remote flush: "native" (IPIs to every target) unless a comparison asks for another. */
  flush: knob(Flush, "native")
}
