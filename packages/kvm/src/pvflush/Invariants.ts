/**
 * The invariants of mechanism B (spec §2.7), checked where their events happen: PV-1 at each
 * guest instruction and emulated access, PV-2 when the initiator waits, PV-3 at each guest
 * instruction, PV-4 when a guest reader accepts a steal value. Each check counts itself and
 * returns undefined when the property holds, or the message of the violation.
 */
import { Sim } from "@kvmlab/sim"
import type { StealTime } from "./State.js"
import { KVM_VCPU_PREEMPTED } from "./Protocol.js"

export const ids = ["PV-1", "PV-2", "PV-3", "PV-4"] as const

/** PV-1: no guest instruction after an initiator deferred this vCPU's flush, until it has flushed. */
export const pv1 = (k: Sim.Kernel, st: StealTime, what: string): string | undefined =>
  k.check("PV-1", st.deferredAt <= st.lastFlushAt)
    ? undefined
    : `${st.name} ${what} although an initiator deferred its TLB flush at step ${st.deferredAt} and its last flush was at step ${st.lastFlushAt}`

/**
 * PV-1 for an emulated instruction: it completes with a translation walked at `walkedAt`; an
 * initiator that deferred this vCPU's flush after that walk relies on it not being used.
 */
export const pv1Held = (k: Sim.Kernel, st: StealTime, walkedAt: number): string | undefined =>
  k.check("PV-1", st.deferredAt <= walkedAt)
    ? undefined
    : `${st.name} completes an emulated access with a translation walked at step ${walkedAt}, although an initiator changed the page table and deferred its TLB flush at step ${st.deferredAt}`

/**
 * PV-1, flush semantics: a guest TLB entry filled before a completed guest flush began. The
 * message names the initiator whose flush returned without covering this entry (its request
 * was lost or absorbed).
 */
export const pv1Stale = (
  k: Sim.Kernel,
  name: string,
  page: number,
  fill: number,
  flush: { readonly began: number; readonly by: string } | undefined
): string | undefined =>
  k.check("PV-1", flush === undefined || fill >= flush.began)
    ? undefined
    : `${name} used a TLB entry for page ${page} filled at step ${fill}, before ${flush!.by}'s flush_tlb_multi of that page began (step ${flush!.began}); that flush has returned, so ${flush!.by}'s request to ${name} was lost`

/** PV-2: the initiator never waits for a vCPU it deferred. */
export const pv2 = (k: Sim.Kernel, target: StealTime, deferredHere: boolean): string | undefined =>
  k.check("PV-2", !deferredHere) ? undefined : `the initiator waits for ${target.name}, whose flush it deferred because it was preempted`

/**
 * PV-3, when the host reports: PREEMPTED is set only for a task preempted while runnable
 * (`vcpu->preempted`), not when it blocks or returns to userspace.
 */
export const pv3Reported = (k: Sim.Kernel, st: StealTime, preempted: boolean): string | undefined =>
  k.check("PV-3", preempted)
    ? undefined
    : `${st.name} is reported preempted (KVM_VCPU_PREEMPTED written) although its task is not preempted: it blocked or returned to userspace`

/** PV-3: PREEMPTED is clear whenever the vCPU executes guest code. */
export const pv3 = (k: Sim.Kernel, st: StealTime, byte: number): string | undefined =>
  k.check("PV-3", (byte & KVM_VCPU_PREEMPTED) === 0)
    ? undefined
    : `${st.name} executes guest code with KVM_VCPU_PREEMPTED still set in its steal_time.preempted (${byte})`

/** PV-4: a reader accepts only an even, unchanged version, and steal never goes back. */
export const pv4 = (k: Sim.Kernel, st: StealTime, v1: number, v2: number, steal: number): string | undefined => {
  if (k.check("PV-4", v1 % 2 === 0 && v1 === v2 && steal >= st.lastStealRead)) {
    st.lastStealRead = steal
    return undefined
  }
  return `${st.name}'s steal clock accepted version ${v1}/${v2} with steal ${steal} (last ${st.lastStealRead})`
}

