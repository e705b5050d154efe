/**
 * The built-in scenarios. Each is an ordinary scenario file (see `kvmlab show`); the defaults
 * are sized so that one run takes about a millisecond and `explore` covers thousands of
 * interleavings in seconds.
 */
import type { Variants } from "@kvmlab/kvm"
import type { Strategy } from "@kvmlab/sim"
import type { ScenarioEncoded } from "./Scenario.js"

export const builtins: ReadonlyArray<ScenarioEncoded> = [
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
  },
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
]

/**
 * Where a bug switch applies: a built-in scenario, the settings it needs, the strategy that finds
 * it soonest, and the invariant the spec (or, where the spec names none, the model) says it breaks.
 */
export interface SwitchCase {
  readonly bug: Variants.Bug
  readonly scenario: string
  readonly set: ReadonlyArray<readonly [string, string]>
  readonly strategy: Strategy.SearchStrategy
  readonly invariant: string
}

const random = { _tag: "random" } as const

/** Every switch in every built-in scenario where it applies (tests, the bench and the README's tables use this list). */
export const switchCases: ReadonlyArray<SwitchCase> = [
  { bug: "A.noEntryBarrier", scenario: "request-race", set: [], strategy: random, invariant: "REQ-1" },
  // One requester: with two, the switch's loss of atomicity (both read IN_GUEST_MODE, both kick)
  // can show first, as IPI-1; the ordering bug the spec names needs only one.
  { bug: "A.noRequesterBarrier", scenario: "request-race", set: [["workload.requesters", "1"]], strategy: random, invariant: "REQ-1" },
  { bug: "A.noRequesterBarrier", scenario: "lockless-walk", set: [], strategy: random, invariant: "REQ-1" },
  { bug: "A.noWalkBarrier", scenario: "lockless-walk", set: [], strategy: { _tag: "swarm" }, invariant: "WALK-1" },
  { bug: "A.kickNoWaitForFlush", scenario: "request-race", set: [], strategy: random, invariant: "REQ-2" },
  { bug: "A.kickNoWaitForFlush", scenario: "lockless-walk", set: [], strategy: random, invariant: "REQ-2" },
  { bug: "A.exitingSkipsIpiForWait", scenario: "request-race", set: [], strategy: random, invariant: "REQ-2" },
  { bug: "B.readCopyWriteback", scenario: "pv-flush-race", set: [["flush", "pv"]], strategy: { _tag: "swarm" }, invariant: "PV-1" },
  { bug: "B.preemptedMidEmulation", scenario: "pv-flush-race", set: [["flush", "pv"]], strategy: random, invariant: "PV-1" },
  { bug: "B.noPreemptedCache", scenario: "pv-flush-race", set: [["flush", "pv"]], strategy: random, invariant: "PV-1" },
  { bug: "B.reportVoluntaryPut", scenario: "pv-flush-race", set: [["flush", "pv"]], strategy: random, invariant: "PV-3" },
  { bug: "P.invertedMaskClear", scenario: "pv-flush-race", set: [["flush", "pv-ipi-pending"]], strategy: random, invariant: "PV-1" },
  { bug: "P.transferWithoutFlushRequest", scenario: "pv-flush-race", set: [["flush", "pv-ipi-pending"]], strategy: random, invariant: "PV-1" },
  { bug: "P.sharedPendingBitABA", scenario: "pv-flush-two-initiators", set: [], strategy: { _tag: "swarm" }, invariant: "PV-1" },
  // Mutants: the invariants no historical bug breaks, shown to fail (their checks are wired).
  { bug: "M.kickIgnoresMode", scenario: "request-race", set: [], strategy: random, invariant: "IPI-1" },
  { bug: "M.flushRequestIgnored", scenario: "request-race", set: [], strategy: random, invariant: "TLB-1" },
  { bug: "M.noSetCurrentStateBarrier", scenario: "request-race", set: [], strategy: random, invariant: "WAKE-1" },
  { bug: "M.waitsForSkipped", scenario: "pv-flush-race", set: [["flush", "pv"]], strategy: random, invariant: "PV-2" },
  { bug: "M.stealClockNoRetry", scenario: "pv-flush-race", set: [["flush", "pv"]], strategy: random, invariant: "PV-4" }
]
