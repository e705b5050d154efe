/**
 * The host side of mechanism B (spec §2.5, corrected by §10.1), in `arch/x86/kvm/x86.c`'s order:
 * `kvm_arch_vcpu_put` -> `kvm_steal_time_set_preempted` (only for an involuntary preemption, at an
 * instruction boundary, once: the cached copy), `kvm_arch_vcpu_load` -> KVM_REQ_STEAL_UPDATE, and
 * `record_steal_time` with its `xchg`, flush and version/steal seqcount — all as the mechanism's
 * extension of the vCPU thread (`stealTime`).
 */
import { Sim } from "@kvmlab/sim"
import { ExitReason, KVM_REQ_STEAL_UPDATE } from "../requests/Protocol.js"
import { kvm_make_request } from "../requests/Requests.js"
import { extension, type Extension } from "../vcpu/Extension.js"
import type { VcpuState } from "../vcpu/State.js"
import type { Vm } from "../Vm.js"
import { flushGuestTlb, vmexit_transfer } from "./Guest.js"
import * as Inv from "./Invariants.js"
import { make, makeSmp, smp, steal, type StealTime } from "./State.js"
import { KVM_VCPU_FLUSH_TLB, KVM_VCPU_IPI_PENDING, KVM_VCPU_PREEMPTED } from "./Protocol.js"

/** Whether the guest was given KVM_FEATURE_PV_TLB_FLUSH (the scenario's flush variant). */
const pvTlbFlush = (vm: Vm) => vm.switches.variant.flush !== "native"

/** `kvm_vcpu_flush_tlb_guest`: flush the guest's TLB (VPID/ASID). */
export const kvm_vcpu_flush_tlb_guest = (vm: Vm, v: VcpuState): Sim.Gen<void> =>
  flushGuestTlb(vm, v, "guest_tlb_flushes_deferred", "tlb.flush_guest")

/**
 * `kvm_steal_time_set_preempted`, from `kvm_arch_vcpu_put` when `vcpu->preempted`. Reports the
 * preemption only at an instruction boundary (the CVE-2022-39189 fix, undone by
 * `B.preemptedMidEmulation`), with the MSR enabled, and once (the cached copy).
 */
export function* kvm_steal_time_set_preempted(vm: Vm, v: VcpuState): Sim.Gen<void> {
  const st = steal.of(v)
  if (!st.at_instruction_boundary && !vm.bug("B.preemptedMidEmulation")) {
    vm.count("preemption_other")
    return
  }
  vm.count("preemption_reported")
  // The cached copy (8c6de56a42e0, CVE-2019-3016's second half): report once per preemption, or
  // a second put before record_steal_time rewrites PREEMPTED over a FLUSH_TLB the guest set.
  if (st.cachedPreempted !== 0 && !vm.bug("B.noPreemptedCache")) return
  const reported = Inv.pv3Reported(vm.kernel, st, v.preempted)
  if (reported !== undefined) yield* Sim.fail("PV-3", reported)
  if (vm.switches.variant.flush === "pv-ipi-pending") {
    // §2.9 keeps other bits in the byte (a SHOULD_FLUSH transferred at the last exit must
    // survive until record_steal_time), so the store becomes a LOCK OR.
    yield* v.hw.atomic_fetch_or(KVM_VCPU_PREEMPTED, st.preempted)
  } else {
    // copy_to_user_nofault(&st->preempted, &preempted, 1): a single byte store.
    yield* v.hw.WRITE_ONCE(st.preempted, KVM_VCPU_PREEMPTED)
  }
  st.cachedPreempted = KVM_VCPU_PREEMPTED
}

/** `record_steal_time`, for KVM_REQ_STEAL_UPDATE before the guest runs. */
export function* record_steal_time(vm: Vm, v: VcpuState): Sim.Gen<void> {
  const st = steal.of(v)
  const hw = v.hw
  if (vm.bug("B.readCopyWriteback")) return yield* recordByCopy(vm, v, st)
  if (vm.switches.variant.flush === "pv-ipi-pending") {
    // §2.9 keeps IPI_PENDING, which the guest owns, in the same byte: the host clears only its
    // own bits (a try_cmpxchg loop; an xchg would release a waiting initiator unflushed, §10.1).
    let old = yield* hw.READ_ONCE(st.preempted)
    for (;;) {
      const found = yield* hw.cmpxchg(st.preempted, old, old & KVM_VCPU_IPI_PENDING)
      if (found === old) break
      old = found
    }
    st.cachedPreempted = 0
    if ((old & KVM_VCPU_FLUSH_TLB) !== 0) yield* kvm_vcpu_flush_tlb_guest(vm, v)
  } else if (pvTlbFlush(vm)) {
    // xchgb on the user mapping: totally ordered with the guest's cmpxchg in
    // kvm_flush_tlb_multi on the same byte (§2.6).
    const old = yield* hw.xchg(st.preempted, 0)
    st.cachedPreempted = 0
    if ((old & KVM_VCPU_FLUSH_TLB) !== 0) yield* kvm_vcpu_flush_tlb_guest(vm, v)
  } else {
    yield* hw.WRITE_ONCE(st.preempted, 0)
    st.cachedPreempted = 0
  }
  let version = yield* hw.READ_ONCE(st.version)
  if (version % 2 === 1) version += 1 // uninitialised junk
  yield* hw.WRITE_ONCE(st.version, version + 1)
  // smp_wmb(): version odd before steal; pairs with virt_rmb() in kvm_steal_clock.
  yield* hw.smp_wmb()
  const stolen = yield* hw.READ_ONCE(st.steal)
  yield* hw.WRITE_ONCE(st.steal, stolen + v.run_delay - st.last_steal)
  st.last_steal = v.run_delay
  // smp_wmb(): steal before the even version; pairs with virt_rmb() in kvm_steal_clock.
  yield* hw.smp_wmb()
  yield* hw.WRITE_ONCE(st.version, version + 2)
}

