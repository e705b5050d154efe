/**
 * The state of mechanism B (spec §2.1): the guest's `struct kvm_steal_time` per vCPU (its
 * `preempted`, `version` and `steal` fields are guest-memory locations the host writes through
 * its user mapping and the guest reads and cmpxchgs), the host's `vcpu->arch.st` cache and
 * `at_instruction_boundary`; and the guest's `smp_call_function_many` data (`GuestSmp`). Ghost
 * fields serve PV-1 to PV-4 only.
 */
import type { Memory } from "@kvmlab/memory"
import { Slot } from "../vcpu/State.js"

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
  }
}

/** The steal-time state of each vCPU of a VM with mechanism B. */
export const steal = new Slot<StealTime>("steal time")

/**
 * Allocates the steal-time area (and the §2.9 generations) of the vCPU `name` in guest memory,
 * its locations named after `path` (`vcpu[1].steal_time.preempted`).
 */
export const make = (memory: Memory.Memory, name: string, path = name): StealTime => {
  const loc = (field: string) => memory.alloc(`${path}.steal_time.${field}`)
  return new StealTime(name, {
    preempted: loc("preempted"),
    version: loc("version"),
    steal: loc("steal"),
    flush_gen_req: loc("flush_gen_req"),
    flush_gen_done: loc("flush_gen_done")
  })
}

/**
 * The guest kernel's `smp_call_function_many` data for one CPU (`kernel/smp.c`): its per-CPU
 * `cfd` csd for each other CPU, whose CSD_FLAG_LOCK the initiator sets and the target's handler
 * clears (`csd_unlock`: a release store; `csd_lock_wait`: an acquire), and its
 * `call_single_queue`, an llist: its head is a memory location that `llist_add` and
 * `llist_del_all` change with LOCK'd instructions (here: the count of queued csds), and the
 * entries themselves a list changed at the same step as the head.
 */
export class GuestSmp {
  /** `per_cpu_ptr(cfd->csd, cpu)->node.u_flags` for each other vCPU (by vcpu_id): CSD_FLAG_LOCK. */
  readonly csd = new Map<number, Memory.Loc>()
  /** The head of `call_single_queue` (the number of csds on it). */
  readonly queued: Memory.Loc
  /** `call_single_queue`'s entries: the csds queued to this CPU. */
  readonly call_single_queue: Array<Memory.Loc> = []
  constructor(queued: Memory.Loc) {
    this.queued = queued
  }
}

/** The guest's call-function data of each vCPU. */
export const smp = new Slot<GuestSmp>("guest smp_call_function data")

/** Allocates a vCPU's csds, one for each of `others`, in guest memory. */
export const makeSmp = (memory: Memory.Memory, name: string, others: ReadonlyArray<{ readonly vcpu_id: number }>): GuestSmp => {
  const s = new GuestSmp(memory.alloc(`${name}.call_single_queue`))
  for (const o of others) s.csd.set(o.vcpu_id, memory.alloc(`${name}.cfd.csd[${o.vcpu_id}]`))
  return s
}
