/**
 * The requester side of mechanism A (spec §1.3, §1.5): `kvm_make_request`,
 * `kvm_make_vcpus_request_mask`, `kvm_make_all_cpus_request`, `kvm_vcpu_kick`,
 * `kvm_vcpu_wake_up` and `kvm_flush_remote_tlbs`, in `virt/kvm/kvm_main.c`'s order of operations.
 */
import { Cpu } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"
import type { Pcpu } from "../host/Pcpu.js"
import type { HostThread, Vm } from "../Vm.js"
import * as Inv from "./Invariants.js"
import {
  EXITING_GUEST_MODE,
  IN_GUEST_MODE,
  KVM_REQ_TLB_FLUSH,
  KVM_REQUEST_NO_ACTION,
  KVM_REQUEST_NO_WAKEUP,
  KVM_REQUEST_WAIT,
  OUTSIDE_GUEST_MODE,
  requestBit
} from "./Protocol.js"
import { TASK_INTERRUPTIBLE, TASK_RUNNING, type VcpuState } from "../vcpu/State.js"

/**
 * `__kvm_make_request`: publish the payload, then set the bit. Under `A.noRequesterBarrier` the
 * bit is set without a LOCK prefix (a load and a store, like `__set_bit`), so nothing orders it,
 * or the page-table writes before it, against the later read of `mode`.
 */
export function* __kvm_make_request(vm: Vm, req: number, v: VcpuState, t: HostThread): Sim.Gen<void> {
  const bit = requestBit(req)
  // smp_wmb(): the payload before the bit; pairs with smp_mb__after_atomic in kvm_check_request (A3).
  yield* t.hw.smp_wmb()
  if (vm.bug("A.noRequesterBarrier")) {
    const old = yield* t.hw.READ_ONCE(v.requests)
    yield* t.hw.WRITE_ONCE(v.requests, Cpu.hasBit(old, bit) ? old : old + 2 ** bit)
  } else {
    yield* t.hw.set_bit(bit, v.requests)
  }
}

/**
 * `kvm_clear_request(req, vcpu)` from the requester's side (`kvm_end_pvclock_update` withdrawing
 * KVM_REQ_MCLOCK_INPROGRESS): a plain `clear_bit`, LOCK'd on x86. The vCPU owes nothing for a
 * request that was withdrawn, by its requester or by another updater clearing the same bit (REQ-1's
 * ghost forgets it; what that costs the other updater is CLK-2's business).
 */
export function* kvm_clear_request(vm: Vm, req: number, v: VcpuState, t: HostThread): Sim.Gen<void> {
  const bit = requestBit(req)
  yield* t.hw.clear_bit(bit, v.requests)
  // As if consumed: a requester that reads the mode after this owes no IPI for a bit now clear.
  v.ghost.consumedAt.set(bit, vm.kernel.steps)
  v.ghost.unkicked.delete(bit)
  vm.kernel.event("request.clear", [v.vcpu_id, bit])
}

/** `kvm_make_request(req, vcpu)`: the caller usually kicks afterwards. */
export function* kvm_make_request(vm: Vm, req: number, v: VcpuState, t: HostThread): Sim.Gen<void> {
  yield* __kvm_make_request(vm, req, v, t)
  vm.kernel.event("request", [v.vcpu_id, requestBit(req)])
  v.ghost.setAt.set(requestBit(req), vm.kernel.steps)
}

/**
 * `kvm_vcpu_exiting_guest_mode`: the full barrier of A1/A2, then IN_GUEST -> EXITING. Returns
 * the mode found. `smp_mb__before_atomic()` is free on x86: the LOCK-prefixed cmpxchg is the
 * barrier. It pairs with smp_mb__after_srcu_read_unlock in vcpu_enter_guest (A1) and with
 * smp_store_mb in walk_shadow_page_lockless_begin (A2).
 */
export function* kvm_vcpu_exiting_guest_mode(vm: Vm, v: VcpuState, t: HostThread): Sim.Gen<number> {
  if (vm.bug("A.noRequesterBarrier")) {
    // No full barrier: a plain read, and a plain store of EXITING when it found IN_GUEST.
    const mode = yield* t.hw.READ_ONCE(v.mode)
    if (mode === IN_GUEST_MODE) yield* t.hw.WRITE_ONCE(v.mode, EXITING_GUEST_MODE)
    return mode
  }
  yield* t.hw.smp_mb__before_atomic()
  return yield* t.hw.cmpxchg(v.mode, IN_GUEST_MODE, EXITING_GUEST_MODE)
}

