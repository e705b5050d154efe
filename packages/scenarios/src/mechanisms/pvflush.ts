/**
 * Mechanism B (spec §2, thread 1): the paravirtual remote TLB flush that skips preempted vCPUs,
 * and Peter Zijlstra's IPI_PENDING scheme. Its workloads: `pv-flush-race` and `tlb-shootdown`.
 */
import { PvFlush, PvFlushVariants } from "@kvmlab/kvm"
import { random, type Mechanism, type WorkloadDef } from "../Mechanism.js"
import type { Scenario } from "../Scenario.js"
import * as Race from "../workloads/PvFlush.js"
import * as Shootdown from "../workloads/Shootdown.js"

/** `extraBarriers` are the host's kvm_flush_remote_tlbs, which these hosts never make. */
const barriersNote = (s: Scenario, kind: string): ReadonlyArray<string> =>
  s.variant.extraBarriers === "on" ? [`extraBarriers=on changes nothing in ${kind}: the host makes no kvm_flush_remote_tlbs here`] : []

const pvFlushRace: WorkloadDef<typeof Race.PvFlushRace.Type> = {
  kind: "pv-flush-race",
  schema: Race.PvFlushRace,
  exercises: ["B"],
  invariants: PvFlush.Invariants.ids,
  check: (s, w) => [
    ...(w.initiators >= s.vcpusPerVm
      ? [{ path: "workload.initiators", message: `needs at least one target: ${w.initiators} initiators among ${s.vcpusPerVm} vCPUs` }]
      : []),
    ...(w.pin !== undefined && w.pin.length !== s.vcpusPerVm
      ? [{ path: "workload.pin", message: `gives a CPU for each of the ${s.vcpusPerVm} vCPUs: got ${w.pin.length}` }]
      : []),
    ...(w.pin ?? []).flatMap((cpu, i) =>
      cpu >= s.pcpus ? [{ path: `workload.pin[${i}]`, message: `CPU ${cpu} does not exist: pcpus is ${s.pcpus}` }] : []
    ),
    ...(s.bugs.includes("P.sharedPendingBitABA") && w.initiators < 2
      ? [{
        path: "workload.initiators",
        message: "P.sharedPendingBitABA needs two initiators shooting down the same target (workload.initiators >= 2, vcpusPerVm >= 3): with one, no second request can be absorbed (spec §10.1)"
      }]
      : [])
  ],
  notes: (s) => barriersNote(s, "pv-flush-race"),
  program: Race.program
}

const tlbShootdown: WorkloadDef<typeof Shootdown.TlbShootdown.Type> = {
  kind: "tlb-shootdown",
  schema: Shootdown.TlbShootdown,
  exercises: ["B"],
  invariants: PvFlush.Invariants.ids,
  check: (s) => [
    ...(s.durationNs === 0 ? [{ path: "durationNs", message: "a tlb-shootdown scenario runs for a virtual duration: give durationNs > 0" }] : []),
    ...(s.vcpusPerVm < 2 ? [{ path: "vcpusPerVm", message: "a shootdown needs at least 2 vCPUs per VM" }] : [])
  ],
  notes: (s) => barriersNote(s, "tlb-shootdown"),
  program: Shootdown.program
}

