/**
 * Mechanism A's part in the vCPU thread: KVM_REQ_TLB_FLUSH (`kvm_vcpu_flush_tlb_all`) in
 * `vcpu_enter_guest`, and REQ-1 checked before every guest instruction. Every VM has it.
 */
import { Sim } from "@kvmlab/sim"
import { extension, type Extension } from "../vcpu/Extension.js"
import type { VcpuState } from "../vcpu/State.js"
import type { Vm } from "../Vm.js"
import * as Inv from "./Invariants.js"
import { KVM_REQ_TLB_FLUSH } from "./Protocol.js"

/** `kvm_vcpu_flush_tlb_all`: drop every guest TLB entry. */
export function* kvm_vcpu_flush_tlb_all(vm: Vm, v: VcpuState): Sim.Gen<void> {
  yield* Sim.point(vm.costs.tlbFlushNs)
  if (!vm.bug("M.flushRequestIgnored")) v.tlb.clear()
  vm.count("tlb_flushes")
  vm.kernel.event("tlb.flush", [v.vcpu_id])
}

/** The extension of mechanism A for `vm`. */
export const requests = (vm: Vm): Extension =>
  extension("requests", {
    requests: [{ req: KVM_REQ_TLB_FLUSH, handle: (v) => kvm_vcpu_flush_tlb_all(vm, v) }],
    guest_instruction: (v) => {
      const lost = Inv.req1(vm.kernel, v)
      return lost === undefined ? undefined : ["REQ-1", lost]
    }
  })
