/**
 * Workloads of mechanism E (spec §5, §7, §10.4): vCPUs write through a gfn_to_pfn_cache while the
 * VMM process's MM changes the page behind it. `gpc-refresh-race`, by `cache`:
 * - `pvclock`: each vCPU enables kvmclock (the MSR write activates its own `pv_time` cache on gfn
 *   `pvGfn` of slot 0) and rewrites its pvti at every clock update (`kvm_setup_guest_pvclock`);
 * - `shinfo-gpa`: the VMM activates one Xen shared-info cache on gfn `pvGfn`, and every vCPU sends
 *   event channels through it (`kvm_xen_set_evtchn`);
 * - `shinfo-hva`: the same cache set by host address (`kvm_gpc_activate_hva`), outside every
 *   memslot;
 * - `runstate`: each vCPU's Xen runstate area on gfn `pvGfn`, activated by the VMM and written by
 *   `kvm_xen_update_runstate_guest`: atomically (trylock, skip) when the vCPU is preempted, and
 *   at its next entry (overcommit the vCPUs for preemptions).
 * Meanwhile the VMM sends the MM actor `rounds` commands (`mmOp`) over the cache's first page,
 * each an MMU-notifier invalidation whose old page is freed before its end; for the shared-info
 * caches it also moves the cache `moves` times between two pages (KVM_XEN_HVM_SET_ATTR again:
 * activation of an active cache is a refresh at the new address); with `memslotUpdates`, a VMM
 * thread creates and deletes a dummy slot through the memslot manager, whose swaps wait for the
 * invalidations (GPC-4). Host pages: 1..memGfns back slot 0 (gfn g at g + 1); memGfns + 1 and
 * memGfns + 3 are the HVA cache's two pages, outside every slot; memGfns + 2 backs the dummy slot.
 */
import { Costs, Memslots, Mm, PfnCache, Protocol, Requests as KvmRequests, Sched, Vcpu, Vm } from "@kvmlab/kvm"
import { Mailbox, Sim } from "@kvmlab/sim"
import { Schema } from "effect"
import { bindSink, type Issue, type Sink } from "../Mechanism.js"
import type { Scenario } from "../Scenario.js"
import { percentile } from "../Metrics.js"
import { Count } from "../Schemas.js"
import { placeVcpus, spawnVcpus, sumStats, switchesOf, teardown } from "./Requests.js"

const fields = {
  /**
   * Which cache the vCPUs write through: each its kvmclock cache, one Xen shared-info cache by gpa
   * (slot 0) or by host address (outside every slot), or each its Xen runstate area on gfn pvGfn
   * (written at every preemption by the atomic user that trylocks and skips, and at the next entry).
   */
  cache: Schema.Literal("pvclock", "shinfo-gpa", "shinfo-hva", "runstate"),
  /** Frames of slot 0 (host pages 1..memGfns). */
  memGfns: Count(1, 255),
  /** The gfn of slot 0 the cache maps (pvclock, shinfo-gpa; shinfo-gpa moves to pvGfn + 1 and back). */
  pvGfn: Schema.Int.pipe(Schema.between(0, 254)),
  /** What the VMM asks of the MM, over the cache's page. */
  mmOp: Schema.Literal("migrate", "munmap", "remap", "mprotect"),
  /** MM commands, one after the other. */
  rounds: Count(1, 10_000),
  /** Writes through the cache each vCPU makes. */
  guestWork: Count(1, 1_000_000),
  /** Guest steps between two writes. */
  guestSteps: Count(1, 1000),
  /** Virtual ns the VMM waits between MM commands (timed runs). */
  gapNs: Schema.Int.pipe(Schema.between(0, 1_000_000_000)),
  /** Times the VMM moves the shared-info cache to its other page and back (shinfo-*). */
  moves: Schema.Int.pipe(Schema.between(0, 10_000)),
  /** Create/delete pairs of a one-page dummy slot (after slot 0) the VMM sends the memslot manager meanwhile. */
  memslotUpdates: Schema.Int.pipe(Schema.between(0, 10_000))
}

export const GpcRefreshRace = Schema.Struct({ kind: Schema.Literal("gpc-refresh-race"), ...fields })
export type PfnCacheWorkload = typeof GpcRefreshRace.Type

