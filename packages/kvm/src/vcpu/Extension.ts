/**
 * How a mechanism attaches to the vCPU thread: the kernel's own hook points, each named after the
 * function the spine calls it from. Every hook exists (a mechanism that does nothing there gets
 * the no-op from `extension`), and the spine calls the VM's extensions in the order they were
 * attached. Requests are checked in `vcpu_enter_guest` in the kernel's order (`REQUEST_ORDER`),
 * whichever mechanism handles them.
 */
import type { Sim } from "@kvmlab/sim"
import {
  type ExitReason,
  KVM_REQ_CLOCK_UPDATE,
  KVM_REQ_EVENT,
  KVM_REQ_GLOBAL_CLOCK_UPDATE,
  KVM_REQ_MASTERCLOCK_UPDATE,
  KVM_REQ_MMU_FREE_OBSOLETE_ROOTS,
  KVM_REQ_MMU_SYNC,
  KVM_REQ_STEAL_UPDATE,
  KVM_REQ_TLB_FLUSH,
  KVM_REQ_VM_DEAD,
  requestBit
} from "../requests/Protocol.js"
import type { VcpuIoctl } from "./Protocol.js"
import type { HostCpu } from "./Sched.js"
import type { VcpuState } from "./State.js"

/** A request a mechanism handles, and what `vcpu_enter_guest` does when it is pending. */
export interface RequestHandler {
  readonly req: number
  /**
   * The handler, on the vCPU thread running on `host` (for a handler that may schedule); a result
   * <= 0 ends `vcpu_enter_guest` with it (KVM_REQ_VM_DEAD: -EIO).
   */
  readonly handle: (v: VcpuState, host: HostCpu) => Sim.Gen<number | void>
}

/**
 * The requests `vcpu_enter_guest` checks, in `arch/x86/kvm/x86.c`'s order (v6.15): VM_DEAD first,
 * the clock updates, MMU_SYNC, TLB_FLUSH ("the order matters here"), STEAL_UPDATE, and EVENT last
 * (with `kvm_check_and_inject_events`), just before interrupts go off.
 */
export const REQUEST_ORDER: ReadonlyArray<number> = [
  KVM_REQ_VM_DEAD,
  KVM_REQ_MMU_FREE_OBSOLETE_ROOTS,
  KVM_REQ_MASTERCLOCK_UPDATE,
  KVM_REQ_GLOBAL_CLOCK_UPDATE,
  KVM_REQ_CLOCK_UPDATE,
  KVM_REQ_MMU_SYNC,
  KVM_REQ_TLB_FLUSH,
  KVM_REQ_STEAL_UPDATE,
  KVM_REQ_EVENT
].map(requestBit)

/** A mechanism's part in the vCPU thread. */
export interface Extension {
  readonly name: string
  /** Requests it handles (each at its place in `REQUEST_ORDER`). */
  readonly requests: ReadonlyArray<RequestHandler>
  /** `vcpu_run`, at the top of every iteration (x86: `at_instruction_boundary = false`). */
  readonly vcpu_run_loop: (v: VcpuState) => void
  /**
   * Before each guest instruction: the mechanism's checks of its invariants; a broken one as
   * `[invariant, message]` (the spine reports it), undefined when they hold.
   */
  readonly guest_instruction: (v: VcpuState) => readonly [string, string] | undefined
  /** `vmx_handle_exit_irqoff`: at VM exit, interrupts still off. */
  readonly handle_exit_irqoff: (v: VcpuState, reason: ExitReason) => void
  /** Work at every VM exit, interrupts still off, after `handle_exit_irqoff` (§2.9's transfer). */
  readonly vmexit: (v: VcpuState) => Sim.Gen<void>
  /**
   * `kvm_mmu_reload`: in `vcpu_enter_guest` after the requests and before interrupts go off;
   * loads a root when the vCPU has none.
   */
  readonly kvm_mmu_reload: (v: VcpuState) => Sim.Gen<void>
  /** `kvm_arch_vcpu_put`, from `kvm_sched_out` (`v.preempted` says whether involuntary) or KVM_RUN's end. */
  readonly vcpu_put: (v: VcpuState) => Sim.Gen<void>
  /** `kvm_arch_vcpu_load`, from `kvm_sched_in` or KVM_RUN's start. */
  readonly vcpu_load: (v: VcpuState) => Sim.Gen<void>
  /** A vCPU ioctl the VMM sent (`KVM_SET_MSRS`, `KVM_KVMCLOCK_CTRL`), on the vCPU's thread between two KVM_RUNs. */
  readonly vcpu_ioctl: (v: VcpuState, cmd: VcpuIoctl) => Sim.Gen<void>
}

const nothing = function*(): Sim.Gen<void> {}
const noop = (): void => {}
const holds = (): undefined => undefined

/** An extension with `name`, doing nothing at every hook it does not give. */
export const extension = (name: string, hooks: Partial<Omit<Extension, "name">>): Extension => ({
  name,
  requests: [],
  vcpu_run_loop: noop,
  guest_instruction: holds,
  handle_exit_irqoff: noop,
  vmexit: nothing,
  kvm_mmu_reload: nothing,
  vcpu_put: nothing,
  vcpu_load: nothing,
  vcpu_ioctl: nothing,
  ...hooks
})

/**
 * The VM's extensions hook by hook, without those that do nothing there: what the spine calls
 * on its hot paths (an empty list costs nothing per VM exit or guest instruction).
 */
export interface Hooks {
  readonly vcpu_run_loop: ReadonlyArray<Extension["vcpu_run_loop"]>
  readonly guest_instruction: ReadonlyArray<Extension["guest_instruction"]>
  readonly handle_exit_irqoff: ReadonlyArray<Extension["handle_exit_irqoff"]>
  readonly vmexit: ReadonlyArray<Extension["vmexit"]>
  readonly kvm_mmu_reload: ReadonlyArray<Extension["kvm_mmu_reload"]>
  readonly vcpu_put: ReadonlyArray<Extension["vcpu_put"]>
  readonly vcpu_load: ReadonlyArray<Extension["vcpu_load"]>
  readonly vcpu_ioctl: ReadonlyArray<Extension["vcpu_ioctl"]>
}

export const hooksOf = (extensions: ReadonlyArray<Extension>): Hooks => {
  const given = <K extends keyof Hooks>(k: K, none: unknown) =>
    extensions.map((e) => e[k]).filter((f) => f !== none) as unknown as Hooks[K]
  return {
    vcpu_run_loop: given("vcpu_run_loop", noop),
    guest_instruction: given("guest_instruction", holds),
    handle_exit_irqoff: given("handle_exit_irqoff", noop),
    vmexit: given("vmexit", nothing),
    kvm_mmu_reload: given("kvm_mmu_reload", nothing),
    vcpu_put: given("vcpu_put", nothing),
    vcpu_load: given("vcpu_load", nothing),
    vcpu_ioctl: given("vcpu_ioctl", nothing)
  }
}
