/**
 * The vCPU thread every mechanism shares (spec §1.4): `vcpu_run` around `vcpu_enter_guest` and
 * `vcpu_block`, following `arch/x86/kvm/x86.c` and `virt/kvm/kvm_main.c`: requests processed in
 * the kernel's order while OUTSIDE_GUEST_MODE, interrupts off, the mode store and the entry
 * barrier, the exit check, the guest, the VM exit, interrupts back on (which runs pending IPI
 * handlers), the exit handler. Halting goes through `kvm_vcpu_block`'s rcuwait loop, a
 * voluntary `schedule()` with the preempt notifiers. Mechanisms attach through their
 * `Extension`s (the VM's list); what the guest does, and how its exits are handled, is the
 * scenario's `Guest`; who else wants the physical CPU is the `HostCpu`.
 */
import { Sim } from "@kvmlab/sim"
import {
  ExitReason,
  EXITING_GUEST_MODE,
  IN_GUEST_MODE,
  KVM_MP_STATE_HALTED,
  KVM_MP_STATE_RUNNABLE,
  KVM_REQ_EVENT,
  KVM_REQ_UNBLOCK,
  KVM_REQ_VM_DEAD,
  OUTSIDE_GUEST_MODE,
  requestBit
} from "../requests/Protocol.js"
import type { Vm } from "../Vm.js"
import { REQUEST_ORDER, type RequestHandler } from "./Extension.js"
import { kvm_emulate_hypercall } from "./Hypercall.js"
import { kvm_cpu_has_interrupt, kvm_inject_pending, posted_interrupt_processing, sync_pir_to_irr } from "./Lapic.js"
import { handle_pause } from "./Spin.js"
import { alone, type HostCpu, kvm_sched_in, kvm_sched_out, resched_before_entry } from "./Sched.js"
import { wake1Lost } from "../requests/Invariants.js"
import { kvm_vcpu_srcu_read_lock, kvm_vcpu_srcu_read_unlock } from "./Srcu.js"
import { TASK_INTERRUPTIBLE, TASK_RUNNING, TIF_SIGPENDING, type VcpuState } from "./State.js"

const EIO = -5
const EINTR = -4

/** What runs in guest mode, and the host's handling of its exits. */
export interface Guest {
  /**
   * One guest step in guest mode (it must contain a scheduling point): `undefined` to go on,
   * or the reason of the VM exit it causes.
   */
  readonly step: (v: VcpuState) => Sim.Gen<ExitReason | undefined>
  /**
   * `handle_exit`, after interrupts are enabled again, on the vCPU thread whose CPU is `host`
   * (shared with other tasks when overcommitted: a handler that waits yields it through `host`).
   */
  readonly handleExit: (v: VcpuState, reason: ExitReason, host: HostCpu) => Sim.Gen<void>
}

/** `kvm_request_pending`: `READ_ONCE(vcpu->requests)`. */
function* kvm_request_pending(v: VcpuState): Sim.Gen<boolean> {
  return (yield* v.hw.READ_ONCE(v.requests)) !== 0
}

/** `kvm_check_request`: test, clear, then `smp_mb__after_atomic`. */
export function* kvm_check_request(vm: Vm, req: number, v: VcpuState): Sim.Gen<boolean> {
  const bit = requestBit(req)
  if (!(yield* v.hw.test_bit(bit, v.requests))) return false
  yield* v.hw.clear_bit(bit, v.requests) // kvm_clear_request
  v.ghost.consumedAt.set(bit, vm.kernel.steps)
  v.ghost.unkicked.delete(bit)
  v.ghost.declinedWakes &= ~(1 << bit)
  // smp_mb__after_atomic(): the payload after the bit; pairs with smp_wmb in __kvm_make_request (A3).
  yield* v.hw.smp_mb__after_atomic()
  return true
}

/** KVM_REQ_VM_DEAD: `vcpu_enter_guest` returns -EIO. */
function* vm_dead(): Sim.Gen<number> {
  return EIO
}