/**
 * `gpc-invalidation-storm` (thread 5's question): each vCPU keeps its kvmclock cache on its own gfn
 * (`pvGfn` + vCPU id) and updates its pvti `guestWork` times; `invalidators` MM threads each run
 * `invalidations` invalidations of a page of guest memory of their own (an `mprotect`, held
 * `lengthNs` between start and end, `gapNs` apart); every `overlapEvery`-th invalidation of the
 * first one migrates a vCPU's pvti page instead (in turn), which makes that vCPU refresh.
 * `E.livelock`: the invalidators run back to back, so that with two or more the count rarely drops to 0.
 */
export const GpcInvalidationStorm = Schema.Struct({
  kind: Schema.Literal("gpc-invalidation-storm"),
  memGfns: Count(2, 255),
  pvGfn: Schema.Int.pipe(Schema.between(0, 254)),
  invalidators: Count(1, 8),
  invalidations: Count(1, 1_000_000),
  lengthNs: Schema.Int.pipe(Schema.between(0, 1_000_000_000)),
  gapNs: Schema.Int.pipe(Schema.between(0, 1_000_000_000)),
  overlapEvery: Schema.Int.pipe(Schema.between(0, 1_000_000)),
  guestWork: Count(1, 1_000_000),
  guestSteps: Count(1, 1000),
  /** Create/delete pairs of a one-page dummy slot (after slot 0) a VMM thread sends the memslot manager during the storm, `memslotGapNs` apart. */
  memslotUpdates: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 10_000)), { default: () => 0 }),
  memslotGapNs: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 1_000_000_000)), { default: () => 0 })
})
export type StormWorkload = typeof GpcInvalidationStorm.Type

/** The storm's shapes that cannot work, each with its field. */
export const checkStorm = (s: Scenario, w: StormWorkload): ReadonlyArray<Issue> => [
  ...(w.pvGfn + s.vcpusPerVm + w.invalidators > w.memGfns
    ? [{ path: "workload.memGfns", message: `slot 0 needs a page per vCPU (from pvGfn ${w.pvGfn}) and one per invalidator: ${w.pvGfn + s.vcpusPerVm + w.invalidators} frames, got ${w.memGfns}` }]
    : []),
  ...(s.bugs.includes("E.livelock") && w.invalidators < 2
    ? [{ path: "workload.invalidators", message: "E.livelock needs two invalidators or more: one alone leaves the count at 0 between its invalidations" }]
    : [])
]

/** The shapes that cannot work, each with its field. */
export const check = (_s: Scenario, w: PfnCacheWorkload): ReadonlyArray<Issue> => [
  ...(w.pvGfn + (w.cache === "shinfo-gpa" ? 1 : 0) >= w.memGfns
    ? [{ path: "workload.pvGfn", message: `the cache's gfn ${w.pvGfn}${w.cache === "shinfo-gpa" ? " (and pvGfn + 1, where it moves)" : ""} must lie in slot 0 (memGfns ${w.memGfns})` }]
    : []),
  ...(w.moves > 0 && (w.cache === "pvclock" || w.cache === "runstate") ? [{ path: "workload.moves", message: "only a shared-info cache is moved by the VMM: use cache shinfo-gpa or shinfo-hva" }] : [])
]

/** Settings that change nothing here. */
export const notes = (s: Scenario): ReadonlyArray<string> =>
  s.variant.flush === "native" ? [] : [`flush=${s.variant.flush} changes nothing in a pfncache workload: its guest makes no remote TLB flushes of its own`]

const { ExitReason } = Protocol

/** The guests' end: each reports when its writes are done; the VMM tears down once all have. */
interface Done {
  n: number
  readonly q: Sim.WaitQueue
}

/** What a guest does: which cache, which gfn its pvti is on, how much work. */
interface GuestShape {
  /** Enable kvmclock first (the MSR write), then each doorbell is a clock update; else each doorbell is an event channel through `shinfo`. */
  readonly pvclock: boolean
  readonly pvGfn: (vcpu: number) => number
  readonly shinfo: PfnCache.State.GfnToPfnCache | undefined
  readonly guestWork: number
  readonly guestSteps: number
}

