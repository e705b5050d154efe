/**
 * Mechanism A (spec §1, thread 4): requests, kicks, remote TLB flushes and lockless shadow walks.
 * Its workloads: `request-race` and `lockless-walk`, any number of VMs, their vCPU threads on
 * `pcpus` physical CPUs (sharing them through runqueues when there are fewer CPUs than vCPUs),
 * each host thread on a CPU of its own besides.
 */
import { Invariants, RequestsVariants } from "@kvmlab/kvm"
import { random, type Issue, type Mechanism, type WorkloadDef } from "../Mechanism.js"
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
  workloads: [requestRace, locklessWalk],
  builtins: [
    {
      name: "request-race",
      description:
        "Two requesters zap a gfn, flush remote TLBs (KVM_REQ_TLB_FLUSH, WAIT) and kick a vCPU with KVM_REQ_EVENT, " +
        "while two vCPUs enter and leave the guest, use their TLBs and halt (spec §1.3-1.5; A1, A3, A4; REQ-1, REQ-2, TLB-1, IPI-1, WAKE-1)",
      vms: 1,
      vcpusPerVm: 2,
      pcpus: 4,
      durationNs: 0,
      variant: { flush: "native", extraBarriers: "off" },
      bugs: [],
      costs: {},
      workload: { kind: "request-race", requesters: 2, rounds: 3, gfns: 2, guestSteps: 3, guestWork: 24, haltPercent: 30, kicks: true }
    },
    {
      name: "lockless-walk",
      description:
        "A zapper unlinks shadow pages, flushes remote TLBs and frees them, while a vCPU's MMIO exits walk the shadow " +
        "page tables locklessly in READING_SHADOW_PAGE_TABLES (spec §1.6; A2, A5; WALK-1, REQ-2)",
      vms: 1,
      vcpusPerVm: 1,
      pcpus: 2,
      durationNs: 0,
      variant: { flush: "native", extraBarriers: "off" },
      bugs: [],
      costs: {},
      workload: { kind: "lockless-walk", rounds: 30, gfns: 1, guestSteps: 3, guestWork: 60, mmioPercent: 100 }
    }
  ],
  switchCases: [
    { bug: "A.noEntryBarrier", scenario: "request-race", set: [], strategy: random, invariant: "REQ-1" },
    // One requester: with two, the switch's loss of atomicity (both read IN_GUEST_MODE, both kick)
    // can show first, as IPI-1; the ordering bug the spec names needs only one.
    { bug: "A.noRequesterBarrier", scenario: "request-race", set: [["workload.requesters", "1"]], strategy: random, invariant: "REQ-1" },
    { bug: "A.noRequesterBarrier", scenario: "lockless-walk", set: [], strategy: random, invariant: "REQ-1" },
    { bug: "A.noWalkBarrier", scenario: "lockless-walk", set: [], strategy: { _tag: "swarm" }, invariant: "WALK-1" },
    { bug: "A.kickNoWaitForFlush", scenario: "request-race", set: [], strategy: random, invariant: "REQ-2" },
    { bug: "A.kickNoWaitForFlush", scenario: "lockless-walk", set: [], strategy: random, invariant: "REQ-2" },
    { bug: "A.exitingSkipsIpiForWait", scenario: "request-race", set: [], strategy: random, invariant: "REQ-2" },
    // Mutants: the invariants no historical bug breaks, shown to fail (their checks are wired).
    { bug: "M.kickIgnoresMode", scenario: "request-race", set: [], strategy: random, invariant: "IPI-1" },
    { bug: "M.flushRequestIgnored", scenario: "request-race", set: [], strategy: random, invariant: "TLB-1" },
    { bug: "M.noSetCurrentStateBarrier", scenario: "request-race", set: [], strategy: random, invariant: "WAKE-1" }
  ]
} as const satisfies Mechanism
