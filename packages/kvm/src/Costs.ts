/**
 * The cost model: virtual nanoseconds for the operations the protocols are made of. Costs only
 * advance time under the `timed` strategy (measurement runs); search strategies ignore them.
 * Every default carries its source. Where the spec found no authoritative figure (§6 "Not
 * found", §9.6) the default is labelled an assumption; override it per scenario (`costs`).
 */
import { Schema } from "effect"

/** One virtual second, in nanoseconds. */
const SECOND_NS = 1_000_000_000

/**
 * A cost in whole virtual nanoseconds, from 0 to `maxNs`. Every cost has a stated bound, so a
 * slip such as 1e300 or -5 is refused with the field named, not run as a simulation that never
 * advances or ends.
 */
const ns = (maxNs: number, why: string) =>
  Schema.Int.pipe(
    Schema.between(0, maxNs),
    Schema.annotations({ message: (issue) => ({ message: `expected whole nanoseconds from 0 to ${maxNs} (${why}), got ${typeof issue.actual === "string" ? JSON.stringify(issue.actual) : String(issue.actual)}`, override: true }) })
  )

/**
 * An operation's latency or a scheduler period: at most one virtual second, over a thousand
 * times every default here but pleWindowMaxNs (the periods are 3 and 24 ms, the latencies µs).
 */
const upToASecond = ns(SECOND_NS, "at most 1 virtual second")

export const Costs = Schema.Struct({
  ipiSendNs: upToASecond,
  ipiDeliveryNs: upToASecond,
  vmExitNs: upToASecond,
  vmEntryNs: upToASecond,
  tlbFlushNs: upToASecond,
  contextSwitchNs: upToASecond,
  timeSliceNs: upToASecond,
  atomicNs: upToASecond,
  cacheLineTransferNs: upToASecond,
  guestAccessNs: upToASecond,
  drainNs: upToASecond,
  pleWindowNs: upToASecond,
  /** The default is UINT_MAX cycles at 2.5 GHz (1.72 s); 10 s allows that cap at clocks down to 0.43 GHz. */
  pleWindowMaxNs: ns(10 * SECOND_NS, "at most 10 virtual seconds: UINT_MAX cycles at 0.43 GHz"),
  schedLatencyNs: upToASecond,
  spteZapNs: upToASecond,
  shadowPageFreeNs: upToASecond,
  rootLoadNs: upToASecond,
  srcuGracePeriodNs: upToASecond,
  hvaToPfnNs: upToASecond,
  pageFaultNs: upToASecond,
  cpuRelaxNs: upToASecond,
  rdtscNs: upToASecond,
  rdtscOrderedNs: upToASecond,
  getcpuNs: upToASecond,
  pvtiReadNs: upToASecond,
  vdsoNs: upToASecond,
  syscallNs: upToASecond,
  clockUpdateNs: upToASecond
})
export type Costs = typeof Costs.Type

/** Partial overrides, as a scenario file gives them. */
export const CostOverrides = Schema.partialWith(Costs, { exact: true })
export type CostOverrides = typeof CostOverrides.Type

export const defaults: Costs = {
  ipiSendNs: 800,
  ipiDeliveryNs: 1000,
  vmExitNs: 600,
  vmEntryNs: 600,
  tlbFlushNs: 150,
  contextSwitchNs: 2000,
  timeSliceNs: 3_000_000,
  atomicNs: 20,
  cacheLineTransferNs: 100,
  guestAccessNs: 50,
  drainNs: 20,
  pleWindowNs: 1640,
  pleWindowMaxNs: 1_717_986_918,
  schedLatencyNs: 24_000_000,
  spteZapNs: 30,
  shadowPageFreeNs: 200,
  rootLoadNs: 1_000,
  srcuGracePeriodNs: 30_000,
  hvaToPfnNs: 300,
  pageFaultNs: 1_500,
  cpuRelaxNs: 50,
  rdtscNs: 4,
  rdtscOrderedNs: 8,
  getcpuNs: 7,
  pvtiReadNs: 3,
  vdsoNs: 3,
  syscallNs: 100,
  clockUpdateNs: 150
}

