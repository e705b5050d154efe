/**
 * Mechanism D's invariants (spec §4.7, §10.3), with the spec's ids. Each counts itself
 * (`k.check`) and returns the violation's message, or undefined when it holds.
 */
import type { Sim } from "@kvmlab/sim"
import type { VcpuState } from "../vcpu/State.js"
import { PVCLOCK_TSC_STABLE_BIT } from "./Protocol.js"
import type { KvmClock } from "./State.js"

export const ids = ["CLK-1", "CLK-2", "CLK-3", "CLK-4", "CLK-5", "CLK-6"] as const

/**
 * CLK-1, no torn pvti: the tuple a reader accepted (even version, unchanged across its read) is
 * one a host published into that pvti (or the page's zeros before the first).
 */
export const clk1 = (k: Sim.Kernel, c: KvmClock, who: string, owner: number, key: string): string | undefined =>
  k.check("CLK-1", key === "0/0/0/0/0/0" || c.published[owner]!.has(key))
    ? undefined
    : `${who} accepted vcpu${owner}'s pvti as ${key} (version/tsc_timestamp/system_time/mul/shift/STABLE), which no publish wrote: a torn pvti`

/**
 * CLK-2, lockstep: with the master clock in use, no vCPU executes guest code after a VM-wide
 * update began (its `write_seqcount_begin`) until it has taken the new pair in its own
 * `kvm_guest_time_update`. Checked before each guest instruction of a vCPU that has published.
 */
export const clk2 = (k: Sim.Kernel, c: KvmClock, v: VcpuState, seen: number, master: boolean): string | undefined =>
  k.check("CLK-2", seen < 0 || !master || seen >= c.pairGen)
    ? undefined
    : `${v.name} executes guest code with the master pair of update ${seen}, though update ${c.pairGen} began and it has not processed KVM_REQ_CLOCK_UPDATE since`

/**
 * CLK-3, agreement: a STABLE reading, taken at a TSC instant, is within `bound` ns of what the
 * VM's current master pair gives at that instant on a skew-free TSC (`get_kvmclock`; the
 * selftest's KVM_GET_CLOCK bounds). `bound` is twice the TSC skew between CPUs plus rounding.
 */
export const clk3 = (k: Sim.Kernel, who: string, reading: number, reference: number, bound: number): string | undefined =>
  k.check("CLK-3", Math.abs(reading - reference) <= bound)
    ? undefined
    : `${who} read kvmclock ${reading} ns where the VM's master pair gives ${reference} ns at that instant: off by ${reading - reference} ns, beyond the ${bound} ns TSC-skew bound`

/** CLK-4, monotonicity: a guest thread's successive readings never go backwards (it may move between vCPUs). */
export const clk4 = (k: Sim.Kernel, who: string, reading: number, last: number): string | undefined =>
  k.check("CLK-4", reading >= last) ? undefined : `${who} read kvmclock ${reading} ns after reading ${last} ns: time went backwards by ${last - reading} ns`

/** CLK-5, STABLE truthfulness: a pvti marked STABLE is accepted only while the VM's master clock is valid. */
export const clk5 = (k: Sim.Kernel, who: string, owner: number, master: boolean): string | undefined =>
  k.check("CLK-5", master)
    ? undefined
    : `${who} accepted vcpu${owner}'s pvti as STABLE while the VM's master clock is off: a stale STABLE pvti`

/**
 * CLK-6, the guest's clear keeps the host's flags (kvmlab's id: spec §4.7 has none; §10.3 says the
 * guest's plain read-modify-write of GUEST_STOPPED races the host's copy): the flags the guest
 * stores differ from those in its pvti only in GUEST_STOPPED. Checked at the guest's store.
 */
export const clk6 = (k: Sim.Kernel, who: string, stored: number, current: number, stopped: number): string | undefined =>
  k.check("CLK-6", (stored & ~stopped) === (current & ~stopped))
    ? undefined
    : `${who} cleared GUEST_STOPPED by storing flags ${stored} over ${current}, which the host published after the guest read them: stale flags written back (STABLE ${stored & PVCLOCK_TSC_STABLE_BIT} where the host publishes ${current & PVCLOCK_TSC_STABLE_BIT})`