/** The handlers of the VM's extensions, in `REQUEST_ORDER`; the spine's own VM_DEAD and EVENT among them. */
export const requestHandlers = (vm: Vm): ReadonlyArray<RequestHandler> => {
  const own: Array<RequestHandler> = [
    { req: KVM_REQ_VM_DEAD, handle: vm_dead },
    {
      req: KVM_REQ_EVENT,
      // kvm_check_and_inject_events: pending guest interrupts become deliverable.
      handle: (v) => kvm_inject_pending(vm, v)
    }
  ]
  const all = [...own, ...vm.extensions.flatMap((e) => e.requests)]
  for (const h of all) {
    if (!REQUEST_ORDER.includes(requestBit(h.req))) throw new Error(`request ${requestBit(h.req)} has no place in vcpu_enter_guest's order (REQUEST_ORDER)`)
  }
  return REQUEST_ORDER.flatMap((bit) => all.filter((h) => requestBit(h.req) === bit))
}

/**
 * `xfer_to_guest_mode_work_pending()` for a signal: `read_thread_flags()`, TIF_SIGPENDING. After
 * the entry barrier it pairs, like the request bit, with the full barrier of the sender's
 * `set_bit` in `signal_wake_up` (A1's other half is the sender's kick reading `mode`).
 */
const signal_pending = (v: VcpuState): Sim.Yieldable<boolean> => v.hw.test_bit(TIF_SIGPENDING, v.thread_flags)

/**
 * `kvm_vcpu_exit_request`: EXITING, a pending request, or pending work (a signal). The requests it
 * read when they made it true are kept (`pendingSeen`, not a memory operation of its own) for
 * `spin_on_unhandled_requests`.
 */
function* kvm_vcpu_exit_request(v: VcpuState): Sim.Gen<boolean> {
  v.pendingSeen = 0
  if ((yield* v.hw.READ_ONCE(v.mode)) === EXITING_GUEST_MODE) return true
  const requests = yield* v.hw.READ_ONCE(v.requests) // kvm_request_pending
  if (requests !== 0) {
    v.pendingSeen = requests
    return true
  }
  return yield* signal_pending(v)
}

/**
 * The guest runs until an IPI or the tick forces it out, or it exits on its own; returns why. A
 * posted-interrupt notification is processed at the next instruction, without an exit.
 */
const guest_mode = Sim.proc(function* guest_mode(vm: Vm, v: VcpuState, guest: Guest, host: HostCpu): Sim.Gen<ExitReason> {
  for (;;) {
    const tick = host.guest_should_exit(v)
    if (v.pcpu.pendingIrq || tick) {
      vm.count(v.pcpu.pendingIrq ? "exits_ipi" : "exits_tick")
      // A guest IPI's round trip, charged to its sender, includes this exit and the next entry.
      if (v.pcpu.pendingIrq && v.apic.exitPrepaid) v.apic.entryPrepaid = true
      return ExitReason.ExternalInterrupt
    }
    if (v.apic.notified) yield* posted_interrupt_processing(vm, v)
    for (const check of vm.hooks.guest_instruction) {
      const broken = check(v)
      if (broken !== undefined) yield* Sim.fail(broken[0], broken[1])
    }
    const reason = yield* guest.step(v)
    if (reason !== undefined) return reason
  }
})

/**
 * `vcpu_run`'s busy loop while only requests no handler consumes are pending
 * (KVM_REQ_MCLOCK_INPROGRESS, spec §10.3): every pass handles nothing, sets IN_GUEST_MODE, finds
 * the request and cancels the entry, until someone clears it. On a CPU of its own the model runs
 * that loop as one kernel-visible wait for `vcpu->requests` to change, its time counted as spun
 * (`inprogress_spin_ns`): a search strategy cannot then starve the updater with passes of this loop.
 * On a shared CPU it stays a loop of passes, where the host's scheduler can preempt it.
 */
