/**
 * Mechanism D's bug switches (spec §4.8, §10.3) with the spec's names, and its variants (§4.9).
 * Every switch off is the merged kernel (v6.13's `x86.c`, the v4.5+ vDSO reader).
 */
import { Schema } from "effect"
import { knob, type Switch } from "../vcpu/Switch.js"

export const switches = {
  "D.versionPlus2SingleCopy": {
    spec: "§4.8: the pre-2015 host (x86.c up to about v4.0): hv_clock.version += 2, then one copy of the whole pvti, the version first — it is never odd, so a reader on another vCPU accepts a pvti half old, half new (Andy and Paolo, thread 3, Jan 2015: \"KVM doesn't increment the version pre-update\" — \"Yes.\")",
    breaks: "CLK-1",
    needs: {},
    note: "the fix (three writes: odd version, smp_wmb, body, smp_wmb, even version) is in v4.5; its commit is not verified (spec §4.8)"
  },
  "D.staleVcpu0Stable": {
    spec: "§4.8, §10.3, Andy's window in thread 3: vCPU0 halts (the scenario's guest idles it) before a stable -> unstable transition; a halted vCPU processes no clock request (kvm_vcpu_check_block ignores them, kvm_end_pvclock_update does not kick), so vCPU0's pvti keeps STABLE and the old pair, and every other vCPU's vDSO reads it",
    breaks: "CLK-5",
    needs: { reader: ["vcpu0"] },
    note: "a workload condition, not a code defect: nothing in KVM forces vCPU0's update (§10.3), and the same window opens, for microseconds, whenever vCPU0 is merely slower to re-enter than another vCPU — the model finds that with every switch off; the switch makes it last as long as vCPU0 halts"
  },
  "D.noMclockInprogress": {
    spec: "§4.8, Andy's first scenario in thread 3: kvm_start_pvclock_update makes no KVM_REQ_MCLOCK_INPROGRESS request, so vCPUs in guest mode run on through the update with the old master pair until their next exit",
    breaks: "CLK-2",
    needs: {},
    note: "no kernel shipped without the request (it came with the master clock, d828199e8444, 2012: not verified); under era=2015 the old pair also drifts from the new one by the NTP slew (CLK-3)"
  },
  "D.clearInprogressBeforeClockUpdate": {
    spec: "§4.8: kvm_end_pvclock_update clears KVM_REQ_MCLOCK_INPROGRESS on every vCPU before it requests KVM_REQ_CLOCK_UPDATE on them, so a vCPU whose entry check falls in between enters with its old pvti",
    breaks: "CLK-2",
    needs: {},
    note: "a synthetic mutation: none of the kernels read (v4.5, v5.13, v6.13, v6.15) had this order",
    mutant: true
  },
  "D.getcpuAfterOnly": {
    spec: "§4.8 (Radim, thread 3: the revert \"has a bug -- we need to check cpuid for the second time before rdtsc\"): the migrations_from protocol (b) without its first getcpu — the reader picks a pvti by the CPU it last ran on, so after a migration it reads another vCPU's pvti, which that vCPU may not have republished yet, and that pvti's migrate_count does not move",
    breaks: "CLK-3",
    needs: { reader: ["migrations"] },
    note: "Radim's exact order is not verified; the model drops the getcpu before the pvti is chosen, which his remark and the spec's wording both cover"
  },
  "D.noLastValueClamp": {
    spec: "§4.8: __pvclock_clocksource_read returns its result without the last_value clamp when the pvti is not STABLE, so per-vCPU pvti differences (unsynchronised TSC rates) show as time going backwards for a guest thread that moves between vCPUs",
    breaks: "CLK-4",
    needs: { masterClock: ["off"] },
    note: "the clamp dates from 2010 (\"x86, paravirt: Add a global synchronization point for pvclock\", title from memory, not verified); with the master clock on every pvti is STABLE and the clamp is skipped anyway"
  },
  "M.guestStoppedSplitRMW": {
    spec: "mutant (no historical bug; a compiler's possible code for real C), after §10.3 (\"the guest writes the pvti too ... a plain read-modify-write that races the host's copy\"): kvm_check_and_clear_guest_paused's `src->pvti.flags &= ~PVCLOCK_GUEST_STOPPED` compiled as a store of the flags its test loaded; a VM exit between the two lets the host publish new flags (the master clock gone: STABLE clear), which the guest's store then overwrites with the old STABLE bit",
    breaks: "CLK-6",
    needs: {},
    note: "the C is a plain `&=` on a byte the test just read, which a compiler may implement from that load; the merged kernel's usual code, `testb` then `andb` on memory, cannot lose the host's store, since the host writes this pvti only from its vCPU's thread out of guest mode (kvm_guest_time_update at entry); found only with KVM_KVMCLOCK_CTRL in the workload (workload.pauses)",
    mutant: true
  }
} as const satisfies Record<string, Switch>

