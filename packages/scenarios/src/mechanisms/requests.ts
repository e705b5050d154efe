/**
 * Mechanism A (spec §1, thread 4): requests, kicks, remote TLB flushes and lockless shadow walks.
 * Its workloads: `request-race` and `lockless-walk`, any number of VMs, one physical CPU per vCPU
 * and per host thread.
 */
import { Invariants, RequestsVariants } from "@kvmlab/kvm"
import type { Issue, Mechanism, WorkloadDef } from "../Mechanism.js"
import type { Scenario } from "../Scenario.js"
import * as Requests from "../workloads/Requests.js"

/** Each vCPU and each host thread (of every VM) on a physical CPU of its own. */
const shape = (s: Scenario, kind: string, threads: number): ReadonlyArray<Issue> =>
  s.pcpus < s.vms * (s.vcpusPerVm + threads)
    ? [{
      path: "pcpus",
      message: `${kind} gives each vCPU and each host thread its own physical CPU: ${s.vms} VM(s) x (${s.vcpusPerVm} vCPUs + ${threads} host threads) need at least ${s.vms * (s.vcpusPerVm + threads)}, got ${s.pcpus}`
    }]
    : []

/** `flush` is the guest's own remote flush, which these guests never make. */
const flushNote = (s: Scenario, kind: string): ReadonlyArray<string> =>
  s.variant.flush === "native"
    ? []
    : [`flush=${s.variant.flush} changes nothing in ${kind}: its guest makes no remote TLB flushes of its own (the host's kvm_flush_remote_tlbs is mechanism A)`]

const requestRace: WorkloadDef<typeof Requests.RequestRace.Type> = {
  kind: "request-race",
  schema: Requests.RequestRace,
  exercises: ["A"],
  invariants: ["REQ-1", "REQ-2", "TLB-1", "IPI-1", "WAKE-1"],
  check: (s, w) => shape(s, "request-race", w.requesters),
  notes: (s) => flushNote(s, "request-race"),
  program: Requests.program
}

const locklessWalk: WorkloadDef<typeof Requests.LocklessWalk.Type> = {
  kind: "lockless-walk",
  schema: Requests.LocklessWalk,
  exercises: ["A"],
  invariants: ["WALK-1", "REQ-2", "REQ-1"],
  check: (s) => shape(s, "lockless-walk", 1),
  notes: (s) => flushNote(s, "lockless-walk"),
  program: Requests.program
}

export const mechanism = {
  id: "A",
  title: "requests, kicks, remote TLB flushes and lockless shadow walks (spec §1, thread 4)",
  switches: RequestsVariants.switches,
  invariants: Invariants.ids,
  workloads: [requestRace, locklessWalk]
} as const satisfies Mechanism
