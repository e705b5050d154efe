/**
 * Pause-loop exiting and directed yield: `handle_pause` with `grow_ple_window`
 * (`arch/x86/kvm/vmx/vmx.c`), and `kvm_vcpu_on_spin` with `kvm_vcpu_yield_to`
 * (`virt/kvm/kvm_main.c`, v6.15). A guest spinning on PAUSE longer than its PLE window exits;
 * KVM then yields the CPU to another vCPU of the VM that is runnable but not running, starting
 * after the last one boosted, preferring vCPUs preempted in guest kernel mode or (APICv) with an
 * interrupt pending. The window doubles at each pause-loop exit and goes back to the base
 * window when the vCPU is scheduled in (`shrink_ple_window` with `ple_window_shrink = 0`).
 */
import { Sim } from "@kvmlab/sim"
import { KVM_REQ_EVENT, requestBit } from "../requests/Protocol.js"
import type { Vm } from "../Vm.js"
import { pi_test_on } from "./Lapic.js"
import { type HostCpu, preempt } from "./Sched.js"
import type { VcpuState } from "./State.js"

/** Whether pause-loop exiting is on (`ple_gap != 0`). */
export const pleEnabled = (vm: Vm): boolean => vm.switches.variant.ple === "on"

/** The PLE window now (the base window until the first exit). */
export const ple_window = (vm: Vm, v: VcpuState): number => (v.ple_window > 0 ? v.ple_window : vm.costs.pleWindowNs)

/** `grow_ple_window`: `ple_window_grow = 2`, up to `ple_window_max`. */
const grow_ple_window = (vm: Vm, v: VcpuState): void => {
  v.ple_window = Math.min(ple_window(vm, v) * 2, vm.costs.pleWindowMaxNs)
}

/** `handle_pause`: grow the window, then `kvm_vcpu_on_spin(vcpu, true)` (PLE only exits at CPL 0). */
export function* handle_pause(vm: Vm, v: VcpuState, host: HostCpu): Sim.Gen<void> {
  vm.count("ple_exits")
  grow_ple_window(vm, v)
  yield* kvm_vcpu_on_spin(vm, v, true, host)
}

/**
 * `kvm_arch_dy_has_pending_interrupt`: with APICv, a posted interrupt outstanding (PID.ON);
 * without, KVM cannot tell cheaply and says no.
 */
function* kvm_arch_dy_has_pending_interrupt(vm: Vm, me: VcpuState, vcpu: VcpuState): Sim.Gen<boolean> {
  if (vm.switches.variant.apicv !== "on") return false
  return yield* pi_test_on(me.hw, vcpu)
}

/** `kvm_arch_dy_runnable`: a pending posted interrupt or KVM_REQ_EVENT (NMI/SMI are not modelled). */
function* kvm_arch_dy_runnable(vm: Vm, me: VcpuState, vcpu: VcpuState): Sim.Gen<boolean> {
  if (yield* kvm_arch_dy_has_pending_interrupt(vm, me, vcpu)) return true
  return yield* me.hw.test_bit(requestBit(KVM_REQ_EVENT), vcpu.requests)
}

/**
 * `kvm_vcpu_eligible_for_directed_yield`: a vCPU that is itself in a spin loop is eligible only
 * every other time it is considered, so two spinners do not keep boosting each other.
 */
const kvm_vcpu_eligible_for_directed_yield = (vcpu: VcpuState): boolean => {
  const eligible = !vcpu.spin_loop.in_spin_loop || vcpu.spin_loop.dy_eligible
  if (vcpu.spin_loop.in_spin_loop) vcpu.spin_loop.dy_eligible = !vcpu.spin_loop.dy_eligible
  return eligible
}

/**
 * `kvm_vcpu_yield_to` -> `yield_to(task, 1)`, and on success the `schedule()` that lets the
 * boosted task run. A target in guest mode (PF_VCPU) is running, so `yield_to` finds it not
 * boostable (0) as the kernel's early return does.
 */
export function* kvm_vcpu_yield_to(vm: Vm, me: VcpuState, target: VcpuState, host: HostCpu): Sim.Gen<number> {
  const yielded = yield* host.yield_to(me, target)
  if (yielded > 0 && host.need_resched(me)) yield* preempt(vm, me, host)
  return yielded
}

/** `kvm_vcpu_on_spin`: try the VM's other vCPUs, round-robin from the last one boosted. */
export function* kvm_vcpu_on_spin(vm: Vm, me: VcpuState, yield_to_kernel_mode: boolean, host: HostCpu): Sim.Gen<void> {
  const nr_vcpus = vm.vcpus.length
  if (nr_vcpus < 2) return
  me.spin_loop.in_spin_loop = true
  const start = vm.last_boosted_vcpu + 1
  let tries = 3
  for (let i = 0; i < nr_vcpus; i++) {
    const idx = (start + i) % nr_vcpus
    if (idx === me.vcpu_id) continue
    const vcpu = vm.vcpus[idx]!
    if (!vcpu.ready) continue
    // kvm_vcpu_is_blocking(vcpu) (rcuwait_active: the task published in vcpu->wait) && !vcpu_dy_runnable(vcpu)
    if ((yield* me.hw.READ_ONCE(vcpu.rcuwait_task)) !== 0 && !(yield* kvm_arch_dy_runnable(vm, me, vcpu))) continue
    // A vCPU preempted in guest user mode is likely not holding what `me` waits for, unless
    // it has an interrupt pending (it may be the IPI `me` is waiting on).
    if (vcpu.preempted && yield_to_kernel_mode && !(yield* kvm_arch_dy_has_pending_interrupt(vm, me, vcpu)) && !vcpu.preempted_in_kernel) continue
    if (!kvm_vcpu_eligible_for_directed_yield(vcpu)) continue
    const yielded = yield* kvm_vcpu_yield_to(vm, me, vcpu, host)
    if (yielded > 0) {
      vm.last_boosted_vcpu = idx
      vm.count("directed_yields")
      break
    }
    if (yielded < 0 && --tries === 0) break
  }
  me.spin_loop.in_spin_loop = false
  // Not eligible during the next spin loop.
  me.spin_loop.dy_eligible = false
}