/** Where each default comes from. */
export const sources: Readonly<Record<keyof Costs, string>> = {
  ipiSendNs:
    "spec §6 N5 and §10.1 (Zeng Guang, IPIv cover letter, 2021): a guest IPI is a full round trip of 4338-6059 cycles ≈ 1.7-2.4 µs at 2.5 GHz (sender exit, delivery, target handler); split here as ~0.8 µs on the sender (the ICR write exit), charged once per target, and ~1 µs to delivery. The target's exit and entry for it are inside that figure and not charged again",
  ipiDeliveryNs: "spec §6 N5, the delivery share of the ≈1.8 µs IPI round trip (see ipiSendNs)",
  vmExitNs: "assumption: spec §9.6 found no authoritative VM-exit latency; ~0.6 µs each way keeps exit+entry ≈ 1.2 µs, below the N5 IPI round trip",
  vmEntryNs: "assumption: see vmExitNs",
  tlbFlushNs: "assumption: a full VPID/ASID flush plus refill of the first entries, of the order of 100-200 ns",
  contextSwitchNs: "assumption: a host context switch with the KVM preempt notifiers (vcpu_put/vcpu_load), ~2 µs",
  timeSliceNs: "kernel/sched/fair.c: sysctl_sched_base_slice = 0.75 ms × (1 + ilog2(ncpus)) = 3 ms for 8 or more CPUs (EEVDF)",
  atomicNs: "assumption: an uncontended LOCK-prefixed RMW on a local cache line, ~20 ns",
  cacheLineTransferNs: "assumption: a cache-line transfer between cores of one socket, ~100 ns",
  guestAccessNs: "assumption: the guest work between two modelled memory accesses, ~50 ns",
  drainNs: "assumption: store-buffer drain latency, ~20 ns (the @kvmlab/memory default)",
  pleWindowNs:
    "kernel arch/x86/kvm/vmx/vmx.c: ple_window = KVM_VMX_DEFAULT_PLE_WINDOW = 4096 cycles ≈ 1.64 µs at 2.5 GHz; grow_ple_window doubles it at each pause-loop exit (ple_window_grow = 2), vmx_sched_in resets it (ple_window_shrink = 0)",
  pleWindowMaxNs: "kernel arch/x86/kvm/x86.h: KVM_VMX_DEFAULT_PLE_WINDOW_MAX = UINT_MAX cycles ≈ 1.72 s at 2.5 GHz, the cap of grow_ple_window",
  schedLatencyNs:
    "kernel/sched/fair.c before EEVDF (v6.6): sysctl_sched_latency = 6 ms × (1 + ilog2(8)) = 24 ms for 8 or more CPUs; a CFS slice is that over nr_running, at least sysctl_sched_min_granularity (0.75 ms × 4 = 3 ms, the timeSliceNs default)",
  spteZapNs: "assumption: clearing one SPTE under mmu_lock (the store, and its rmap entry for a present one), ~30 ns",
  shadowPageFreeNs: "assumption: kvm_mmu_free_shadow_page (list removal, hash removal, freeing the page table page), ~200 ns",
  rootLoadNs: "assumption: kvm_mmu_load for a fresh root (allocate it, load the PGD, kvm_x86_flush_tlb_current), ~1 µs",
  srcuGracePeriodNs:
    "spec §6 N7 (Szmigiero, memslot_perf_test, 2021) as an order of magnitude: moving a memslot (two kvm_swap_active_memslots, each with one synchronize_srcu_expedited) took 80-96 µs, so ~30 µs per expedited grace period; an assumption otherwise",
  hvaToPfnNs: "assumption: hva_to_pfn on a present page (get_user_page_fast_only: a lockless page-table walk and a reference), ~300 ns, plus kmap (page_address on 64-bit: nothing)",
  pageFaultNs: "assumption: a host page fault that allocates and zeroes a 4 KiB page (handle_mm_fault), ~1.5 µs, on top of hvaToPfnNs",
  cpuRelaxNs: "assumption: one pass of a busy-wait loop (cond_resched with nothing to do, cpu_relax: PAUSE is ~40-140 cycles on current x86), ~50 ns",
  rdtscNs:
    "assumption: RDTSC itself, ~4 ns (with pvtiReadNs and vdsoNs it makes a vCPU0-pvti clock_gettime of plain rdtsc 10 ns: spec §6 N4's guest figure, 995,823,886 ns per 100M calls — calibrated, not measured here)",
  rdtscOrderedNs:
    "spec §6 N4 (Rong Tao): rdtsc_ordered's fence (LFENCE; RDTSC, or RDTSCP) costs what separates the guest's 17.6 ns from 10.0 ns per vDSO clock_gettime, ~8 ns (calibrated from N4)",
  getcpuNs:
    "assumption: the 2015 vDSO's __getcpu (LSL of the per-CPU segment limit), ~7 ns; two of them per read are most of what Andy's vCPU0-only reader saved (spec §6 N3: 45 -> 29 ns)",
  pvtiReadNs: "assumption: reading the pvti's version and body, one cache line the reader usually has, ~3 ns",
  vdsoNs: "assumption: the rest of a vDSO clock_gettime (its data page's seqcount, the ns conversion), ~3 ns",
  syscallNs: "assumption: a clock_gettime system call's entry and exit in a guest without KPTI, ~100 ns, on top of the kernel's kvmclock read",
  clockUpdateNs: "assumption: kvm_guest_time_update's own work for one pvti (the pair's seqcount read, a TSC read, the scaling, the gpc check and the 32-byte copy), ~150 ns"
}

export const resolve = (overrides: CostOverrides | undefined): Costs => ({ ...defaults, ...overrides })
