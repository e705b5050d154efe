/**
 * The invariants of mechanism A (spec §1.8), checked where the events they are about happen:
 * REQ-1 at each guest instruction, REQ-2 when a WAIT request returns, TLB-1 at each guest access
 * through the TLB, WALK-1 (the shadow MMU's, `mmu/Invariants.ts`) at each dereference by a
 * lockless walker, IPI-1 when an IPI is decided, WAKE-1 as a liveness monitor while a wake-up
 * is owed. Each check counts itself and returns undefined when the property holds, or the
 * message of the violation:
 * `const bad = Inv.req1(k, v); if (bad !== undefined) yield* Sim.fail("REQ-1", bad)`.
 */
import type { Sim } from "@kvmlab/sim"
import type { Vm } from "../Vm.js"
import { modeName, requestNameOfBit } from "./Protocol.js"
import * as Mmu from "../mmu/Invariants.js"
import type { TlbEntry, VcpuState } from "../vcpu/State.js"

/** Mechanism A's invariants; WALK-1 is the shadow MMU's (`mmu/Invariants.ts`). */
export const ids = ["REQ-1", "REQ-2", "TLB-1", ...Mmu.ids, "IPI-1", "WAKE-1"] as const

/**
 * REQ-1, no lost request: V is executing guest code while a request is pending whose requester
 * read `mode`, decided no IPI was needed, and no IPI is on its way to V.
 */
export const req1 = (k: Sim.Kernel, v: VcpuState): string | undefined => {
  if (k.check("REQ-1", v.ghost.unkicked.size === 0 || v.ghost.kicksDecided > v.kicksHandled)) return undefined
  const [bit, at] = [...v.ghost.unkicked.entries()][0]!
  return `${v.name} executes guest code with ${requestNameOfBit(bit)} (bit ${bit}) pending, though its requester read vcpu->mode at step ${at}, ` +
    `sent no IPI, and no IPI is on its way`
}

/**
 * REQ-2, WAIT completion: when a WAIT request (or a flush that relies on one) returns, no target
 * the requester saw in guest mode or in a lockless walk (its mode read was not OUTSIDE) is still
 * in a guest-execution interval or walk that began before the request. A target seen OUTSIDE
 * is REQ-1's and WALK-1's business: it must notice the request, or the change, by itself.
 */
export const req2 = (
  k: Sim.Kernel,
  seen: ReadonlyArray<readonly [VcpuState, number]>,
  began: number,
  what: string
): string | undefined => {
  for (const [v, mode] of seen) {
    if (mode <= 0) continue // OUTSIDE, or woken instead
    const inGuest = v.ghost.guestSince >= 0 && v.ghost.guestSince < began
    const inWalk = v.ghost.walkSince >= 0 && v.ghost.walkSince < began
    if (!k.check("REQ-2", !inGuest && !inWalk)) {
      return `${what} (began at step ${began}, read ${v.name}'s mode as ${modeName(mode)}) returned while ${v.name} is still ` +
        (inGuest ? `in the guest since step ${v.ghost.guestSince}` : `inside a lockless walk since step ${v.ghost.walkSince}`)
    }
  }
  return undefined
}

/** TLB-1: a guest access through a TLB entry filled before a completed remote flush began. */
export const tlb1 = (k: Sim.Kernel, vm: Vm, v: VcpuState, gfn: number, e: TlbEntry): string | undefined =>
  k.check("TLB-1", e.fill >= vm.completedFlushBegin)
    ? undefined
    : `${v.name} accessed gfn ${gfn} through a TLB entry (pfn ${e.pfn}) filled at step ${e.fill}, ` +
      `before a kvm_flush_remote_tlbs that began at step ${vm.completedFlushBegin} and has returned`


/**
 * IPI-1, economy: no IPI to a vCPU whose mode was OUTSIDE at the read, and at most one IPI per
 * guest-mode interval for non-WAIT requests.
 */
export const ipi1 = (k: Sim.Kernel, v: VcpuState, oldMode: number, wait: boolean): string | undefined => {
  if (!k.check("IPI-1", oldMode !== 0)) return `an IPI was decided for ${v.name} although its mode read ${modeName(oldMode)}`
  if (!wait && !k.check("IPI-1", v.ghost.nonWaitIpis <= 1)) {
    return `${v.ghost.nonWaitIpis} IPIs for non-WAIT requests sent to ${v.name} in one guest-mode interval`
  }
  return undefined
}

/**
 * WAKE-1, no lost wake-up: a vCPU that goes to sleep in `kvm_vcpu_block` has no request pending
 * (in memory, for every CPU to see) whose requester's wake-up found it not yet asleep. With the
 * barrier pair (set_current_state / rcuwait_wake_up) one of the two always sees the other.
 */
export const wake1Lost = (k: Sim.Kernel, v: VcpuState, requests: number, wakeable: number): string | undefined => {
  const lost = v.ghost.declinedWakes & requests & wakeable
  if (k.check("WAKE-1", lost === 0)) return undefined
  return `${v.name} sleeps in kvm_vcpu_block with ${requestNameOfBit(Math.log2(lost & -lost))} pending, ` +
    `although its requester's kvm_vcpu_wake_up found it not yet asleep: the wake-up is lost`
}

/** The WAKE-1 monitor bound: a wake-up owed to a blocked vCPU must happen within this many steps. */
export const WAKE1_MAX_STEPS = 5_000
