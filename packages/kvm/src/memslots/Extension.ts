/**
 * Mechanism C's part in the vCPU thread, and its setup: KVM_REQ_MMU_FREE_OBSOLETE_ROOTS
 * (`kvm_mmu_free_obsolete_roots`, early in `vcpu_enter_guest`), `kvm_mmu_reload` before each
 * entry, and `attach`, which gives the VM its memslots, its shadow MMU, `kvm->srcu` (the spine
 * then takes the vCPUs' read sections as the kernel does) and each vCPU its MMU and MMIO cache.
 */
import { kvm_mmu_free_obsolete_roots, kvm_mmu_reload, Mmu, vcpuMmu, VcpuMmu } from "../mmu/Mmu.js"
import { KVM_REQ_MMU_FREE_OBSOLETE_ROOTS } from "../requests/Protocol.js"
import { extension } from "../vcpu/Extension.js"
import * as Srcu from "../vcpu/Srcu.js"
import type { Vm } from "../Vm.js"
import { MmioCache, mmioCache, Memslots } from "./State.js"

export interface MemslotsOptions {
  /** Guest frames the shadow MMU's roots cover. */
  readonly gfns: number
  /** SPTEs of a last-level shadow page. */
  readonly sptesPerPage: number
  /** The address space of vCPU `i` (1: in SMM). */
  readonly asOf: (i: number) => number
}

/** Sets up mechanism C on `vm` (its variant settings from the VM's switches) and attaches its extension. */
export const attach = (vm: Vm, o: MemslotsOptions): Memslots => {
  const variant = vm.switches.variant
  const mmu = new Mmu(vm, { gfns: o.gfns, sptesPerPage: o.sptesPerPage, zapBatch: Number(variant.zapBatch) })
  const ms = new Memslots(vm, mmu, Number(variant.addressSpaces), Number(variant.mmioGenBits))
  vm.srcu = Srcu.make(vm)
  for (const v of vm.vcpus) {
    const as = Math.min(o.asOf(v.vcpu_id), ms.nr_as - 1)
    vcpuMmu.set(v, new VcpuMmu(as))
    mmioCache.set(v, new MmioCache(as))
  }
  vm.attach(
    extension("memslots", {
      requests: [{ req: KVM_REQ_MMU_FREE_OBSOLETE_ROOTS, handle: (v) => kvm_mmu_free_obsolete_roots(mmu, v) }],
      kvm_mmu_reload: (v) => kvm_mmu_reload(mmu, v)
    })
  )
  return ms
}

/**
 * Slot 0 over host pages 1..`npages` (gfn g at host page g + 1) in both arrays of every address
 * space, as if the VMM's first KVM_SET_USER_MEMORY_REGION had run before the vCPUs: an
 * approximation that spends no generation on it.
 */
export const prepopulateSlot0 = (ms: Memslots, npages: number): void => {
  for (const pair of ms.arrays) for (const a of pair) a.slots.set(0, { id: 0, as_id: a.as_id, base_gfn: 0, npages, userspace_addr: 1, flags: 0 })
}