/**
 * The guest of both workloads (a class: its generator methods are made once, see `Requests.ts`'s
 * `Guest`): with kvmclock, the MSR write that enables it, then `guestWork` doorbells `guestSteps`
 * steps apart, then HLT.
 */
class Guest implements Vcpu.Guest {
  private readonly enabled: Array<boolean>
  private readonly steps: Array<number>
  private readonly writes: Array<number>
  /** Virtual ns at which the last guest finished. */
  lastNs = 0
  /** The vCPUs that have enabled kvmclock (the storm waits for all of them). */
  readonly ready: Done = { n: 0, q: Sim.makeWaitQueue("kvmclock enabled everywhere") }
  constructor(private readonly vm: Vm.Vm, private readonly g: GuestShape, private readonly done: Done) {
    this.enabled = vm.vcpus.map(() => false)
    this.steps = vm.vcpus.map(() => 0)
    this.writes = vm.vcpus.map(() => 0)
  }
  *step(v: Vm.Vm["vcpus"][number]): Sim.Gen<Protocol.ExitReason | undefined> {
    const id = v.vcpu_id
    if (this.g.pvclock && !this.enabled[id]) return ExitReason.MsrWrite // wrmsr(MSR_KVM_SYSTEM_TIME_NEW, pvti | 1)
    yield* Sim.point(this.vm.costs.guestAccessNs)
    if (this.writes[id]! >= this.g.guestWork) return ExitReason.Hlt
    if (++this.steps[id]! < this.g.guestSteps) return undefined
    this.steps[id] = 0
    // A doorbell exit: for pvclock, an event after which the pvti must be rewritten (as when
    // kvm_arch_vcpu_load finds the vCPU on another CPU); for shinfo, the guest's EVTCHNOP_send
    // (a Xen hypercall: the model's VMCALL exit is KVM's own hypercalls').
    return ExitReason.IoInstruction
  }
  *handleExit(v: Vm.Vm["vcpus"][number], reason: Protocol.ExitReason, host: Sched.HostCpu): Sim.Gen<void> {
    const { vm, g, done } = this
    const id = v.vcpu_id
    if (reason === ExitReason.Hlt) return Vcpu.kvm_emulate_halt(vm, v)
    if (reason === ExitReason.MsrWrite) {
      this.enabled[id] = true
      yield* PfnCache.X86.kvm_write_system_time(v, g.pvGfn(id), host)
      if (++this.ready.n === vm.vcpus.length) vm.kernel.wakeAll(this.ready.q)
      // The first pvti is written at the next entry.
      yield* KvmRequests.kvm_make_request(vm, Protocol.KVM_REQ_CLOCK_UPDATE, v, v)
      return
    }
    if (reason !== ExitReason.IoInstruction) return
    // pvclock: a clock update (the pvti is written at the next entry); shinfo: an event channel.
    if (g.shinfo === undefined) yield* KvmRequests.kvm_make_request(vm, Protocol.KVM_REQ_CLOCK_UPDATE, v, v)
    else yield* PfnCache.X86.kvm_xen_set_evtchn(g.shinfo, v, id + 1, host)
    if (++this.writes[id]! === g.guestWork) {
      done.n++
      this.lastNs = vm.kernel.now
      vm.kernel.wakeAll(done.q)
    }
  }
}

/**
 * The guest memory of mechanism E's and D's workloads: memslots over `gfns` frames with slot 0
 * over the first `memGfns` (host pages 1..memGfns), the VMM process's MM over `hvaPages` host
 * pages, and the VM's MMU notifier between them (mechanism E attached).
 */
export const guestMemory = (vm: Vm.Vm, gfns: number, memGfns: number, hvaPages: number) => {
  const ms = Memslots.Extension.attach(vm, { gfns, sptesPerPage: 8, asOf: () => 0 })
  Memslots.Extension.prepopulateSlot0(ms, memGfns)
  const mm = new Mm.Mm(vm.memory, "vmm.mm", hvaPages)
  const kvm = PfnCache.Extension.attach(vm, ms, mm)
  return { ms, mm, kvm }
}

/** The MM actor's thread (`mm`, on CPU `cpu`). */
function* mmThread(host: Vm.Host, mm: Mm.Mm, box: Mailbox.Mailbox<Mm.MmCommand>, name: string, cpu: number): Sim.Gen<number> {
  const t = yield* Vm.hostThread(host, name, cpu)
  return yield* Mm.mm_actor(mm, box, t)
}