/** `kvm_request_needs_ipi`: WAIT needs the IPI unless OUTSIDE; otherwise only IN_GUEST does. Returns [needs, mode]. */
export function* kvm_request_needs_ipi(vm: Vm, v: VcpuState, req: number, t: HostThread): Sim.Gen<[boolean, number]> {
  const mode = yield* kvm_vcpu_exiting_guest_mode(vm, v, t)
  // Waiting must be done only if the vCPU has really left guest mode: EXITING only promises a
  // future exit. A.exitingSkipsIpiForWait applies the non-WAIT rule to WAIT requests as well.
  if ((req & KVM_REQUEST_WAIT) !== 0 && !vm.bug("A.exitingSkipsIpiForWait")) return [mode !== OUTSIDE_GUEST_MODE, mode]
  return [mode === IN_GUEST_MODE, mode]
}

/**
 * `kvm_vcpu_wake_up` -> `rcuwait_wake_up`: wakes the vCPU's task if it is blocked. The smp_mb()
 * in rcuwait_wake_up pairs with set_current_state() in kvm_vcpu_block: either this reads the
 * task the sleeper published, or the sleeper reads the request made before it. `req` is the
 * request this wake-up is for, if any (WAKE-1 remembers one whose wake-up found nobody).
 */
export function* kvm_vcpu_wake_up(vm: Vm, v: VcpuState, t: HostThread, req?: number): Sim.Gen<boolean> {
  yield* t.hw.smp_mb()
  // task = rcu_dereference(w->task); if (task) wake_up_process(task)
  const woke = (yield* t.hw.READ_ONCE(v.rcuwait_task)) !== 0 &&
    // try_to_wake_up(): only a task still in TASK_INTERRUPTIBLE is made TASK_RUNNING.
    (yield* t.hw.cmpxchg(v.task_state, TASK_INTERRUPTIBLE, TASK_RUNNING)) === TASK_INTERRUPTIBLE
  if (!woke) {
    // Ghost (WAKE-1): the request is still pending, and its wake-up found nobody asleep.
    const bit = req === undefined ? 0 : 1 << requestBit(req)
    if ((vm.memory.peek(v.requests) & bit) !== 0) v.ghost.declinedWakes |= bit
    return false
  }
  v.ready = true // WRITE_ONCE(vcpu->ready, true): a candidate for directed yield
  vm.count("halt_wakeup")
  v.ghost.woken() // ghost (WAKE-1): the wake-up happened here, when the task became runnable
  return true
}

/** WAKE-1: a wake-up is owed to a vCPU blocked in kvm_vcpu_block. */
const owe = (v: VcpuState): void => {
  if (!v.ghost.blocking || v.ghost.wake1 === undefined) return
  v.ghost.wakeOwed = true
  v.ghost.wake1.hot(`a request that may wake ${v.name} was made while it was blocked`)
}

/** A CPU chosen for an IPI, and the vCPU the IPI is meant to force out. */
export interface KickTarget {
  readonly pcpu: Pcpu
  readonly vcpu: VcpuState
}

/** Puts `v` in the IPI mask; returns IPI-1's verdict (undefined when it holds). */
const decideIpi = (vm: Vm, v: VcpuState, req: number, oldMode: number, t: HostThread, mask: Array<KickTarget>): string | undefined => {
  // READ_ONCE(vcpu->cpu): a vCPU migrating after this point leaves guest mode anyway.
  const cpu = v.cpu
  if (cpu === -1 || cpu === t.cpu) return undefined
  v.ghost.kicksDecided++
  if ((req & KVM_REQUEST_WAIT) === 0) v.ghost.nonWaitIpis++
  mask.push({ pcpu: v.pcpu, vcpu: v })
  return Inv.ipi1(vm.kernel, v, oldMode, (req & KVM_REQUEST_WAIT) !== 0)
}

