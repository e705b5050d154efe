/**
 * Workloads of mechanism C (spec §3, §7): vCPUs touch guest memory and an MMIO hole while a VMM
 * thread issues `KVM_SET_USER_MEMORY_REGION` ioctls to the memslot manager — a dummy slot in the
 * hole created and deleted over and over (`memslot-stress`: `memslot_modification_stress_test`;
 * `mmio-wrap`: the same churn in one address space, with a small MMIO generation so it wraps),
 * or created, moved and deleted while vCPUs read it (`memslot-delete`: `set_memory_region_test`).
 * `rom-access` is thread 2's benchmark (`mmtest -c 8 -m 2000 -e ./rom.sh`): each vCPU touches its
 * share of slot 0 over and over while the VMM deletes and re-creates a ROM-like slot, until every
 * vCPU is done; `benchmarkNs` is when the last one finished (virtual ns, under `timed`).
 * Guest frames `[0, memGfns)` are slot 0 in every address space; the rest is the MMIO hole, in
 * which the dummy slot lives at `[memGfns, memGfns + dummyGfns)` (moved: right after it).
 */
import { Costs, Memslots, Mmu, MmuFault, Protocol, Vcpu, Vm } from "@kvmlab/kvm"
import { Mailbox, Sim } from "@kvmlab/sim"
import { Schema } from "effect"
import { bindSink, type Issue, type Sink } from "../Mechanism.js"
import type { Scenario } from "../Scenario.js"
import { Count } from "../Schemas.js"
import { placeVcpus, spawnVcpus, sumStats, switchesOf, teardown } from "./Requests.js"

const fields = {
  /** Guest frames: slot 0, then the MMIO hole. */
  gfns: Count(2, 256),
  /** SPTEs of a last-level shadow page: the guest frames it covers (512 in the kernel). */
  sptesPerPage: Count(1, 512),
  /** Frames of slot 0, from gfn 0. */
  memGfns: Count(1, 255),
  /** Frames of the dummy slot, in the MMIO hole. */
  dummyGfns: Count(1, 128),
  /** Create/delete pairs (memslot-stress, mmio-wrap) or create/move/delete rounds (memslot-delete). */
  rounds: Count(1, 10_000),
  /** The address space the VMM's ioctls change (1: SMM). */
  updateAs: Schema.Literal(0, 1),
  /** vCPUs in SMM (address space 1), the last ones. */
  smmVcpus: Count(0, 256),
  /** Guest accesses per guest-mode interval before a voluntary exit. */
  guestSteps: Count(1, 1000),
  /** Guest steps each vCPU executes at least; it goes on until the VMM's ioctls are done (at most 20 times as many), then halts for good. */
  guestWork: Count(1, 1_000_000),
  /** Virtual ns the VMM waits between ioctls (timed runs). */
  gapNs: Schema.Int.pipe(Schema.between(0, 1_000_000_000))
}

export const MemslotStress = Schema.Struct({ kind: Schema.Literal("memslot-stress"), ...fields })
export const MmioWrap = Schema.Struct({ kind: Schema.Literal("mmio-wrap"), ...fields })
export const MemslotDelete = Schema.Struct({ kind: Schema.Literal("memslot-delete"), ...fields })
export const RomAccess = Schema.Struct({ kind: Schema.Literal("rom-access"), ...fields })
export type MemslotsWorkload = typeof MemslotStress.Type | typeof MmioWrap.Type | typeof MemslotDelete.Type | typeof RomAccess.Type

/** The shapes that cannot work, each with its field. */
export const check = (s: Scenario, w: MemslotsWorkload): ReadonlyArray<Issue> => {
  const out: Array<Issue> = []
  const room = w.kind === "memslot-delete" ? 2 * w.dummyGfns : w.dummyGfns
  if (w.memGfns + room > w.gfns) {
    out.push({ path: "workload.dummyGfns", message: `the dummy slot needs ${room} frames after slot 0 (memGfns ${w.memGfns}) within gfns ${w.gfns}${w.kind === "memslot-delete" ? ", twice its size: it is moved right after itself" : ""}` })
  }
  if (w.smmVcpus > s.vcpusPerVm) out.push({ path: "workload.smmVcpus", message: `${w.smmVcpus} vCPUs in SMM, but the VM has ${s.vcpusPerVm}` })
  if (s.variant.addressSpaces === "1" && (w.updateAs === 1 || w.smmVcpus > 0)) {
    out.push({ path: w.updateAs === 1 ? "workload.updateAs" : "workload.smmVcpus", message: "address space 1 (SMM) needs --variant addressSpaces=2" })
  }
  return out
}