/** The memslot manager's thread. */
function* managerThread(host: Vm.Host, ms: Memslots.State.Memslots, box: Mailbox.Mailbox<Memslots.Protocol.MemslotCommand>, cpu: number): Sim.Gen<number> {
  const t = yield* Vm.hostThread(host, "memslot-manager", cpu)
  return yield* Memslots.KvmMain.memslot_manager(ms, box, t)
}

/** The dummy slot: one page at gfn `baseGfn` (after slot 0), backed by host page `hva`. */
interface DummySlot {
  readonly baseGfn: number
  readonly hva: number
  readonly updates: number
  readonly gapNs: number
}

/**
 * The VMM thread that creates and deletes the dummy slot `updates` times (`gapNs` apart, after
 * `ready` when given), then closes the manager.
 */
function* memslotUpdater(d: DummySlot, box: Mailbox.Mailbox<Memslots.Protocol.MemslotCommand>, manager: Sim.ActorHandle<number>, ready?: Done, n = 0): Sim.Gen<void> {
  if (ready !== undefined) while (ready.n < n) yield* Sim.wait(ready.q)
  const dummy = (op: Memslots.Protocol.MemslotOp) =>
    new Memslots.Protocol.SetUserMemoryRegion({ as: 0, slot: 1, op, baseGfn: d.baseGfn, npages: 1, userspaceAddr: d.hva })
  for (let r = 0; r < d.updates; r++) {
    yield* box.send(dummy("create"))
    yield* box.send(dummy("delete"))
    if (d.gapNs > 0) yield* Sim.sleep(d.gapNs)
  }
  yield* box.send(new Memslots.Protocol.CloseVm())
  yield* Sim.join(manager)
}

/** The memslot manager and the VMM thread that feeds it the dummy slot's updates. */
function* spawnMemslotUpdates(host: Vm.Host, vm: Vm.Vm, ms: Memslots.State.Memslots, d: DummySlot, cpu: number, ready?: Done): Sim.Gen<Sim.ActorHandle<void>> {
  const ioctls = Mailbox.make<Memslots.Protocol.MemslotCommand>(host.kernel, `${vm.name} memslot ioctls`, Memslots.Protocol.MEMSLOT_MAILBOX_CAPACITY)
  const manager = yield* Sim.spawn("memslot-manager", () => managerThread(host, ms, ioctls, cpu))
  return yield* Sim.spawn("vmm-memslots", () => memslotUpdater(d, ioctls, manager, ready, vm.vcpus.length))
}

/** The memslot metrics: virtual ns the swaps slept for invalidations in flight, and how many had to. */
const countMemslotWaits = (vm: Vm.Vm, ms: Memslots.State.Memslots): void => {
  vm.count("memslotWaitNs", Math.round(ms.swapWaitNs))
  vm.count("memslot_swap_waits", ms.swapWaits)
}

const command = (w: PfnCacheWorkload, hva: number): Mm.MmCommand => {
  const r = { hva, npages: 1 }
  switch (w.mmOp) {
    case "migrate":
      return new Mm.Migrate(r)
    case "munmap":
      return new Mm.Munmap(r)
    case "remap":
      return new Mm.Remap(r)
    case "mprotect":
      return new Mm.Mprotect(r)
  }
}

/**
 * The program: one VM with memslots (slot 0) and the MMU notifier, the VMM process's MM actor
 * and the VMM thread, each on a CPU of its own; the VMM activates the shared-info cache (shinfo-*),
 * sends the MM its commands, moves the cache, waits for the guests, and tears down.
 */