function* spin_on_unhandled_requests(vm: Vm, v: VcpuState, host: HostCpu): Sim.Gen<void> {
  const pending = v.pendingSeen
  if (host !== alone || pending === 0 || anyHandled(vm, pending)) return
  const t0 = vm.kernel.now
  yield* v.hw.smp_cond_load_relaxed(v.requests, (r) => r !== pending)
  vm.count("inprogress_spin_ns", vm.kernel.now - t0)
}

/** Whether `requests` has a bit some handler of the VM consumes (bits go past 31: no 32-bit `&`). */
const anyHandled = (vm: Vm, requests: number): boolean => {
  for (const h of vm.requestHandlers) if (Math.floor(requests / 2 ** requestBit(h.req)) % 2 === 1) return true
  return false
}

/** `vcpu_enter_guest`: 1 to go round again, <= 0 to return to userspace. */
export const vcpu_enter_guest = Sim.proc(function* vcpu_enter_guest(vm: Vm, v: VcpuState, guest: Guest, host: HostCpu): Sim.Gen<number> {
  const k = vm.kernel
  if (yield* kvm_request_pending(v)) {
    for (const h of vm.requestHandlers) {
      if (!(yield* kvm_check_request(vm, h.req, v))) continue
      const r = yield* h.handle(v, host)
      if (typeof r === "number" && r <= 0) return r
    }
  }

  for (const reload of vm.hooks.kvm_mmu_reload) yield* reload(v)
  // preempt_disable(); local_irq_disable(): from here an IPI stays pending, it is not lost.
  v.pcpu.local_irq_disable()
  yield* v.hw.smp_store_release(v.mode, IN_GUEST_MODE)
  v.ghost.nonWaitIpis = 0
  // kvm_vcpu_srcu_read_unlock(); smp_mb__after_srcu_read_unlock(): orders the mode store before
  // reading requests, the PIR and the page tables; pairs with the full barrier in
  // kvm_vcpu_exiting_guest_mode (A1) on the requester side. The barrier is the smp_mb() inside
  // srcu_read_unlock (smp_mb__after_srcu_read_unlock is empty); a VM that publishes nothing
  // under SRCU (no memslot updates) has the barrier alone.
  if (vm.srcu !== undefined) yield* kvm_vcpu_srcu_read_unlock(vm.srcu, v, !vm.bug("A.noEntryBarrier"))
  else if (!vm.bug("A.noEntryBarrier")) yield* v.hw.smp_mb()
  // Posted interrupts whose notification found this vCPU outside guest mode (APICv).
  if (vm.switches.variant.apicv === "on") yield* sync_pir_to_irr(vm, v)

  if (yield* kvm_vcpu_exit_request(v)) {
    yield* v.hw.WRITE_ONCE(v.mode, OUTSIDE_GUEST_MODE)
    yield* v.hw.smp_wmb()
    v.pcpu.local_irq_enable(k)
    if (vm.srcu !== undefined) yield* kvm_vcpu_srcu_read_lock(vm.srcu, v)
    vm.count("entries_cancelled")
    yield* spin_on_unhandled_requests(vm, v, host)
    return 1
  }

  v.ghost.guestSince = k.steps
  vm.count("vm_entries")
  k.event("guest.enter", [v.vcpu_id])
  if (v.apic.entryPrepaid) v.apic.entryPrepaid = false
  else yield* Sim.point(vm.costs.vmEntryNs)
  v.pcpu.guest = v.apic
  const reason = yield* guest_mode(vm, v, guest, host)
  v.pcpu.guest = undefined
  const prepaid = v.apic.entryPrepaid
  v.apic.exitPrepaid = false

  // VM exit: vcpu->mode = OUTSIDE_GUEST_MODE; smp_wmb() (A4: a WAIT sender released by the
  // IPI handler below may assume the vCPU has left guest mode).
  yield* v.hw.WRITE_ONCE(v.mode, OUTSIDE_GUEST_MODE)
  v.ghost.guestSince = -1
  yield* v.hw.smp_wmb()
  if (!prepaid) yield* Sim.point(vm.costs.vmExitNs)
  vm.count("vm_exits")
  k.event("guest.exit", [v.vcpu_id, reason])
  for (const h of vm.hooks.handle_exit_irqoff) h(v, reason)
  for (const h of vm.hooks.vmexit) yield* h(v)
  v.pcpu.local_irq_enable(k)
  if (vm.srcu !== undefined) yield* kvm_vcpu_srcu_read_lock(vm.srcu, v)
  // KVM's own exit handlers (PAUSE: pause-loop exiting; VMCALL: hypercalls), else the scenario's.
  if (reason === ExitReason.PauseInstruction) yield* handle_pause(vm, v, host)
  else if (reason === ExitReason.Vmcall) yield* kvm_emulate_hypercall(vm, v, host)
  else yield* guest.handleExit(v, reason, host)
  return 1
})