/** Settings that change nothing here. */
export const notes = (s: Scenario): ReadonlyArray<string> =>
  s.variant.flush === "native" ? [] : [`flush=${s.variant.flush} changes nothing in a memslot workload: its guest makes no remote TLB flushes of its own`]

const { ExitReason } = Protocol

/**
 * The guests' end, as memstress has it: `host_quit`, which the VMM sets once its ioctls are done
 * (a plain flag: nothing the model checks races with it), and the count of guests that have
 * reported done (ucall DONE), with the VMM's wait for them.
 */
interface Done {
  host_quit: boolean
  n: number
  readonly q: Sim.WaitQueue
  /** Virtual ns at which the last guest reported done. */
  lastNs: number
}

/**
 * The guest: accesses anywhere in its frames (memory or the MMIO hole; `rom-access`: its own
 * share of slot 0, in order, over and over), voluntary exits, and the host's fault handling.
 */
/** How many times its work a guest does at most while the VMM's ioctls go on. */
const GUEST_WORK_CAP = 20

/** The guest (a class: its generator methods are made once, see `Requests.ts`'s `Guest`). */
class Guest implements Vcpu.Guest {
  private readonly k: Sim.Kernel
  private readonly steps: Array<number>
  private readonly work: Array<number>
  private readonly finished: Array<boolean>
  private readonly faultGfn: Array<number>
  private readonly share: number
  constructor(private readonly vm: Vm.Vm, private readonly ms: Memslots.State.Memslots, private readonly w: MemslotsWorkload, private readonly done: Done) {
    this.k = vm.kernel
    this.steps = vm.vcpus.map(() => 0)
    this.work = vm.vcpus.map(() => 0)
    this.finished = vm.vcpus.map(() => false)
    this.faultGfn = vm.vcpus.map(() => 0)
    this.share = Math.max(1, Math.floor(w.memGfns / vm.vcpus.length))
  }
  *step(v: Vm.Vm["vcpus"][number]): Sim.Gen<Protocol.ExitReason | undefined> {
    const { k, vm, ms, w, done, steps, work, finished, faultGfn, share } = this
    const id = v.vcpu_id
    // Done: its work, once the VMM's ioctls are (memstress's host_quit); or, so that a strategy
    // starving the VMM (pct) still ends its run, GUEST_WORK_CAP times its work.
    if (finished[id] || (work[id]! >= w.guestWork && (done.host_quit || w.kind === "rom-access")) || work[id]! >= GUEST_WORK_CAP * w.guestWork) {
      // The guest's work is done (a selftest's ucall DONE): it idles in HLT until teardown.
      if (!finished[id]) {
        finished[id] = true
        done.n++
        done.lastNs = k.now
        k.wakeAll(done.q)
      }
      yield* Sim.point(vm.costs.guestAccessNs)
      return ExitReason.Hlt
    }
    // rom-access walks its share in order; a faulting access is retried (the guest re-executes it).
    const gfn = w.kind === "rom-access" ? share * id + (work[id]! % share) : k.randomBetween(0, w.gfns)
    const a = yield* Mmu.guestAccess(ms.mmu, v, gfn)
    if (a !== Mmu.Access.Done) {
      faultGfn[v.vcpu_id] = gfn
      return a === Mmu.Access.Misconfig ? ExitReason.EptMisconfig : ExitReason.EptViolation
    }
    work[id]!++
    if (++steps[v.vcpu_id]! < w.guestSteps) return undefined
    steps[v.vcpu_id] = 0
    return ExitReason.IoInstruction
  }
  *handleExit(v: Vm.Vm["vcpus"][number], reason: Protocol.ExitReason): Sim.Gen<void> {
    const { vm, ms } = this
    if (reason === ExitReason.Hlt) return Vcpu.kvm_emulate_halt(vm, v)
    if (reason !== ExitReason.EptViolation && reason !== ExitReason.EptMisconfig) return
    const r = yield* MmuFault.kvm_mmu_page_fault(ms, v, this.faultGfn[v.vcpu_id]!, reason === ExitReason.EptMisconfig)
    if (r === MmuFault.RetPf.EMULATE) {
      // x86_emulate_instruction: the MMIO access goes to userspace (KVM_EXIT_MMIO) and back.
      vm.count("mmio_exits")
      yield* Sim.point(vm.costs.vmExitNs + vm.costs.vmEntryNs)
    }
  }
}