export const program = (s: Scenario, sink?: Sink): Sim.Program<Record<string, number>> =>
  function*() {
    const w = s.workload as PfnCacheWorkload
    const vcpus = s.vcpusPerVm
    const cpus = Math.min(s.pcpus, vcpus)
    const host = yield* Vm.makeHost({ pcpus: cpus, costs: Costs.resolve(s.costs) })
    const vm = Vm.makeVm(host, vcpus, switchesOf(s))
    bindSink(sink, host.memory, () => sumStats([vm]))
    const { ms, mm, kvm } = guestMemory(vm, w.memGfns + 1, w.memGfns, w.memGfns + 4)
    const vmm = yield* Vm.hostThread(host, "vmm", cpus + 1)
    // The cache's two places: by gpa (gfn, gfn + 1 of slot 0) or by host address (outside every slot).
    const at = (i: number): readonly [number, number] =>
      w.cache === "shinfo-hva" ? [PfnCache.Protocol.INVALID_GPA, 1 + w.memGfns + 2 * i] : [w.pvGfn + i, PfnCache.Protocol.KVM_HVA_ERR_BAD]
    const hva = w.cache === "shinfo-hva" ? at(0)[1] : 1 + w.pvGfn
    let shinfo: PfnCache.State.GfnToPfnCache | undefined
    if (w.cache !== "pvclock") {
      // KVM_XEN_HVM_SET_ATTR(KVM_XEN_ATTR_TYPE_SHARED_INFO{,_HVA}): kvm_gpc_activate{,_hva}.
      shinfo = PfnCache.PfnCache.kvm_gpc_init(kvm, "vm.shinfo_cache")
      yield* PfnCache.PfnCache.kvm_gpc_activate(shinfo, ...at(0), vmm)
    }
    if (w.cache === "runstate") {
      // KVM_XEN_VCPU_ATTR_TYPE_RUNSTATE_ADDR for each vCPU: kvm_gpc_activate on its runstate cache.
      PfnCache.Extension.attachRunstate(vm, kvm)
      for (const v of vm.vcpus) yield* PfnCache.PfnCache.kvm_gpc_activate(PfnCache.X86.xenRunstate.of(v), w.pvGfn, PfnCache.Protocol.KVM_HVA_ERR_BAD, vmm)
    }
    const done: Done = { n: 0, q: Sim.makeWaitQueue("guests done") }
    const actors = yield* spawnVcpus(host, vm, new Guest(vm, { pvclock: w.cache === "pvclock", pvGfn: () => w.pvGfn, shinfo, guestWork: w.guestWork, guestSteps: w.guestSteps }, done), placeVcpus(s, host)(0))
    const box = Mailbox.make<Mm.MmCommand>(host.kernel, "vmm.mm commands", Mm.MM_MAILBOX_CAPACITY)
    const mmActor = yield* Sim.spawn("mm", () => mmThread(host, mm, box, "mm", cpus + 2))
    let updater: Sim.ActorHandle<void> | undefined
    if (w.memslotUpdates > 0) updater = yield* spawnMemslotUpdates(host, vm, ms, { baseGfn: w.memGfns, hva: w.memGfns + 2, updates: w.memslotUpdates, gapNs: 0 }, cpus + 3)
    for (let r = 0; r < Math.max(w.rounds, w.moves); r++) {
      if (r < w.rounds) yield* box.send(command(w, hva))
      if (r < w.moves && shinfo !== undefined) {
        // Moved there and back: activating an active cache refreshes it at the new address.
        yield* PfnCache.PfnCache.kvm_gpc_activate(shinfo, ...at(1), vmm)
        yield* PfnCache.PfnCache.kvm_gpc_activate(shinfo, ...at(0), vmm)
      }
      if (w.gapNs > 0) yield* Sim.sleep(w.gapNs)
    }
    yield* box.send(new Mm.Exit())
    yield* Sim.join(mmActor)
    if (updater !== undefined) yield* Sim.join(updater)
    while (done.n < vcpus) yield* Sim.wait(done.q)
    yield* teardown(vm, vmm, actors)
    if (w.memslotUpdates > 0) countMemslotWaits(vm, ms)
    return sink === undefined ? {} : sink.metrics()
  }

/**
 * Invalidator `j`'s VMM thread, once every vCPU has enabled kvmclock: `invalidations` commands to its MM thread — an mprotect of its own
 * page of guest memory (after the pvti pages), or, every `overlapEvery`-th of the first one's, a
 * migration of a pvti page in turn — `gapNs` apart (none with E.livelock), then Exit.
 */