/**
 * x86 `kvm_arch_vcpu_runnable`: RUNNABLE, or `kvm_vcpu_has_events`: KVM_REQ_EVENT, which stands
 * here for an interrupt accepted into the IRR (made right after it) and for the events a
 * requester queues with it, or with APICv a posted interrupt outstanding.
 */
function* kvm_arch_vcpu_runnable(vm: Vm, v: VcpuState): Sim.Gen<boolean> {
  if (v.mp_state === KVM_MP_STATE_RUNNABLE) return true
  if (yield* v.hw.test_bit(requestBit(KVM_REQ_EVENT), v.requests)) return true
  return vm.switches.variant.apicv === "on" && (yield* kvm_cpu_has_interrupt(vm, v))
}

/** `kvm_vcpu_check_block`: < 0 when the vCPU should stop blocking. */
function* kvm_vcpu_check_block(vm: Vm, v: VcpuState): Sim.Gen<number> {
  if (yield* kvm_arch_vcpu_runnable(vm, v)) return EINTR
  if (yield* signal_pending(v)) return EINTR // signal_pending(current)
  if (yield* kvm_check_request(vm, KVM_REQ_UNBLOCK, v)) return EINTR
  return 0
}

/**
 * `kvm_vcpu_block` -> `rcuwait_wait_event`: publish the task in `vcpu->wait`, then loop:
 * `set_current_state(TASK_INTERRUPTIBLE)`, `kvm_vcpu_check_block`, and `schedule()`, which
 * sleeps while the state is still TASK_INTERRUPTIBLE (a waker's `try_to_wake_up` sets
 * TASK_RUNNING). The sleep is a voluntary `schedule()`: the preempt notifiers run with the task
 * not runnable. `finish_rcuwait` clears the task and sets TASK_RUNNING.
 */
export function* kvm_vcpu_block(vm: Vm, v: VcpuState, wake1: Sim.Monitor, host: HostCpu): Sim.Gen<void> {
  v.ghost.blocking = true
  // prepare_to_rcuwait(): rcu_assign_pointer(w->task, current).
  yield* v.hw.smp_store_release(v.rcuwait_task, 1)
  for (;;) {
    v.ghost.blocking = true
    // set_current_state(): smp_store_mb(); pairs with the smp_mb() in rcuwait_wake_up.
    if (vm.bug("M.noSetCurrentStateBarrier")) yield* v.hw.WRITE_ONCE(v.task_state, TASK_INTERRUPTIBLE)
    else yield* v.hw.smp_store_mb(v.task_state, TASK_INTERRUPTIBLE)
    if ((yield* kvm_vcpu_check_block(vm, v)) < 0) break
    // schedule(): sleeps unless a waker has set TASK_RUNNING since set_current_state().
    if ((yield* v.hw.READ_ONCE(v.task_state)) !== TASK_INTERRUPTIBLE) continue
    const lost = wake1Lost(vm.kernel, v, vm.memory.peek(v.requests), WAKEABLE)
    if (lost !== undefined) yield* Sim.fail("WAKE-1", lost)
    vm.count("blocks")
    yield* kvm_sched_out(vm, v, false)
    yield* host.sleep(v)
    yield* v.hw.smp_cond_load_acquire(v.task_state, (state) => state !== TASK_INTERRUPTIBLE)
    // Woken (try_to_wake_up made the task runnable): the wait for the CPU that follows is
    // scheduling, not a lost wake-up; a request it misses is caught (wake1Lost) when it sleeps again.
    v.ghost.woken()
    yield* host.wake(v)
    yield* kvm_sched_in(vm, v)
  }
  // finish_rcuwait(): rcu_assign_pointer(w->task, NULL); __set_current_state(TASK_RUNNING).
  yield* v.hw.WRITE_ONCE(v.rcuwait_task, 0)
  yield* v.hw.WRITE_ONCE(v.task_state, TASK_RUNNING)
  v.ghost.blocking = false
  v.ghost.wakeOwed = false
  v.ghost.declinedWakes = 0
  wake1.cold()
}

