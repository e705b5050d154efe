/**
 * Guest hypercalls (`kvm_emulate_hypercall`, `arch/x86/kvm/x86.c`), for the one the model's
 * guests make: KVM_HC_SCHED_YIELD (v5.3, spec §6 N6), with which the guest's
 * `kvm_smp_send_call_func_ipi` asks KVM to run a preempted target of its call-function IPI.
 */
import type { Sim } from "@kvmlab/sim"
import { ExitReason } from "../requests/Protocol.js"
import type { Vm } from "../Vm.js"
import type { HostCpu } from "./Sched.js"
import { kvm_vcpu_yield_to } from "./Spin.js"
import type { VcpuState } from "./State.js"

/** `KVM_HC_SCHED_YIELD` (include/uapi/linux/kvm_para.h). */
export const KVM_HC_SCHED_YIELD = 11

/** The guest's VMCALL: the hypercall number and argument in its registers, and the exit. */
export const hypercall = (v: VcpuState, nr: number, a0: number): ExitReason => {
  v.regs.rax = nr
  v.regs.rbx = a0
  return ExitReason.Vmcall
}

/** `kvm_emulate_hypercall` for EXIT_REASON_VMCALL. */
export function* kvm_emulate_hypercall(vm: Vm, v: VcpuState, host: HostCpu): Sim.Gen<void> {
  if (v.regs.rax === KVM_HC_SCHED_YIELD) yield* kvm_sched_yield(vm, v, v.regs.rbx, host)
}

/** `kvm_sched_yield`: yield to the vCPU with APIC id `dest_id` if it is ready and not `v`. */
function* kvm_sched_yield(vm: Vm, v: VcpuState, dest_id: number, host: HostCpu): Sim.Gen<void> {
  vm.count("directed_yield_attempted")
  if (host.single_task_running(v)) return
  const target = vm.vcpus[dest_id]
  if (target === undefined || !target.ready || target === v) return
  if ((yield* kvm_vcpu_yield_to(vm, v, target, host)) <= 0) return
  vm.count("directed_yield_successful")
}
