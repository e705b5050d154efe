/**
 * Mechanism A's variants and bug switches (spec §1.9, §1.10, §10.1), with the spec's names. Every
 * switch off, and `extraBarriers=off`, is the merged kernel.
 */
import { Schema } from "effect"
import { knob, type Switch } from "../vcpu/Switch.js"

export const switches = {
  "A.noEntryBarrier": {
    spec: "§1.9: drop smp_mb__after_srcu_read_unlock in vcpu_enter_guest",
    breaks: "REQ-1",
    needs: {}
  },
  "A.noRequesterBarrier": {
    spec: "§1.9: no full barrier between setting the request (and page-table writes) and reading vcpu->mode",
    breaks: "REQ-1",
    needs: {},
    note: "on x86 the barrier is the LOCK prefix of set_bit and cmpxchg, so the switch also removes their atomicity (§10.1): the bit is set and EXITING_GUEST_MODE stored with plain loads and stores, and two requesters can both kick (IPI-1); the pure-ordering form of the bug needs a weaker memory model"
  },
  "A.noWalkBarrier": {
    spec: "§1.9: plain store of READING_SHADOW_PAGE_TABLES in walk_shadow_page_lockless_begin",
    breaks: "WALK-1",
    needs: {}
  },
  "A.kickNoWaitForFlush": {
    spec: "§1.9: KVM_REQ_TLB_FLUSH without KVM_REQUEST_WAIT",
    breaks: "REQ-2",
    needs: {}
  },
  "A.exitingSkipsIpiForWait": {
    spec: "§1.9: EXITING_GUEST_MODE suppresses the IPI for WAIT requests too",
    breaks: "REQ-2",
    needs: {}
  },
  "M.kickIgnoresMode": {
    spec: "mutant (no historical bug): kvm_vcpu_kick sends its IPI without kvm_arch_vcpu_should_kick, whatever vcpu->mode is",
    breaks: "IPI-1",
    needs: {},
    mutant: true
  },
  "M.flushRequestIgnored": {
    spec: "mutant (no historical bug): KVM_REQ_TLB_FLUSH is consumed without flushing the guest TLB",
    breaks: "TLB-1",
    needs: {},
    mutant: true
  },
  "M.noSetCurrentStateBarrier": {
    spec: "mutant (no historical bug): kvm_vcpu_block's set_current_state is a plain store (__set_current_state), so the sleeper's state can pass its read of the requests",
    breaks: "WAKE-1",
    needs: {},
    mutant: true
  }
} as const satisfies Record<string, Switch>

/**
 * The two smp_mb()s thread 4 removed as redundant: in kvm_flush_remote_tlbs (a4ee1ca4) and in
 * kvm_mmu_commit_zap_page (c142786c6). The merged kernel has neither ("off").
 */
export const ExtraBarriers = Schema.Literal("on", "off")

/** Mechanism A's variant settings. */
export const variant = {
  /** The smp_mb()s thread 4 removed: "off" is the merged kernel. */
  extraBarriers: knob(ExtraBarriers, "off")
}
