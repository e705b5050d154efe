/**
 * The state of mechanism B (spec §2.1): the guest's `struct kvm_steal_time` per vCPU (its
 * `preempted`, `version` and `steal` fields are guest-memory locations the host writes through
 * its user mapping and the guest reads and cmpxchgs), the host's `vcpu->arch.st` cache and
 * `at_instruction_boundary`, and the guest's call-function IPI queue. Ghost fields serve PV-1
 * to PV-4 only.
 */
import type { Memory } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import { Slot } from "../vcpu/State.js"

/** `KVM_VCPU_PREEMPTED` (bit 0 of `preempted`). */
export const KVM_VCPU_PREEMPTED = 1 << 0
/** `KVM_VCPU_FLUSH_TLB` (bit 1), Peter's SHOULD_FLUSH. */
export const KVM_VCPU_FLUSH_TLB = 1 << 1
/** `KVM_VCPU_IPI_PENDING` (bit 2): Peter's proposal in thread 1 (spec §2.9), never merged. */
export const KVM_VCPU_IPI_PENDING = 1 << 2

/** A guest IPI: a call-function IPI from `from` (native), or the dedicated TLB vector (§2.9). */
export interface GuestIrq {
  readonly from: StealTime
  readonly vector: "call-function" | "tlb"
}

export class StealTime {
  // ---- struct kvm_steal_time, guest memory
  readonly preempted: Memory.Loc
  readonly version: Memory.Loc
  readonly steal: Memory.Loc
  /**
   * §2.9 made correct: generations instead of the one shared IPI_PENDING bit, as native x86 has
   * `tlb_gen`. Initiators take a generation from `flush_gen_req`; the flush that covers it (the
   * IPI handler, or the VM-exit transfer to SHOULD_FLUSH) publishes it in `flush_gen_done`.
   */
  readonly flush_gen_req: Memory.Loc
  readonly flush_gen_done: Memory.Loc
  // ---- host, vcpu->arch.st and friends
  /** `vcpu->arch.st.preempted`: the host's cached copy of the guest byte. */
  cachedPreempted = 0
  /** `vcpu->arch.st.last_steal`. */
  last_steal = 0
  /** `vcpu->arch.at_instruction_boundary`. */
  at_instruction_boundary = false
  // ---- the guest's call-function IPIs (flush_tlb_func)
  /** Pending guest IPIs: the initiator to acknowledge. */
  readonly guestIrqs: Array<GuestIrq> = []
  /** Injected at the last entry: the guest handles them before its next instruction. */
  readonly injected: Array<GuestIrq> = []
  /** Acknowledgements received by this vCPU as an initiator. */
  acks = 0
  readonly spin: Sim.WaitQueue
  // ---- ghost
  /** Step at which an initiator last dropped this vCPU from its mask (PV-1). */
  deferredAt = -1
  /** Step of this vCPU's last guest TLB flush (PV-1). */
  lastFlushAt = -1
  /** The last steal value a guest reader accepted (PV-4). */
  lastStealRead = 0

  constructor(readonly name: string, locs: {
    readonly preempted: Memory.Loc
    readonly version: Memory.Loc
    readonly steal: Memory.Loc
    readonly flush_gen_req: Memory.Loc
    readonly flush_gen_done: Memory.Loc
  }) {
    this.preempted = locs.preempted
    this.version = locs.version
    this.steal = locs.steal
    this.flush_gen_req = locs.flush_gen_req
    this.flush_gen_done = locs.flush_gen_done
    this.spin = Sim.makeWaitQueue(() => `${name} flush_tlb_multi wait`)
  }
}

/** The steal-time state of each vCPU of a VM with mechanism B. */
export const steal = new Slot<StealTime>("steal time")

/** Allocates a vCPU's steal-time area (and the §2.9 generations) in guest memory. */
export const make = (memory: Memory.Memory, name: string): StealTime => {
  const loc = (field: string) => memory.alloc(`${name}.steal_time.${field}`)
  return new StealTime(name, {
    preempted: loc("preempted"),
    version: loc("version"),
    steal: loc("steal"),
    flush_gen_req: loc("flush_gen_req"),
    flush_gen_done: loc("flush_gen_done")
  })
}