/** The dummy (or ROM) slot's ioctl. */
const dummy = (w: MemslotsWorkload, op: Memslots.Protocol.MemslotOp, baseGfn: number) =>
  new Memslots.Protocol.SetUserMemoryRegion({ as: w.updateAs, slot: 1, op, baseGfn, npages: w.dummyGfns, userspaceAddr: 1 + w.gfns + w.memGfns })

/** The VMM's ioctls, in order (`rom-access`: the ROM slot's creation; its churn follows the guests). */
const timeline = (w: MemslotsWorkload): Array<Memslots.Protocol.SetUserMemoryRegion> => {
  const out: Array<Memslots.Protocol.SetUserMemoryRegion> = []
  if (w.kind === "rom-access") return [dummy(w, "create", w.memGfns)]
  for (let r = 0; r < w.rounds; r++) {
    out.push(dummy(w, "create", w.memGfns))
    if (w.kind === "memslot-delete") out.push(dummy(w, "move", w.memGfns + w.dummyGfns), dummy(w, "delete", w.memGfns + w.dummyGfns))
    else out.push(dummy(w, "delete", w.memGfns))
  }
  return out
}

/**
 * The program: one VM (vCPUs placed as mechanism A's workloads place them), the memslot manager
 * and the VMM each on a CPU of their own; the VMM plays the timeline, closes the VM once the
 * manager has run every ioctl and every guest has done its work, and tears the vCPUs down.
 */
export const program = (s: Scenario, sink?: Sink): Sim.Program<Record<string, number>> =>
  function*() {
    const w = s.workload as MemslotsWorkload
    const vcpus = s.vcpusPerVm
    const cpus = Math.min(s.pcpus, vcpus)
    const host = yield* Vm.makeHost({ pcpus: cpus, costs: Costs.resolve(s.costs) })
    const vm = Vm.makeVm(host, vcpus, switchesOf(s))
    bindSink(sink, host.memory, () => sumStats([vm]))
    const ms = Memslots.Extension.attach(vm, { gfns: w.gfns, sptesPerPage: w.sptesPerPage, asOf: (i) => (i >= vcpus - w.smmVcpus ? 1 : 0) })
    // Slot 0 in every address space, before the vCPUs run (the VMM's first ioctls).
    Memslots.Extension.prepopulateSlot0(ms, w.memGfns)
    const done: Done = { host_quit: false, n: 0, q: Sim.makeWaitQueue("guests done"), lastNs: 0 }
    const actors = yield* spawnVcpus(host, vm, new Guest(vm, ms, w, done), placeVcpus(s, host)(0))
    const box = Mailbox.make<Memslots.Protocol.MemslotCommand>(host.kernel, `${vm.name} memslot ioctls`, Memslots.Protocol.MEMSLOT_MAILBOX_CAPACITY)
    const manager = yield* Sim.spawn("memslot-manager", () => managerThread(host, ms, box, cpus))
    const vmm = yield* Vm.hostThread(host, "vmm", cpus + 1)
    for (const cmd of timeline(w)) {
      yield* box.send(cmd)
      if (w.gapNs > 0) yield* Sim.sleep(w.gapNs)
    }
    // rom.sh: read the ROM (QEMU deletes and re-creates its slot) until the guests are done, at most `rounds` times.
    for (let r = 0; w.kind === "rom-access" && r < w.rounds && done.n < vcpus; r++) {
      yield* box.send(dummy(w, "delete", w.memGfns))
      yield* box.send(dummy(w, "create", w.memGfns))
      if (w.gapNs > 0) yield* Sim.sleep(w.gapNs)
    }
    yield* box.send(new Memslots.Protocol.CloseVm())
    yield* Sim.join(manager)
    done.host_quit = true
    // As the selftests do: tear down once every guest has reported its work done.
    while (done.n < vcpus) yield* Sim.wait(done.q)
    if (w.kind === "rom-access") vm.count("benchmarkNs", done.lastNs)
    yield* teardown(vm, vmm, actors)
    return sink === undefined ? {} : sink.metrics()
  }

/** The memslot manager's host thread, on CPU `cpu`. */
function* managerThread(host: Vm.Host, ms: Memslots.State.Memslots, box: Mailbox.Mailbox<Memslots.Protocol.MemslotCommand>, cpu: number) {
  const t = yield* Vm.hostThread(host, "memslot-manager", cpu)
  return yield* Memslots.KvmMain.memslot_manager(ms, box, t)
}
