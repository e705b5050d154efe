/**
 * `kvm->srcu` as the vCPU threads hold it (`kvm_vcpu_srcu_read_lock/unlock`) and a memslot
 * updater waits for it (`synchronize_srcu_expedited`), for the mechanisms that publish data
 * under SRCU (the memslot arrays, spec §3.3). Each vCPU's read-side counter is a memory location
 * (`srcu_data.srcu_lock_count/srcu_unlock_count` folded into one word: odd while the vCPU is
 * inside a read section), so a missing barrier on either side is a reachable bug and the grace
 * period is a wait the kernel sees.
 *
 * A VM without memslots has no `srcu` and the spine skips these calls: mechanisms A and B read
 * nothing published under SRCU, and their traces stay as they were.
 */
import type { Memory } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import type { HostThread, Vm } from "../Vm.js"
import type { VcpuState } from "./State.js"

export class Srcu {
  /** Per vCPU (by `vcpu_id`): its read-side counter, odd while inside a read section. */
  readonly readers: Array<Memory.Loc> = []
  /** Per vCPU: the counter's value, which only the vCPU's own thread changes. */
  readonly count: Array<number> = []
  /** Grace periods completed (statistics). */
  gracePeriods = 0
}

/** `init_srcu_struct(&kvm->srcu)`: a read-side counter for each vCPU of `vm`. */
export const make = (vm: Vm): Srcu => {
  const s = new Srcu()
  for (const v of vm.vcpus) {
    s.readers.push(vm.memory.alloc(`${v.path}.srcu_reader`, 0))
    s.count.push(0)
  }
  return s
}

/**
 * `kvm_vcpu_srcu_read_lock` -> `srcu_read_lock`: `this_cpu_inc(lock_count)` then `smp_mb()` (B):
 * the section's reads come after the increment is visible; pairs with the full barrier that
 * starts `synchronize_srcu`'s scan (so either the updater sees this reader, or the reader sees
 * what the updater published before it).
 */
export function* kvm_vcpu_srcu_read_lock(s: Srcu, v: VcpuState): Sim.Gen<void> {
  const c = ++s.count[v.vcpu_id]!
  yield* v.hw.WRITE_ONCE(s.readers[v.vcpu_id]!, c)
  yield* v.hw.smp_mb()
}

/**
 * `kvm_vcpu_srcu_read_unlock` -> `srcu_read_unlock`: `smp_mb()` (C) then
 * `this_cpu_inc(unlock_count)`: the section's reads are done before the updater can see it
 * left; pairs with the full barrier that ends `synchronize_srcu`'s scan. (`barrier` false: the
 * caller's bug switch removed it.)
 */
export function* kvm_vcpu_srcu_read_unlock(s: Srcu, v: VcpuState, barrier = true): Sim.Gen<void> {
  if (barrier) yield* v.hw.smp_mb()
  const c = ++s.count[v.vcpu_id]!
  yield* v.hw.WRITE_ONCE(s.readers[v.vcpu_id]!, c)
}

/**
 * `synchronize_srcu_expedited(&kvm->srcu)`: `smp_mb()`, then wait for every read section that
 * was open at the scan to close (a reader whose counter is odd: wait until it changes), then
 * `smp_mb()`. A section that opens after the scan sees everything published before it (B).
 */
export function* synchronize_srcu_expedited(s: Srcu, t: HostThread, costNs = 0): Sim.Gen<void> {
  yield* t.hw.smp_mb()
  yield* Sim.point(costNs) // the expedited grace period's own work (IPIs to the other CPUs)
  for (const r of s.readers) {
    const c = yield* t.hw.READ_ONCE(r)
    if (c % 2 === 1) yield* t.hw.smp_cond_load_acquire(r, (now) => now !== c)
  }
  yield* t.hw.smp_mb()
  s.gracePeriods++
}
