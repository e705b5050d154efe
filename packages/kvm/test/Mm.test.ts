/**
 * The VMM process's MM actor: its commands change the page table between the notifiers' start
 * and end, the old page is freed inside that window, and MN-1 is hot from the start to the end —
 * a notifier that keeps the MM in the window past the bound is reported as MN-1.
 */
import { describe, expect, it } from "@effect/vitest"
import { Costs, Mm, Vm } from "@kvmlab/kvm"
import { Mailbox, Run, Sim } from "@kvmlab/sim"

/** One MM, one notifier that spends `startNs` in `invalidate_range_start`, and `cmds` sent to the MM actor. */
const mmRun = (startNs: number, cmds: ReadonlyArray<Mm.MmCommand>) =>
  function*() {
    const k = yield* Sim.kernel()
    const host = yield* Vm.makeHost({ pcpus: 1, costs: Costs.defaults })
    const mm = new Mm.Mm(host.memory, "vmm.mm", 4)
    const seen: Array<string> = []
    mm.notifiers.push({
      *invalidate_range_start(_t, start, end) {
        seen.push(`start [${start}, ${end}) freed=${mm.freed.filter(Boolean).length}`)
        if (startNs > 0) yield* Sim.sleep(startNs)
      },
      *invalidate_range_end(_t, start, end) {
        seen.push(`end [${start}, ${end}) freed=${mm.freed.filter(Boolean).length}`)
      }
    })
    const vmm = yield* Vm.hostThread(host, "vmm", 1)
    // The VMM faults host page 2 in (GUP), then drops its reference: the PTE's remains.
    const pfn = yield* Mm.hva_to_pfn(mm, vmm, 2, 0, 0)
    yield* Mm.put_page(mm, vmm, pfn)
    const box = Mailbox.make<Mm.MmCommand>(k, "mm commands", Mm.MM_MAILBOX_CAPACITY)
    const actor = yield* Sim.spawn("mm", function*() {
      return yield* Mm.mm_actor(mm, box, yield* Vm.hostThread(host, "mm", 2))
    })
    for (const c of cmds) yield* box.send(c)
    yield* box.send(new Mm.Exit())
    const exit = yield* Sim.join(actor)
    const n = exit._tag === "success" ? exit.value : -1
    return { n, seen, pfn, now: mm.mapped(2), freed: mm.freed[pfn] }
  }

describe("the MM actor", () => {
  it("a migration frees the old page between the notifiers' start and end, and maps a new one", () => {
    const r = Run.runSync(mmRun(0, [new Mm.Migrate({ hva: 2, npages: 1, holdNs: 0 })]), { seed: 1 })
    expect(r.outcome).toBe("completed")
    const v = r.exit?._tag === "Success" ? r.exit.value : undefined
    expect(v?.n).toBe(1)
    expect(v?.seen).toEqual(["start [2, 3) freed=0", "end [2, 3) freed=1"])
    expect(v?.freed).toBe(true)
    expect(v?.now).not.toBe(v?.pfn)
  })

  it("MN-1: a notifier that keeps the MM in the window past the bound is reported, one within it is not", () => {
    const within = Run.runSync(mmRun(Mm.MN1_SLACK_NS - 1000, [new Mm.Mprotect({ hva: 2, npages: 1, holdNs: 0 })]), { seed: 1 })
    expect(within.outcome).toBe("completed")
    const stuck = Run.runSync(mmRun(Mm.MN1_SLACK_NS + 1000, [new Mm.Munmap({ hva: 2, npages: 1, holdNs: 0 })]), { seed: 1 })
    expect(stuck.outcome).toBe("violation")
    expect(stuck.violation?.invariant).toBe("MN-1")
    expect(stuck.violation?.message).toMatch(/mm's Munmap of host pages \[2, 3\) started its MMU-notifier invalidation/)
  })
})