/** Records REQ-1's obligation when the requester decided no IPI was needed. */
const noIpiNeeded = (vm: Vm, v: VcpuState, req: number): void => {
  vm.count("ipis_avoided")
  if ((req & KVM_REQUEST_NO_ACTION) !== 0) return
  const bit = requestBit(req)
  // Already consumed since it was set: nothing owed.
  if ((v.ghost.consumedAt.get(bit) ?? -1) > (v.ghost.setAt.get(bit) ?? -1)) return
  if (!v.ghost.unkicked.has(bit)) v.ghost.unkicked.set(bit, vm.kernel.steps)
}

/**
 * `kvm_make_vcpu_request`: one vCPU's part of a broadcast request. Returns the mode the requester
 * read, or -1 when it woke the vCPU instead (REQ-2 uses it).
 */
export const kvm_make_vcpu_request = Sim.proc(function* kvm_make_vcpu_request(vm: Vm, v: VcpuState, req: number, mask: Array<KickTarget>, t: HostThread): Sim.Gen<number> {
  if ((req & KVM_REQUEST_NO_ACTION) === 0) yield* kvm_make_request(vm, req, v, t)
  if ((req & KVM_REQUEST_NO_WAKEUP) === 0) {
    owe(v)
    if (yield* kvm_vcpu_wake_up(vm, v, t, req)) return -1
  }
  const [needs, mode] = yield* kvm_request_needs_ipi(vm, v, req, t)
  if (needs) {
    const bad = decideIpi(vm, v, req, mode, t, mask)
    if (bad !== undefined) yield* Sim.fail("IPI-1", bad)
  } else noIpiNeeded(vm, v, req)
  return mode
})

/**
 * `kvm_kick_many_cpus` -> `smp_call_function_many(cpus, ack_kick, NULL, wait)`: one IPI per
 * CPU, each costing `sendNs`; with `wait`, returns only after every target has run the handler
 * (A4). Returns whether any IPI went out.
 */
export function* kvm_kick_many_cpus(vm: Vm, mask: ReadonlyArray<KickTarget>, wait: boolean, sendNs = vm.costs.ipiSendNs): Sim.Gen<boolean> {
  if (mask.length === 0) return false
  const seqs: Array<number> = []
  for (const m of mask) {
    yield* Sim.point(sendNs)
    seqs.push(m.pcpu.post(vm.kernel, m.vcpu))
    vm.kernel.event("ipi.send", [m.pcpu.id, m.vcpu.vcpu_id])
    vm.count("ipis_sent")
  }
  if (wait) {
    const began = vm.kernel.now
    for (let i = 0; i < mask.length; i++) yield* mask[i]!.pcpu.waitHandled(seqs[i]!)
    vm.count("ipi_wait_ns", vm.kernel.now - began)
  }
  return true
}

/** The outcome of a broadcast: whether IPIs went out, and the mode read for each target. */
export interface Broadcast {
  readonly called: boolean
  readonly seen: ReadonlyArray<readonly [VcpuState, number]>
}

/** `kvm_make_vcpus_request_mask` with the modes it read, for REQ-2. */
export const make_vcpus_request_mask = Sim.proc(function* make_vcpus_request_mask(vm: Vm, req: number, targets: ReadonlyArray<VcpuState>, t: HostThread): Sim.Gen<Broadcast> {
  const began = vm.kernel.steps
  const mask: Array<KickTarget> = []
  const seen: Array<readonly [VcpuState, number]> = []
  for (const v of targets) seen.push([v, yield* kvm_make_vcpu_request(vm, v, req, mask, t)])
  const called = yield* kvm_kick_many_cpus(vm, mask, (req & KVM_REQUEST_WAIT) !== 0)
  if ((req & KVM_REQUEST_WAIT) !== 0) {
    const bad = Inv.req2(vm.kernel, seen, began, "a WAIT request")
    if (bad !== undefined) yield* Sim.fail("REQ-2", bad)
  }
  return { called, seen }
})

/** `kvm_make_vcpus_request_mask`: the request to every vCPU in `targets`. Returns whether IPIs went out. */
export function* kvm_make_vcpus_request_mask(vm: Vm, req: number, targets: ReadonlyArray<VcpuState>, t: HostThread): Sim.Gen<boolean> {
  return (yield* make_vcpus_request_mask(vm, req, targets, t)).called
}