/**
 * CVE-2019-3016 (`B.readCopyWriteback`): the pre-5.6 code read the whole struct through a cached
 * mapping, decided the flush from its copy, and wrote the copy back: a FLUSH_TLB the guest set in
 * between is overwritten with 0 and never acted on.
 */
function* recordByCopy(vm: Vm, v: VcpuState, st: StealTime): Sim.Gen<void> {
  const hw = v.hw
  const copy = {
    preempted: yield* hw.READ_ONCE(st.preempted),
    version: yield* hw.READ_ONCE(st.version),
    steal: yield* hw.READ_ONCE(st.steal)
  }
  // xchg(&vcpu->arch.st.steal.preempted, 0) on the copy.
  const old = copy.preempted
  copy.preempted = 0
  st.cachedPreempted = 0
  if (pvTlbFlush(vm) && (old & KVM_VCPU_FLUSH_TLB) !== 0) yield* kvm_vcpu_flush_tlb_guest(vm, v)
  if (copy.version % 2 === 1) copy.version += 1
  copy.version += 1
  // kvm_write_guest_cached(whole struct)
  yield* hw.WRITE_ONCE(st.preempted, copy.preempted)
  yield* hw.WRITE_ONCE(st.version, copy.version)
  yield* hw.smp_wmb()
  copy.steal += v.run_delay - st.last_steal
  st.last_steal = v.run_delay
  yield* hw.WRITE_ONCE(st.steal, copy.steal)
  yield* hw.smp_wmb()
  yield* hw.WRITE_ONCE(st.version, copy.version + 1)
}

/** `kvm_arch_vcpu_put`'s steal-time part: PREEMPTED for an involuntary preemption only. */
function* kvm_arch_vcpu_put(vm: Vm, v: VcpuState): Sim.Gen<void> {
  if (v.preempted || vm.bug("B.reportVoluntaryPut")) yield* kvm_steal_time_set_preempted(vm, v)
}

/**
 * Mechanism B's extension of the vCPU thread: KVM_REQ_STEAL_UPDATE (`record_steal_time`), the
 * instruction-boundary flag, PV-1 and PV-3
 * before each guest instruction, §2.9's transfer at VM exit (with `flush=pv-ipi-pending`), and
 * the preempt notifiers: `kvm_arch_vcpu_put` reports PREEMPTED only for an involuntary
 * preemption (54aa83c90198; `B.reportVoluntaryPut` reports every put), `kvm_arch_vcpu_load`
 * requests the steal-time update.
 */
export const stealTime = (vm: Vm): Extension =>
  extension("steal time", {
    requests: [{ req: KVM_REQ_STEAL_UPDATE, handle: (v) => record_steal_time(vm, v) }],
    vcpu_run_loop: (v) => {
      steal.of(v).at_instruction_boundary = false
    },
    handle_exit_irqoff: (v, reason) => {
      // vmx_handle_exit_irqoff: an external interrupt exit is at an instruction boundary.
      if (reason === ExitReason.ExternalInterrupt) steal.of(v).at_instruction_boundary = true
    },
    guest_instruction: (v) => {
      // PV-1 (no instruction while a deferred flush is owed) and PV-3 (PREEMPTED clear in guest mode).
      const st = steal.of(v)
      const owed = Inv.pv1(vm.kernel, st, "executes a guest instruction")
      if (owed !== undefined) return ["PV-1", owed]
      const preempted = Inv.pv3(vm.kernel, st, vm.memory.peek(st.preempted))
      return preempted === undefined ? undefined : ["PV-3", preempted]
    },
    ...(vm.switches.variant.flush === "pv-ipi-pending" ? { vmexit: (v: VcpuState) => vmexit_transfer(vm, v) } : {}),
    vcpu_put: (v) => kvm_arch_vcpu_put(vm, v),
    vcpu_load: (v) => kvm_make_request(vm, KVM_REQ_STEAL_UPDATE, v, { name: v.name, hw: v.hw, cpu: v.cpu })
  })

/**
 * Sets up mechanism B on `vm`: every vCPU's steal-time area and the guest's call-function data
 * (a csd per other CPU, the call queue) in guest memory, and the extension.
 */
export const attach = (vm: Vm): void => {
  for (const v of vm.vcpus) steal.set(v, make(vm.memory, v.name, v.path))
  for (const v of vm.vcpus) smp.set(v, makeSmp(vm.memory, v.path, vm.vcpus.filter((o) => o !== v)))
  vm.attach(stealTime(vm))
}
