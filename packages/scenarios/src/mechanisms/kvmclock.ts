/**
 * Mechanism D (spec §4, §10.3, thread 3): kvmclock, the master clock and the guest's read
 * protocols, with the clock master as an actor. Its workload: `kvmclock` (`workloads/KvmClock.ts`).
 */
import { KvmClock } from "@kvmlab/kvm"
import { random, type Mechanism, type WorkloadDef } from "../Mechanism.js"
import * as Workloads from "../workloads/KvmClock.js"

const invariants = ["CLK-1", "CLK-2", "CLK-3", "CLK-4", "CLK-5", "CLK-6", "GPC-1", "REQ-1", "REQ-2"]

const clock: WorkloadDef<Workloads.KvmClockWorkload> = {
  kind: "kvmclock",
  schema: Workloads.KvmClockWorkload,
  // The pvti is written through mechanism E's cache; the VM-wide update is mechanism A's WAIT request.
  exercises: ["D", "E", "A"],
  invariants,
  check: Workloads.check,
  notes: Workloads.notes,
  program: Workloads.program
}

const shape = { vms: 1, durationNs: 0, bugs: [], costs: {}, variant: {} }
const base = {
  kind: "kvmclock",
  memGfns: 4,
  pvGfn: 0,
  reads: 4,
  guestSteps: 2,
  exitEvery: 2,
  setClocks: 0,
  clocksourceFlips: 0,
  eventEvery: 4,
  tscKhz: 2_500_000,
  tscSkew: 0,
  ntpPpm: 0
}

