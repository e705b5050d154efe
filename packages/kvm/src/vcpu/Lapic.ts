/**
 * The guest's IPIs through KVM's local APIC emulation (`arch/x86/kvm/lapic.c`,
 * `arch/x86/kvm/vmx/posted_intr.c`, `vmx.c`): the sender's ICR write (`kvm_apic_send_ipi` ->
 * `__apic_accept_irq`), delivery with or without posted interrupts (the `apicv` variant), and the
 * target's side: the IRR injected for KVM_REQ_EVENT, the PIR synced at VM entry, and the
 * notification the CPU processes in guest mode.
 *
 * Costs (spec §6 N5, §10.1): a guest IPI is one round trip, `ipiSendNs` on the sender (charged
 * here, once per target) and `ipiDeliveryNs` to delivery. When it forces the target out of guest
 * mode, that exit and the entry after it are part of the round trip and are not charged again.
 */
import { Sim } from "@kvmlab/sim"
import { IN_GUEST_MODE, KVM_REQ_EVENT } from "../requests/Protocol.js"
import { kvm_make_request, kvm_vcpu_kick, kvm_vcpu_wake_up } from "../requests/Requests.js"
import type { HostThread, Vm } from "../Vm.js"
import type { VcpuState } from "./State.js"

/** The guest vectors the model sends, as bits of the IRR/PIR location. */
export const CALL_FUNCTION_VECTOR = 1 << 0
/** §2.9's dedicated TLB-flush vector (Peter Zijlstra's proposal; never merged). */
export const TLB_FLUSH_VECTOR = 1 << 1
/** The posted-interrupt descriptor's ON bit ("outstanding notification"). */
const PI_ON = 1 << 30
const VECTORS = CALL_FUNCTION_VECTOR | TLB_FLUSH_VECTOR

const apicv = (vm: Vm) => vm.switches.variant.apicv === "on"

/**
 * `kvm_apic_send_ipi` for one target (the x2APIC ICR write, handled on KVM's fast path): the
 * vector is accepted into the target's IRR (`kvm_lapic_set_vector`, a LOCK'd OR), then delivered:
 * with APICv through the posted-interrupt descriptor, otherwise with KVM_REQ_EVENT and a kick.
 */
export function* kvm_apic_send_ipi(vm: Vm, from: VcpuState, target: VcpuState, vector: number): Sim.Gen<void> {
  yield* Sim.point(vm.costs.ipiSendNs)
  vm.count("guest_ipis_sent")
  vm.kernel.event("apic.ipi", [from.vcpu_id, target.vcpu_id, vector])
  const t: HostThread = { name: from.name, hw: from.hw, cpu: from.cpu }
  if (apicv(vm)) return yield* vmx_deliver_posted_interrupt(vm, target, vector, t)
  yield* from.hw.atomic_fetch_or(vector, target.apic.irr)
  // vmx_deliver_interrupt without APICv: kvm_make_request(KVM_REQ_EVENT); kvm_vcpu_kick().
  yield* kvm_make_request(vm, KVM_REQ_EVENT, target, t)
  if (yield* kvm_vcpu_kick(vm, target, t, KVM_REQ_EVENT, 0)) target.apic.exitPrepaid = true
}

/**
 * `vmx_deliver_posted_interrupt`: set the vector in the PIR and ON, then
 * `kvm_vcpu_trigger_posted_interrupt`: a vCPU in guest mode gets the notification vector (no VM
 * exit); otherwise the next entry syncs the PIR, and a blocked vCPU is woken.
 */
function* vmx_deliver_posted_interrupt(vm: Vm, v: VcpuState, vector: number, t: HostThread): Sim.Gen<void> {
  // pi_test_and_set_pir(): a vector already pending needs nothing more.
  if (((yield* t.hw.atomic_fetch_or(vector, v.apic.irr)) & vector) !== 0) return
  // pi_test_and_set_on(): a notification already outstanding covers this vector. Its implied
  // barrier pairs with the smp_mb() after vcpu->mode = IN_GUEST_MODE in vcpu_enter_guest: either
  // this sees IN_GUEST_MODE, or the vCPU sees ON and syncs the PIR before entering (A1's shape).
  if (((yield* t.hw.atomic_fetch_or(PI_ON, v.apic.irr)) & PI_ON) !== 0) return
  if ((yield* t.hw.READ_ONCE(v.mode)) === IN_GUEST_MODE) {
    // __apic_send_IPI_mask(POSTED_INTR_VECTOR): within the round trip already charged.
    v.pcpu.notify(vm.kernel, v.apic)
    vm.count("posted_interrupt_notifications")
    return
  }
  yield* kvm_vcpu_wake_up(vm, v, t)
}

