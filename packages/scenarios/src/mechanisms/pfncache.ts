/**
 * Mechanism E (spec §5, §10.4, thread 5): the gfn_to_pfn_cache against the MMU notifier, with the
 * VMM process's MM as an actor. Its workload: `gpc-refresh-race` (`workloads/PfnCache.ts`).
 */
import { PfnCache } from "@kvmlab/kvm"
import { random, type Mechanism, type WorkloadDef } from "../Mechanism.js"
import * as Workloads from "../workloads/PfnCache.js"

const invariants = ["GPC-1", "GPC-2", "GPC-3", "GPC-4", "GPC-5", "GEN-1", "DEL-1", "TLB-1"]

const race: WorkloadDef<Workloads.PfnCacheWorkload> = {
  kind: "gpc-refresh-race",
  schema: Workloads.GpcRefreshRace,
  // The memslots (GPA caches, the interlock) and mechanism A's remote flushes run here too.
  exercises: ["E", "C", "A"],
  invariants,
  check: Workloads.check,
  notes: Workloads.notes,
  program: Workloads.program
}

const shape = { vms: 1, durationNs: 0, bugs: [], costs: {}, variant: {} }
const race1 = { kind: "gpc-refresh-race", memGfns: 4, pvGfn: 2, rounds: 2, guestWork: 3, guestSteps: 2, gapNs: 0, moves: 0, memslotUpdates: 0 }

const storm: WorkloadDef<Workloads.StormWorkload> = {
  kind: "gpc-invalidation-storm",
  schema: Workloads.GpcInvalidationStorm,
  exercises: ["E", "C", "A"],
  invariants,
  check: Workloads.checkStorm,
  notes: Workloads.notes,
  program: Workloads.stormProgram
}

export const mechanism = {
  id: "E",
  title: "the gfn_to_pfn_cache and the MMU notifier's invalidation (spec §5, thread 5)",
  switches: PfnCache.Variants.switches,
  invariants: PfnCache.Invariants.ids,
  workloads: [race, storm],
  builtins: [
    {
      name: "gpc-refresh-race",
      description:
        "Two vCPUs update their kvmclock pvti through their pv_time caches (by gpa, in slot 0) while the MM migrates the page " +
        "behind them twice; each migration is an MMU-notifier invalidation that frees the old page before its end (spec §5.3, §5.4; GPC-1, GPC-2, GPC-5)",
      ...shape,
      vcpusPerVm: 2,
      pcpus: 2,
      workload: { ...race1, cache: "pvclock", mmOp: "migrate" }
    },
    {
      name: "shinfo-juggle",
      description:
        "xen_shinfo_test's juggling, in small: the VMM moves the VM's shared-info cache (by gpa) between two pages of slot 0 and " +
        "back while two vCPUs send event channels through it and the MM migrates its page (spec §5.4, §5.7; GPC-1, GPC-2, GPC-5)",
      ...shape,
      vcpusPerVm: 2,
      pcpus: 2,
      workload: { ...race1, cache: "shinfo-gpa", mmOp: "migrate", pvGfn: 1, moves: 2 }
    },
    {
      name: "gpc-hva-race",
      description:
        "The same race for an HVA-based cache outside every memslot (a Xen shared-info page set by host address): two vCPUs send " +
        "event channels through it while the MM migrates its page; no memslot overlaps, so mmu_invalidate_seq never moves (spec §10.4)",
      ...shape,
      vcpusPerVm: 2,
      pcpus: 2,
      workload: { ...race1, cache: "shinfo-hva", mmOp: "migrate" }
    },
    {
      name: "xen-runstate-race",
      description:
        "Four vCPUs on two CPUs, each with a Xen runstate area on one page of slot 0, while the MM migrates the page: at every " +
        "preemption kvm_xen_update_runstate_guest writes from the preempt notifier, where it cannot sleep (read_trylock, skip " +
        "when the lock is taken or the check fails), and at the next entry it writes again, refreshing if needed (spec §10.4; GPC-1, GPC-2)",
      ...shape,
      vcpusPerVm: 4,
      pcpus: 2,
      workload: { ...race1, cache: "runstate", mmOp: "migrate", pvGfn: 1, rounds: 3, guestWork: 4 }
    },
    {
      name: "gpc-invalidation-storm",
      description:
        "Thread 5's question: two vCPUs update their kvmclock pvti while two MM threads run invalidations of unrelated guest pages " +
        "(10 µs each, 20 µs apart), and every fourth of the first one's migrates a pvti page; compare gpcWait=mainline, range-busy, " +
        "range-sleep, halt-poll, sean (spec §5.8; GPC-1..3; metrics refreshLatencyP50Ns/P99Ns/MaxNs, waitCpuNs, gpc_retries)",
      ...shape,
      maxSteps: 2_000_000,
      vcpusPerVm: 2,
      pcpus: 2,
      workload: { kind: "gpc-invalidation-storm", memGfns: 8, pvGfn: 0, invalidators: 2, invalidations: 12, lengthNs: 10_000, gapNs: 20_000, overlapEvery: 4, guestWork: 6, guestSteps: 4 }
    },
    {
      name: "memslot-swap-vs-invalidations",
      description:
        "kvmclock caches refreshed while the MM migrates their page and the VMM creates and deletes a slot: each memslot swap waits " +
        "for the invalidations in flight (spec §5.6 GPC-4, §3.3)",
      ...shape,
      vcpusPerVm: 1,
      pcpus: 1,
      workload: { ...race1, cache: "pvclock", mmOp: "migrate", rounds: 3, memslotUpdates: 2 }
    }
  ],
  switchCases: [
    { bug: "E.seqOnly", scenario: "gpc-refresh-race", set: [], strategy: random, invariant: "GPC-1" },
    { bug: "E.validAfterUnlock", scenario: "shinfo-juggle", set: [], strategy: random, invariant: "GPC-1" },
    { bug: "E.invalidateAtEnd", scenario: "gpc-refresh-race", set: [], strategy: random, invariant: "GPC-1" },
    { bug: "M.refreshWithoutMutex", scenario: "shinfo-juggle", set: [], strategy: random, invariant: "GPC-5" },
    // The count held above 0 by back-to-back invalidations of other pages: mainline's refresher spins.
    { bug: "E.livelock", scenario: "gpc-invalidation-storm", set: [["workload.invalidations", "200"]], strategy: random, invariant: "GPC-3" },
    { bug: "M.swapIgnoresInvalidations", scenario: "memslot-swap-vs-invalidations", set: [], strategy: random, invariant: "GPC-4" }
  ],
  cleanCases: [{ bug: "E.noRecheckUnderWrite", scenario: "gpc-refresh-race", set: [], strategy: random, runs: 1000 }]
} as const satisfies Mechanism