export const mechanism = {
  id: "B",
  title: "the paravirtual remote TLB flush and the IPI_PENDING scheme (spec §2, thread 1)",
  switches: PvFlushVariants.switches,
  invariants: PvFlush.Invariants.ids,
  workloads: [pvFlushRace, tlbShootdown],
  builtins: [
    {
      name: "pv-flush-race",
      description:
        "A guest initiator remaps a page and shoots down the other vCPU's TLB (flush_tlb_multi) while the target runs, " +
        "takes timer and emulation exits, is preempted by a host thread sharing its CPU and called back to userspace by the " +
        "VMM (spec §2.4-2.8, §10.1; PV-1 ... PV-4). " +
        "Compare flush=native and flush=pv",
      vms: 1,
      vcpusPerVm: 2,
      pcpus: 2,
      durationNs: 0,
      variant: { flush: "pv", extraBarriers: "off" },
      bugs: [],
      costs: {},
      workload: { kind: "pv-flush-race", rounds: 4, pages: 2, guestSteps: 3, guestWork: 40, preemptPercent: 50, hogSteps: 3, vmmCommands: 2 }
    },
    {
      name: "pv-flush-two-initiators",
      description:
        "Two guest initiators, pinned to one physical CPU, remap the one page of an mm and shoot down the TLB of a " +
        "third vCPU on the other CPU, with Peter Zijlstra's IPI_PENDING scheme (flush=pv-ipi-pending) and posted " +
        "interrupts (the target takes the TLB vector without a VM exit); the target is preempted by a host thread and " +
        "takes exits as in pv-flush-race. What one shared IPI_PENDING bit cannot tell apart (spec §2.9, §10.1; PV-1)",
      vms: 1,
      vcpusPerVm: 3,
      pcpus: 2,
      durationNs: 0,
      variant: { flush: "pv-ipi-pending", extraBarriers: "off", apicv: "on" },
      bugs: [],
      costs: {},
      workload: {
        kind: "pv-flush-race",
        rounds: 8,
        initiators: 2,
        pages: 1,
        guestSteps: 30,
        guestWork: 40,
        preemptPercent: 50,
        hogSteps: 3,
        vmmCommands: 2,
        pin: [0, 0, 1]
      }
    },
    {
      name: "tlb-shootdown",
      description:
        "ebizzy -M-like: every vCPU processes records and now and then unmaps a page, shooting down the TLBs of its " +
        "VM's other vCPUs; V VMs of M vCPUs share P physical CPUs under a round-robin scheduler (spec §6 N1, thread 1). " +
        "Run it timed; compare flush=native,pv and vms=1,2,3",
      vms: 2,
      vcpusPerVm: 8,
      pcpus: 8,
      durationNs: 100_000_000,
      maxSteps: 5_000,
      variant: { flush: "pv", extraBarriers: "off" },
      bugs: [],
      costs: {},
      workload: { kind: "tlb-shootdown", pages: 64, workNs: 20_000, shootdownPerTenThousand: 200 }
    }
  ],
  switchCases: [
    { bug: "B.readCopyWriteback", scenario: "pv-flush-race", set: [["flush", "pv"]], strategy: { _tag: "swarm" }, invariant: "PV-1" },
    { bug: "B.preemptedMidEmulation", scenario: "pv-flush-race", set: [["flush", "pv"]], strategy: random, invariant: "PV-1" },
    { bug: "B.noPreemptedCache", scenario: "pv-flush-race", set: [["flush", "pv"]], strategy: random, invariant: "PV-1" },
    { bug: "B.reportVoluntaryPut", scenario: "pv-flush-race", set: [["flush", "pv"]], strategy: random, invariant: "PV-3" },
    { bug: "P.invertedMaskClear", scenario: "pv-flush-race", set: [["flush", "pv-ipi-pending"]], strategy: random, invariant: "PV-1" },
    { bug: "P.transferWithoutFlushRequest", scenario: "pv-flush-race", set: [["flush", "pv-ipi-pending"]], strategy: random, invariant: "PV-1" },
    { bug: "P.sharedPendingBitABA", scenario: "pv-flush-two-initiators", set: [], strategy: random, invariant: "PV-1" },
    // Mutants: the invariants no historical bug breaks, shown to fail (their checks are wired).
    { bug: "M.waitsForSkipped", scenario: "pv-flush-race", set: [["flush", "pv"]], strategy: random, invariant: "PV-2" },
    { bug: "M.stealClockNoRetry", scenario: "pv-flush-race", set: [["flush", "pv"]], strategy: random, invariant: "PV-4" }
  ]
} as const satisfies Mechanism
