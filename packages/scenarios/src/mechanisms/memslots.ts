/**
 * Mechanism C (spec §3, §10.2, thread 2): memslot generations, MMIO SPTEs, and zapping on memslot
 * removal, with the memslot manager actor. Its workloads: `memslot-stress`, `mmio-wrap` and
 * `memslot-delete` (`workloads/Memslots.ts`), one VM whose vCPUs fault on the shadow MMU while a
 * VMM thread sends ioctls to the manager.
 */
import { Memslots } from "@kvmlab/kvm"
import { random, type Mechanism, type WorkloadDef } from "../Mechanism.js"
import * as Workloads from "../workloads/Memslots.js"

const invariants = ["GEN-1", "GEN-2", "GEN-3", "GEN-4", "DEL-1", "ZAP-1", "LAT-1", "WALK-1", "TLB-1", "REQ-2"]

const def = <W extends Workloads.MemslotsWorkload>(kind: W["kind"], schema: WorkloadDef<W>["schema"]): WorkloadDef<W> => ({
  kind,
  schema,
  // Mechanism A's requests, kicks, remote flushes and lockless walks run here too.
  exercises: ["C", "A"],
  invariants,
  check: Workloads.check,
  notes: Workloads.notes,
  program: Workloads.program
})

const shape = { vms: 1, durationNs: 0, bugs: [], costs: {} }
const guest = { guestSteps: 3, gapNs: 0, sptesPerPage: 2 }