/** Which guest reader the scenario's reading threads use (spec §4.6, §4.9). */
export const Reader = Schema.Literal("vcpu0", "getcpu", "migrations", "kernel", "syscall")
/** Whether the host keeps a master clock: `off` is a host clocksource that is not the TSC (use_master_clock stays false). */
export const MasterClock = Schema.Literal("on", "off")
/** The host clock behind `master_kernel_ns` (spec §10.3): `v5.5` CLOCK_MONOTONIC_RAW plus the boot offset (53fafdbb8b21), `2015` the NTP-slewed boot time. */
export const Era = Schema.Literal("v5.5", "2015")
/** The vDSO's TSC read (spec §6 N4): `ordered` (`rdtsc_ordered`: LFENCE; RDTSC or RDTSCP) or `plain` (`rdtsc`). */
export const Rdtsc = Schema.Literal("ordered", "plain")

/**
 * Who writes the pvtis after a VM-wide update (Andy's question, thread 3): `at-entry` — each vCPU
 * its own, at its next entry (KVM_REQ_CLOCK_UPDATE: the kernel); `all-at-once` — the updater
 * writes every vCPU's before it lets them enter (kvmlab's version of the proposal; every pvti
 * write then takes a per-VM lock, since the updaters and the vCPUs' own updates would otherwise
 * write one pvti at once).
 */
export const ClockUpdate = Schema.Literal("at-entry", "all-at-once")

/**
 * How VM-wide updates exclude each other: `concurrent` — the merged kernel (since "KVM: x86:
 * reduce pvclock_gtod_sync_lock critical sections", Paolo Bonzini, March 2021):
 * KVM_REQ_MCLOCK_INPROGRESS is requested before `tsc_write_lock` and cleared after it, so one
 * updater's clear can release vCPUs another has just stopped (spec §10.3; Marcelo Tosatti's
 * review of that patch: "one caller could clear KVM_REQ_MCLOCK_INPROGRESS, while the other is
 * still at pvclock_update_vm_gtod_copy()"); `serialised` — v4.5's `kvm_gen_update_masterclock`
 * (and the kernel until that patch): one lock from the request to the clear.
 */
export const Updaters = Schema.Literal("concurrent", "serialised")

/**
 * A host-initiated MSR_IA32_TSC write (`kvm_synchronize_tsc`): `as-is` — the kernel: no
 * KVM_REQ_CLOCK_UPDATE, so with the master clock off the vCPU's pvti stays computed for its old
 * TSC; `clock-update` — kvmlab's proposal: request one, as the guest's own TSC_ADJUST write does
 * ("otherwise guest's percpu pvclock time could jump", `kvm_set_msr_common`).
 */
export const HostTscWrite = Schema.Literal("as-is", "clock-update")

/** Mechanism D's variant settings. */
export const variant = {
  reader: knob(Reader, "vcpu0"),
  masterClock: knob(MasterClock, "on"),
  era: knob(Era, "v5.5"),
  rdtsc: knob(Rdtsc, "ordered"),
  clockUpdate: knob(ClockUpdate, "at-entry"),
  updaters: knob(Updaters, "concurrent"),
  hostTscWrite: knob(HostTscWrite, "as-is")
}