/** `kvm_make_all_cpus_request`. */
export const kvm_make_all_cpus_request = (vm: Vm, req: number, t: HostThread): Sim.Gen<boolean> =>
  kvm_make_vcpus_request_mask(vm, req, vm.vcpus, t)

/**
 * `kvm_flush_remote_tlbs`. The caller has already changed the page tables; the full barrier in
 * kvm_vcpu_exiting_guest_mode orders those writes and the request bit before each mode read
 * (pairs with the entry barrier in vcpu_enter_guest, A1, and walk_shadow_page_lockless_begin,
 * A2). With extraBarriers=on, the smp_mb() of a4ee1ca4 (the tlbs_dirty era) comes first.
 */
export const kvm_flush_remote_tlbs = Sim.proc(function* kvm_flush_remote_tlbs(vm: Vm, t: HostThread): Sim.Gen<void> {
  vm.count("remote_tlb_flush_requests")
  const began = vm.kernel.steps
  vm.kernel.event("kvm_flush_remote_tlbs", [vm.id, began])
  // Historical smp_mb() (a4ee1ca4): ordered the tlbs_dirty snapshot before the mode reads;
  // redundant with the barrier in kvm_vcpu_exiting_guest_mode (thread 4).
  if (vm.switches.variant.extraBarriers === "on") yield* t.hw.smp_mb()
  const req = vm.bug("A.kickNoWaitForFlush") ? KVM_REQ_TLB_FLUSH & ~KVM_REQUEST_WAIT : KVM_REQ_TLB_FLUSH
  const b = yield* make_vcpus_request_mask(vm, req, vm.vcpus, t)
  if (b.called) vm.count("remote_tlb_flush")
  // The caller frees or reuses what it unmapped as soon as this returns: REQ-2 must hold even
  // when the request went out without WAIT.
  const bad = Inv.req2(vm.kernel, b.seen, began, "kvm_flush_remote_tlbs")
  if (bad !== undefined) yield* Sim.fail("REQ-2", bad)
  if (began > vm.completedFlushBegin) vm.completedFlushBegin = began
})

/** `kvm_arch_vcpu_should_kick`: the cmpxchg IN_GUEST -> EXITING found IN_GUEST. Returns [kick, mode]. */
function* kvm_arch_vcpu_should_kick(vm: Vm, v: VcpuState, t: HostThread): Sim.Gen<readonly [boolean, number]> {
  const mode = yield* kvm_vcpu_exiting_guest_mode(vm, v, t)
  return [mode === IN_GUEST_MODE, mode] as const
}

/**
 * `kvm_vcpu_kick` (`__kvm_vcpu_kick(vcpu, false)`): wake it, or IPI it out of guest mode. `sendNs`
 * is what sending the IPI costs here (0 when the caller has paid for the round trip). Returns
 * whether an IPI went out.
 */
export const kvm_vcpu_kick = Sim.proc(function* kvm_vcpu_kick(vm: Vm, v: VcpuState, t: HostThread, req?: number, sendNs = vm.costs.ipiSendNs): Sim.Gen<boolean> {
  owe(v)
  if (yield* kvm_vcpu_wake_up(vm, v, t, req)) return false
  const [kick, mode] = yield* kvm_arch_vcpu_should_kick(vm, v, t)
  if (!kick && !vm.bug("M.kickIgnoresMode")) {
    if (req !== undefined) noIpiNeeded(vm, v, req)
    else vm.count("ipis_avoided")
    return false
  }
  const mask: Array<KickTarget> = []
  const bad = decideIpi(vm, v, 0, mode, t, mask)
  if (bad !== undefined) yield* Sim.fail("IPI-1", bad)
  // smp_send_reschedule(cpu): no waiting.
  return yield* kvm_kick_many_cpus(vm, mask, false, sendNs)
})

/** `kvm_make_request(req, vcpu); kvm_vcpu_kick(vcpu)`: the usual pairing for a non-broadcast request. */
export const kvm_make_request_and_kick = Sim.proc(function* kvm_make_request_and_kick(vm: Vm, req: number, v: VcpuState, t: HostThread): Sim.Gen<void> {
  yield* kvm_make_request(vm, req, v, t)
  yield* kvm_vcpu_kick(vm, v, t, req)
})