/** The requests `kvm_vcpu_check_block` acts on (`kvm_arch_vcpu_runnable`, KVM_REQ_UNBLOCK), as a mask. */
const WAKEABLE = (1 << requestBit(KVM_REQ_EVENT)) | (1 << requestBit(KVM_REQ_UNBLOCK))

/** x86 `vcpu_block` for a halted vCPU (halt-polling off). */
function* vcpu_block(vm: Vm, v: VcpuState, wake1: Sim.Monitor, host: HostCpu): Sim.Gen<number> {
  if (!(yield* kvm_arch_vcpu_runnable(vm, v))) {
    vm.count("halts")
    if (vm.srcu !== undefined) yield* kvm_vcpu_srcu_read_unlock(vm.srcu, v)
    yield* kvm_vcpu_block(vm, v, wake1, host)
    if (vm.srcu !== undefined) yield* kvm_vcpu_srcu_read_lock(vm.srcu, v)
    if (!(yield* kvm_arch_vcpu_runnable(vm, v))) return 1
  }
  v.mp_state = KVM_MP_STATE_RUNNABLE
  return 1
}

/**
 * `vcpu_run`: the KVM_RUN ioctl's loop. Returns the value KVM_RUN returns to userspace:
 * -EINTR for a signal (VM teardown here), -EIO for KVM_REQ_VM_DEAD.
 */
export const vcpu_run = Sim.proc(function* vcpu_run(vm: Vm, v: VcpuState, guest: Guest, host: HostCpu): Sim.Gen<number> {
  const wake1 = vm.kernel.monitor("WAKE-1", { maxHotSteps: WAKE1_MAX_STEPS, fair: true })
  v.ghost.wake1 = wake1
  for (;;) {
    for (const h of vm.hooks.vcpu_run_loop) h(v)
    const r = v.mp_state === KVM_MP_STATE_RUNNABLE
      ? yield* vcpu_enter_guest(vm, v, guest, host)
      : yield* vcpu_block(vm, v, wake1, host)
    if (r <= 0) return r
    yield* v.hw.clear_bit(requestBit(KVM_REQ_UNBLOCK), v.requests) // kvm_clear_request(KVM_REQ_UNBLOCK)
    if (yield* signal_pending(v)) return EINTR // xfer_to_guest_mode_handle_work(): a signal
    yield* resched_before_entry(vm, v, host) // xfer_to_guest_mode_handle_work(): TIF_NEED_RESCHED
  }
})

/**
 * The WAKE-1 monitor bound: a wake-up owed to a blocked vCPU must happen within this many steps
 * of the vCPU thread and the thread that owes it (a fair monitor: a strategy that starves both is
 * not a lost wake-up).
 */
export const WAKE1_MAX_STEPS = 5_000

/** `kvm_emulate_halt`: the guest executed HLT. */
export const kvm_emulate_halt = (vm: Vm, v: VcpuState): void => {
  v.mp_state = KVM_MP_STATE_HALTED
  vm.count("halt_exits")
}

export { EINTR, EIO }
