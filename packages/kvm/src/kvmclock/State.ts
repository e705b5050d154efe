/**
 * Mechanism D's shared state (spec §4.1, §10.3; `struct kvm_arch` and `struct kvm_vcpu_arch` of
 * v6.13). Memory locations for what several threads touch: the master pair and its seqcount
 * (`pvclock_sc`, under `tsc_write_lock`), `kvmclock_offset`, each vCPU's L1 TSC offset (written by
 * the VMM's `kvm_synchronize_tsc`, read by the vCPU). The TSC-matching bookkeeping is only ever
 * touched under `tsc_write_lock`, so it is plain. The ghosts serve the invariants: the master pair's
 * generation, each vCPU's view of it, and every pvti tuple a host published.
 */
import { type Memory, Seqcount, Spinlock } from "@kvmlab/memory"
import { Slot } from "../vcpu/State.js"
import type { VcpuState } from "../vcpu/State.js"
import type { Vm } from "../Vm.js"
import type { HostTime } from "./Time.js"

/** Per VM (`kvm->arch`'s clock fields). */
export class KvmClock {
  /** `kvm->arch.tsc_write_lock` (a raw spinlock, interrupts off). */
  readonly tsc_write_lock: Spinlock.Spinlock
  /** `kvm->arch.pvclock_sc`: the master pair's seqcount, written under `tsc_write_lock`. */
  readonly pvclock_sc: Seqcount.Seqcount
  readonly use_master_clock: Memory.Loc
  readonly master_kernel_ns: Memory.Loc
  readonly master_cycle_now: Memory.Loc
  /** `kvm->arch.kvmclock_offset`: kvmclock = base clock + this (KVM_SET_CLOCK moves it). */
  readonly kvmclock_offset: Memory.Loc
  /** clockUpdate=all-at-once (kvmlab's, after Andy's question): one writer per pvti at a time. */
  readonly pvclock_write_lock: Spinlock.Spinlock
  // ---- under tsc_write_lock (plain)
  nr_vcpus_matched_tsc = 0
  cur_tsc_generation = 0
  cur_tsc_offset = 0
  cur_tsc_write = 0
  cur_tsc_nsec = 0
  last_tsc_nsec = 0
  last_tsc_write = 0
  backwards_tsc_observed = false
  boot_vcpu_runs_old_kvmclock = false
  /** `kvm->arch.kvmclock_update_work` is queued (`schedule_delayed_work` of a pending work does nothing). */
  updateWorkPending = false
  // ---- ghost
  /** The master pair's generation: bumped at each `write_seqcount_begin` (CLK-2). */
  pairGen = 0
  /** The VM-wide updates between their start and their end (`kvm_start_pvclock_update` .. `_end`). */
  updating = 0
  /** Every tuple published into each vCPU's pvti, by its key (CLK-1), with the pair generation it came from. */
  readonly published: Array<Map<string, number>> = []
  /** The updates whose pair not every vCPU has published yet: their start times, by pair generation. */
  readonly pendingSince = new Map<number, number>()
  /** The last complete master pair and offset (CLK-3's reference), set at each update's end. */
  ref = { ns: 0, tsc: 0, offset: 0, master: false }
  /** What the update in progress has written so far (the stores may still sit in its store buffer). */
  next = { ns: 0, tsc: 0, offset: 0, master: false }
  constructor(readonly vm: Vm, readonly time: HostTime) {
    const m = vm.memory
    const loc = (f: string, v: number) => m.alloc(`${vm.name}.arch.${f}`, v)
    this.tsc_write_lock = Spinlock.make(m, `${vm.name}.arch.tsc_write_lock`)
    this.pvclock_sc = Seqcount.make(m, `${vm.name}.arch.pvclock_sc`)
    this.use_master_clock = loc("use_master_clock", 0)
    this.master_kernel_ns = loc("master_kernel_ns", 0)
    this.master_cycle_now = loc("master_cycle_now", 0)
    this.kvmclock_offset = loc("kvmclock_offset", 0)
    this.pvclock_write_lock = Spinlock.make(m, `${vm.name}.arch.pvclock_write_lock`)
  }
}

/** Per vCPU (`vcpu->arch`'s clock fields). */
export class VcpuClock {
  /** `vcpu->arch.l1_tsc_offset`: the guest's TSC is the host's plus this. */
  readonly l1_tsc_offset: Memory.Loc
  /** The TSC offset in the vCPU's VMCS (what its guest's RDTSC adds): `l1_tsc_offset` as of the vCPU's last pass through `vcpu_run`. */
  tsc_offset = 0
  /** `vcpu->arch.hw_tsc_khz` (0: mul/shift not computed yet). */
  hw_tsc_khz = 0
  /** `vcpu->arch.this_tsc_generation`, `this_tsc_write`, `this_tsc_nsec`. */
  this_tsc_generation = 0
  this_tsc_write = 0
  this_tsc_nsec = 0
  /** `vcpu->arch.last_guest_tsc`. */
  last_guest_tsc = 0
  // ---- ghost
  /** The pair generation this vCPU's pvti was last computed from (-1: never published). */
  pairSeen = -1
  constructor(memory: Memory.Memory, v: VcpuState) {
    this.l1_tsc_offset = memory.alloc(`${v.name}.arch.l1_tsc_offset`, 0)
  }
}

export const vcpuClock = new Slot<VcpuClock>("kvmclock state")

/** The VM's clock state, once mechanism D is attached. */
const byVm = new WeakMap<Vm, KvmClock>()
export const clockOf = (vm: Vm): KvmClock | undefined => byVm.get(vm)
export const setClock = (vm: Vm, c: KvmClock): void => {
  byVm.set(vm, c)
}
