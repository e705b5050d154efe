/**
 * Mechanism B (spec §2, thread 1): the paravirtual remote TLB flush that skips preempted vCPUs,
 * and Peter Zijlstra's IPI_PENDING scheme. Its workloads: `pv-flush-race` and `tlb-shootdown`.
 */
import { PvFlush, PvFlushVariants } from "@kvmlab/kvm"
import type { Mechanism, WorkloadDef } from "../Mechanism.js"
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
  workloads: [pvFlushRace, tlbShootdown]
} as const satisfies Mechanism