/**
 * Moves the pending vectors of the IRR (or the PIR) into the vectors the guest takes (`isr`):
 * `kvm_check_and_inject_events` for KVM_REQ_EVENT, and `vmx_sync_pir_to_irr` with APICv (which
 * clears ON first: `pi_clear_on(); smp_mb__after_atomic()`).
 */
function* takeVectors(v: VcpuState): Sim.Gen<number> {
  const bits = (yield* v.hw.xchg(v.apic.irr, 0)) & VECTORS
  v.apic.isr |= bits
  return bits
}

/** `kvm_check_and_inject_events` (KVM_REQ_EVENT): the IRR's vectors become the guest's to take. */
export function* kvm_inject_pending(vm: Vm, v: VcpuState): Sim.Gen<void> {
  if ((yield* takeVectors(v)) !== 0) vm.count("events_injected")
}

/**
 * `vmx_sync_pir_to_irr` in `vcpu_enter_guest`, after the entry barrier (APICv only): a posted
 * interrupt whose notification found the vCPU outside guest mode is taken at this entry.
 */
export function* sync_pir_to_irr(vm: Vm, v: VcpuState): Sim.Gen<void> {
  if (!apicv(vm)) return
  if (((yield* v.hw.READ_ONCE(v.apic.irr)) & PI_ON) === 0) return
  if ((yield* takeVectors(v)) !== 0) vm.count("pir_synced_at_entry")
}

/**
 * Posted-interrupt processing in guest mode, at the guest's next instruction after a
 * notification: the PIR's vectors go to the guest without a VM exit.
 */
export function* posted_interrupt_processing(vm: Vm, v: VcpuState): Sim.Gen<void> {
  v.apic.notified = false
  if ((yield* takeVectors(v)) !== 0) vm.count("posted_interrupts_taken_in_guest")
}

/**
 * `kvm_cpu_has_interrupt` for a vCPU deciding whether to stay halted, with APICv: ON. The PIR is
 * synced only when ON is set (a vector without ON belongs to a sender about to set ON and wake
 * the vCPU), and a vCPU that blocks with ON set sends itself the wake-up vector
 * (`pi_enable_wakeup_handler`), since a sender that found ON set sent nothing. Without APICv,
 * `__apic_accept_irq` follows every IRR vector with KVM_REQ_EVENT, which `vcpu_block` tests.
 */
export function* kvm_cpu_has_interrupt(vm: Vm, v: VcpuState): Sim.Gen<boolean> {
  if (!apicv(vm)) return false
  return ((yield* v.hw.READ_ONCE(v.apic.irr)) & PI_ON) !== 0
}

/** `pi_test_on` read by another CPU (`vmx_dy_apicv_has_pending_interrupt`): a posted interrupt outstanding. */
export function* pi_test_on(hw: VcpuState["hw"], v: VcpuState): Sim.Gen<boolean> {
  return ((yield* hw.READ_ONCE(v.apic.irr)) & PI_ON) !== 0
}

/** Whether the guest has vectors to handle before its next instruction. */
export const pending = (v: VcpuState): boolean => v.apic.isr !== 0

/** The guest's handlers take `vector` (`apic_eoi`): returns whether it was there. */
export const ack = (v: VcpuState, vector: number): boolean => {
  const had = (v.apic.isr & vector) !== 0
  v.apic.isr &= ~vector
  return had
}

/**
 * Drops a vector not yet taken by the guest, from the IRR/PIR with a LOCK'd AND and from the
 * vectors due at its next instruction (§2.9's VM-exit transfer: no spurious TLB vector). ON is
 * left alone: a sender may have set the vector and be about to set ON.
 */
export function* clear_pending(v: VcpuState, vector: number): Sim.Gen<void> {
  yield* v.hw.rmw(v.apic.irr, (x) => x & ~vector)
  v.apic.isr &= ~vector
}