export const mechanism = {
  id: "C",
  title: "memslot generations, MMIO SPTEs and zapping on memslot removal (spec §3, thread 2)",
  switches: Memslots.Variants.switches,
  invariants: Memslots.Invariants.ids,
  workloads: [def<typeof Workloads.MemslotStress.Type>("memslot-stress", Workloads.MemslotStress), def<typeof Workloads.MmioWrap.Type>("mmio-wrap", Workloads.MmioWrap), def<typeof Workloads.MemslotDelete.Type>("memslot-delete", Workloads.MemslotDelete), def<typeof Workloads.RomAccess.Type>("rom-access", Workloads.RomAccess)],
  builtins: [
    {
      name: "memslot-stress",
      description:
        "memslot_modification_stress_test: two vCPUs touch slot 0 and an MMIO hole while the VMM creates and deletes a dummy slot " +
        "in the hole; each deletion zaps through kvm_arch_flush_shadow_memslot (spec §3.3, §3.5; GEN-1..3, DEL-1, ZAP-1, LAT-1)",
      ...shape,
      vcpusPerVm: 2,
      pcpus: 2,
      variant: {},
      workload: { kind: "memslot-stress", gfns: 8, memGfns: 6, dummyGfns: 2, rounds: 2, updateAs: 0, smmVcpus: 0, guestWork: 30, ...guest }
    },
    {
      name: "mmio-wrap",
      description:
        "A 3-bit MMIO generation: the VMM churns a dummy slot in SMM's address space until the generation wraps, while one vCPU " +
        "in SMM and one outside hit MMIO SPTEs (spec §3.4; kvm_mmu_invalidate_mmio_sptes; GEN-2, GEN-4)",
      ...shape,
      vcpusPerVm: 2,
      pcpus: 2,
      variant: { mmioGenBits: "3" },
      workload: { kind: "mmio-wrap", gfns: 6, memGfns: 3, dummyGfns: 1, rounds: 3, updateAs: 1, smmVcpus: 1, guestWork: 40, ...guest }
    },
    {
      name: "memslot-delete",
      description:
        "set_memory_region_test: a vCPU reads a dummy slot while the VMM creates it, moves it and deletes it; accesses see memory, " +
        "then the MMIO exit (spec §3.3; DEL-1, GEN-2)",
      ...shape,
      vcpusPerVm: 1,
      pcpus: 1,
      variant: {},
      workload: { kind: "memslot-delete", gfns: 8, memGfns: 4, dummyGfns: 2, rounds: 1, updateAs: 0, smmVcpus: 0, guestWork: 30, ...guest }
    },
    {
      name: "zap-vs-walk",
      description:
        "Obsolete-root zaps against MMIO lockless walks: two vCPUs mostly in the MMIO hole (get_mmio_spte in " +
        "READING_SHADOW_PAGE_TABLES) while each deletion's fast zap frees the old pages after its remote flush (spec §1.6, §3.5; WALK-1)",
      ...shape,
      vcpusPerVm: 2,
      pcpus: 2,
      variant: {},
      workload: { kind: "memslot-stress", gfns: 8, memGfns: 2, dummyGfns: 2, rounds: 2, updateAs: 0, smmVcpus: 0, guestWork: 30, ...guest }
    },
    {
      name: "rom-access",
      description:
        "Thread 2's benchmark (mmtest -c 8 -m 2000 -e ./rom.sh, scaled down): eight vCPUs touch their share of memory over and " +
        "over while the VMM deletes and re-creates a ROM slot every 150 µs; benchmarkNs is when the last vCPU finished " +
        "(virtual ns, --strategy timed; spec §3.8, §6 N2)",
      ...shape,
      maxSteps: 20_000_000,
      vcpusPerVm: 8,
      pcpus: 8,
      variant: {},
      workload: { kind: "rom-access", gfns: 72, memGfns: 64, dummyGfns: 4, rounds: 1000, updateAs: 0, smmVcpus: 0, guestWork: 1600, guestSteps: 20, gapNs: 150_000, sptesPerPage: 8 }
    }
  ],
  switchCases: [
    { bug: "C.archHookAfterStore", scenario: "mmio-wrap", set: [["workload.updateAs", "0"], ["workload.smmVcpus", "0"]], strategy: random, invariant: "GEN-4" },
    // The spec names GEN-2 (the stale hit that follows); the read of the unzapped wrap comes first.
    { bug: "C.wrapOnlyAs0", scenario: "mmio-wrap", set: [], strategy: random, invariant: "GEN-4" },
    { bug: "C.cacheDuringFlux", scenario: "memslot-stress", set: [], strategy: random, invariant: "GEN-3" },
    { bug: "C.lowBitInProgress", scenario: "memslot-stress", set: [], strategy: random, invariant: "GEN-2" },
    // Four vCPUs faulting through the whole run; swarm's schedules, which favour some actors,
    // let them add pages at the head faster than the restarting zap removes them.
    {
      bug: "C.zapAllLivelock",
      scenario: "memslot-stress",
      set: [["zap", "all"], ["vcpusPerVm", "4"], ["pcpus", "4"], ["workload.guestWork", "60"], ["workload.rounds", "4"]],
      strategy: { _tag: "swarm" },
      invariant: "ZAP-1"
    },
    { bug: "C.holdLockWholeZap", scenario: "memslot-stress", set: [["zapBatch", "1"]], strategy: random, invariant: "LAT-1" },
    // The livelock 92f58b5c0181 names: swarm lets the vCPUs fault pages in at the head faster
    // than the wrap's restarting zap removes them.
    { bug: "C.slowZapAllAtWrap", scenario: "mmio-wrap", set: [], strategy: { _tag: "swarm" }, invariant: "ZAP-1" },
    { bug: "C.flushOrZapPriority", scenario: "memslot-stress", set: [["zap", "memslot"]], strategy: random, invariant: "ZAP-1" },
    { bug: "M.deleteSkipsZap", scenario: "memslot-delete", set: [], strategy: random, invariant: "DEL-1" },
    { bug: "M.genStepOne", scenario: "memslot-stress", set: [], strategy: random, invariant: "GEN-1" }
  ],
  cleanCases: [
    { bug: "C.reloadOutsideLock", scenario: "zap-vs-walk", set: [], strategy: random, runs: 1000 },
    { bug: "C.reloadOutsideLock", scenario: "memslot-stress", set: [], strategy: { _tag: "swarm" }, runs: 1000 }
  ]
} as const satisfies Mechanism
