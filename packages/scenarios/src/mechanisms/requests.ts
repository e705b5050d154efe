/**
 * Mechanism A (spec §1, thread 4): requests, kicks, remote TLB flushes and lockless shadow walks.
 * Its workloads: `request-race` and `lockless-walk`, any number of VMs, their vCPU threads on
 * `pcpus` physical CPUs (sharing them through runqueues when there are fewer CPUs than vCPUs),
 * each host thread on a CPU of its own besides.
 */
import { Invariants, RequestsVariants } from "@kvmlab/kvm"
import type { Issue, Mechanism, WorkloadDef } from "../Mechanism.js"
import type { Scenario } from "../Scenario.js"
import * as Requests from "../workloads/Requests.js"

/**
 * Every shape within the schema's limits runs: the vCPU threads go round-robin on `pcpus` CPUs and
 * share them through the host scheduler's runqueues when there are fewer CPUs than vCPUs; the host
 * threads (requesters, the zapper, userspace) each have a CPU of their own, numbered after those.
 * Nothing across fields to reject.
 */
const anyShape = (): ReadonlyArray<Issue> => []

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
  check: anyShape,
  notes: (s) => flushNote(s, "request-race"),
  program: Requests.program
}

const locklessWalk: WorkloadDef<typeof Requests.LocklessWalk.Type> = {
  kind: "lockless-walk",
  schema: Requests.LocklessWalk,
  exercises: ["A"],
  invariants: ["WALK-1", "REQ-2", "REQ-1"],
  check: anyShape,
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