function* stormFeeder(w: StormWorkload, vcpus: number, j: number, back2back: boolean, box: Mailbox.Mailbox<Mm.MmCommand>, ready: Done): Sim.Gen<number> {
  while (ready.n < vcpus) yield* Sim.wait(ready.q)
  const page = 1 + w.pvGfn + vcpus + j
  for (let i = 0; i < w.invalidations; i++) {
    const overlap = j === 0 && w.overlapEvery > 0 && (i + 1) % w.overlapEvery === 0
    const victim = 1 + w.pvGfn + (Math.floor((i + 1) / Math.max(1, w.overlapEvery)) % vcpus)
    yield* box.send(overlap ? new Mm.Migrate({ hva: victim, npages: 1, holdNs: w.lengthNs }) : new Mm.Mprotect({ hva: page, npages: 1, holdNs: w.lengthNs }))
    if (!back2back && w.gapNs > 0) yield* Sim.sleep(w.gapNs)
  }
  yield* box.send(new Mm.Exit())
  return 0
}

/**
 * The storm's program: one VM with memslots and the MMU notifier; vCPUs placed as the scenario
 * says (pcpus < vCPUs: overcommitted, on the host scheduler); each invalidator an MM thread with a
 * CPU of its own, fed by a VMM thread. Metrics: refresh latency p50/p99/max, CPU burned by
 * refreshers on thrown-away passes and busy waits, retries, and when the last guest finished.
 */
export const stormProgram = (s: Scenario, sink?: Sink): Sim.Program<Record<string, number>> =>
  function*() {
    const w = s.workload as StormWorkload
    const vcpus = s.vcpusPerVm
    const host = yield* Vm.makeHost({ pcpus: s.pcpus, costs: Costs.resolve(s.costs) })
    const vm = Vm.makeVm(host, vcpus, switchesOf(s))
    bindSink(sink, host.memory, () => sumStats([vm]))
    // Host pages 1..memGfns back slot 0; memGfns + 1 backs the dummy slot at gfn memGfns.
    const { ms, mm, kvm } = guestMemory(vm, w.memGfns + 1, w.memGfns, w.memGfns + 2)
    const k = host.kernel
    const done: Done = { n: 0, q: Sim.makeWaitQueue("guests done") }
    const guest = new Guest(vm, { pvclock: true, pvGfn: (id) => w.pvGfn + id, shinfo: undefined, guestWork: w.guestWork, guestSteps: w.guestSteps }, done)
    const vmm = yield* Vm.hostThread(host, "vmm", s.pcpus)
    const actors = yield* spawnVcpus(host, vm, guest, placeVcpus(s, host)(0))
    const back2back = vm.bug("E.livelock")
    const invalidators: Array<Sim.ActorHandle<unknown>> = []
    for (let j = 0; j < w.invalidators; j++) {
      const box = Mailbox.make<Mm.MmCommand>(k, `mm${j} commands`, Mm.MM_MAILBOX_CAPACITY)
      invalidators.push(yield* Sim.spawn(`mm${j}`, () => mmThread(host, mm, box, `mm${j}`, s.pcpus + 1 + 2 * j)))
      invalidators.push(yield* Sim.spawn(`vmm-mm${j}`, () => stormFeeder(w, vcpus, j, back2back, box, guest.ready)))
    }
    if (w.memslotUpdates > 0) {
      const d = { baseGfn: w.memGfns, hva: w.memGfns + 1, updates: w.memslotUpdates, gapNs: w.memslotGapNs }
      invalidators.push(yield* spawnMemslotUpdates(host, vm, ms, d, s.pcpus + 1 + 2 * w.invalidators, guest.ready))
    }
    for (const a of invalidators) yield* Sim.join(a)
    while (done.n < vcpus) yield* Sim.wait(done.q)
    yield* teardown(vm, vmm, actors)
    countMemslotWaits(vm, ms)
    vm.count("refreshLatencyP50Ns", percentile(kvm.refreshNs, 50))
    vm.count("refreshLatencyP99Ns", percentile(kvm.refreshNs, 99))
    vm.count("refreshLatencyMaxNs", percentile(kvm.refreshNs, 100))
    vm.count("waitCpuNs", Math.round(kvm.waitCpuNs))
    vm.count("workloadNs", guest.lastNs)
    vm.count("gpc_needless_retries_max", kvm.maxNeedless)
    return sink === undefined ? {} : sink.metrics()
  }