export const mechanism = {
  id: "D",
  title: "kvmclock, the master clock and the guest's read protocols (spec §4, thread 3)",
  switches: KvmClock.Variants.switches,
  invariants: KvmClock.Invariants.ids,
  workloads: [clock],
  builtins: [
    {
      name: "kvm-clock-test",
      description:
        "kvm_clock_test, with vCPUs running: the VMM makes two KVM_SET_CLOCKs (180 s forward each) while two vCPUs read kvmclock " +
        "through the vDSO (vCPU0's pvti: vCPU1 reads it across vCPUs); every reading agrees with the master pair (spec §4.7, §7; CLK-1..3)",
      ...shape,
      vcpusPerVm: 2,
      pcpus: 2,
      workload: { ...base, setClocks: 2 }
    },
    {
      name: "masterclock-storm",
      description:
        "The host's clocksource leaves the TSC and comes back twice: every vCPU runs its own kvm_update_masterclock at its next entry " +
        "(several updaters at once, spec §10.3), the VMM's TSC writes turn the master clock on again, and a KVM_SET_CLOCK runs inline among them",
      ...shape,
      vcpusPerVm: 3,
      pcpus: 3,
      workload: { ...base, memGfns: 4, reads: 6, setClocks: 1, clocksourceFlips: 2 }
    },
    {
      name: "vcpu0-halted",
      description:
        "Andy's window (spec §4.8, §10.3): the host's clocksource leaves the TSC while vCPU0 idles (with D.staleVcpu0Stable it halts after " +
        "its first reading and nothing wakes it); vCPU1's vDSO keeps reading vCPU0's pvti, whose STABLE bit only vCPU0's own update clears (CLK-5)",
      ...shape,
      vcpusPerVm: 2,
      pcpus: 2,
      workload: { ...base, reads: 8, clocksourceFlips: 1 }
    },
    {
      name: "migrating-reader",
      description:
        "rseq_test-like: a guest thread moves between two vCPUs after every reading, their TSCs unsynchronised (up to 200 ppm apart) so " +
        "the master clock is off and each vCPU's pvti drifts from the other's; the kernel reader's last_value clamp keeps its time monotonic (spec §4.6, §4.8; CLK-4)",
      ...shape,
      variant: { masterClock: "off", reader: "kernel" },
      vcpusPerVm: 2,
      pcpus: 2,
      workload: { ...base, reads: 6, guestSteps: 1, exitEvery: 3, tscRatePpm: 200, migrateEvery: 1, warmupNs: 2_000_000 }
    },
    {
      name: "tsc-write",
      description:
        "tsc_msrs_test's host writes, with vCPUs running: the VMM writes vCPU1's TSC 10 s ahead (a new TSC generation: " +
        "kvm_track_tsc_matching turns the master clock off through KVM_REQ_MASTERCLOCK_UPDATE on that vCPU), then resynchronises " +
        "every vCPU (one generation again: the master clock comes back), twice (spec §4.3, §7; CLK-1..5)",
      ...shape,
      vcpusPerVm: 2,
      pcpus: 2,
      workload: { ...base, reads: 8, tscWrites: 2 }
    },
    {
      name: "guest-paused",
      description:
        "The VM resumes: the VMM's KVM_KVMCLOCK_CTRL on every vCPU (kvm_set_guest_paused: GUEST_STOPPED in each vCPU's next pvti), " +
        "and the host's clocksource leaves the TSC just after, three times; each guest's watchdog clears GUEST_STOPPED in its own pvti " +
        "while the vCPUs are kicked out for the master clock's update (spec §4.1, §10.3; CLK-6). One updater at a time " +
        "(updaters=serialised): the merged kernel's concurrent updaters break CLK-2 here too, which is masterclock-storm's finding",
      ...shape,
      vcpusPerVm: 2,
      pcpus: 2,
      variant: { reader: "kernel", updaters: "serialised" },
      workload: { ...base, reads: 8, exitEvery: 1, pauses: 3, clocksourceFlips: 3 }
    },
    {
      name: "ntp-slew",
      description:
        "The host's clock slewed by NTP (-500 ppm) while the guests run for 2 ms, then the clocksource leaves the TSC and comes back: " +
        "each master-clock update takes a new pair. Since 53fafdbb8b21 (v5.5) the pair's base is CLOCK_MONOTONIC_RAW, which NTP does not " +
        "slew, and kvmclock runs on smoothly; with --variant era=2015 (the NTP-adjusted boot time) each new pair moves kvmclock by the slew " +
        "since the last, here back by 1 µs (CLK-4) (spec §10.3)",
      ...shape,
      vcpusPerVm: 2,
      pcpus: 2,
      variant: { reader: "kernel", updaters: "serialised" },
      workload: { ...base, reads: 6, clocksourceFlips: 1, ntpPpm: -500, warmupNs: 2_000_000 }
    },
    {
      name: "vdso-read-cost",
      description:
        "Readers in a loop with nothing else happening, for spec §6 N3 (vCPU0's pvti vs getcpu: 45 -> 29 ns) and N4 (rdtsc_ordered vs rdtsc: " +
        "17.6 vs 10.0 ns); metric readCostNs, the mean virtual ns of one reading (compare with --strategy timed)",
      ...shape,
      vcpusPerVm: 2,
      pcpus: 2,
      workload: { ...base, reads: 200, guestSteps: 1, exitEvery: 1_000_000 }
    }
  ],
  switchCases: [
    // vCPU1's vDSO reads vCPU0's pvti while vCPU0 republishes it after a KVM_SET_CLOCK to the same
    // clock (a stale pvti0 then reads the same time: the window of vCPU0's pvti stays out of it).
    { bug: "D.versionPlus2SingleCopy", scenario: "kvm-clock-test", set: [["workload.setClockStepNs", "0"]], strategy: random, invariant: "CLK-1" },
    { bug: "D.staleVcpu0Stable", scenario: "vcpu0-halted", set: [], strategy: random, invariant: "CLK-5" },
    { bug: "D.noMclockInprogress", scenario: "kvm-clock-test", set: [], strategy: random, invariant: "CLK-2" },
    { bug: "D.clearInprogressBeforeClockUpdate", scenario: "kvm-clock-test", set: [], strategy: random, invariant: "CLK-2" },
    { bug: "D.noLastValueClamp", scenario: "migrating-reader", set: [], strategy: random, invariant: "CLK-4" },
    // A migrations_from reader that moves between vCPUs in mid-reading, while KVM_SET_CLOCK moves the clock.
    { bug: "D.getcpuAfterOnly", scenario: "kvm-clock-test", set: [["reader", "migrations"], ["workload.migrateEvery", "1"]], strategy: random, invariant: "CLK-3" },
    { bug: "M.guestStoppedSplitRMW", scenario: "guest-paused", set: [], strategy: random, invariant: "CLK-6" }
  ]
} as const satisfies Mechanism
