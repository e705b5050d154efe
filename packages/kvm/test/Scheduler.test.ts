/**
 * The host scheduler's switches are Schema-tagged messages (`Dispatch`) in each thread's
 * scheduler mailbox: a thread waiting for its CPU is a kernel-visible wait on that mailbox, so
 * one that nobody switches to is reported as a deadlock naming the mailbox.
 */
import { describe, expect, it } from "@effect/vitest"
import { Costs, HostProtocol, Scheduler, Variants, Vm } from "@kvmlab/kvm"
import { Run, Sim } from "@kvmlab/sim"
import { Schema } from "effect"

/**
 * Two vCPU threads pinned to one physical CPU: the first to get it waits until the other is
 * queued, then yields it; with `holdForever` it never gives it up.
 */
const twoOnOneCpu = (holdForever: boolean) =>
  function*() {
    const k = yield* Sim.kernel()
    const host = yield* Vm.makeHost({ pcpus: 1, costs: Costs.defaults })
    const vm = Vm.makeVm(host, 2, { variant: Variants.defaultVariant, bugs: new Set() })
    const sched = new Scheduler.Scheduler(1, Scheduler.slicePolicy("eevdf", host.costs), k, 1)
    const order: Array<string> = []
    const never = Sim.makeWaitQueue("nothing")
    const actors = []
    for (const v of vm.vcpus) {
      v.cpu = 0
      v.pcpu = host.pcpus[0]!
      actors.push(yield* Sim.spawn(v.name, function*() {
        v.hw = yield* host.memory.attach(v.name)
        yield* sched.acquire(v)
        order.push(`${v.name} runs`)
        const first = order.length === 1
        while (first && sched.rqs[0]!.queue.length === 0) yield* Sim.point()
        if (holdForever && first) yield* Sim.wait(never)
        yield* sched.cpu.yield_cpu(v) // schedule(): the other thread runs, then this one again
        order.push(`${v.name} back`)
        yield* sched.cpu.sleep(v) // the thread exits: the CPU passes on
      }))
    }
    for (const a of actors) yield* Sim.join(a)
    return order
  }

describe.each(["fast", "effect"] as const)("the host scheduler's mailboxes on the %s engine", (engine) => {
  it("each switch is a Dispatch message: the threads take turns on the one CPU", () => {
    for (const seed of [1, 2, 3, 4]) {
      const r = Run.runSync(twoOnOneCpu(false), { seed, engine })
      expect(r.outcome).toBe("completed")
      const order = r.exit?._tag === "Success" ? r.exit.value : []
      const [a, b] = [order[0]?.split(" ")[0], order[1]?.split(" ")[0]]
      expect(a).not.toBe(b)
      expect(order).toEqual([`${a} runs`, `${b} runs`, `${a} back`, `${b} back`])
    }
  })

  it("a thread nobody switches to waits on its empty scheduler mailbox: a deadlock report names it", () => {
    for (const seed of [1, 2, 3, 4]) {
      const r = Run.runSync(twoOnOneCpu(true), { seed, engine })
      expect(r.outcome).toBe("deadlock")
      // The holder waits on "nothing"; the other thread waits for its Dispatch.
      const holder = /(vcpu\d) on nothing/.exec(r.violation?.message ?? "")?.[1]
      const waiter = holder === "vcpu0" ? "vcpu1" : "vcpu0"
      expect(holder).toBeDefined()
      expect(r.violation?.message).toContain(`${waiter} on ${waiter} scheduler (empty)`)
    }
  })
})

describe("the scheduler's messages", () => {
  it("are Schema-tagged: Dispatch decodes from its encoded form and rejects a bad CPU", () => {
    const decode = Schema.decodeUnknownEither(HostProtocol.SchedMessage)
    const ok = decode({ _tag: "Dispatch", cpu: 3 })
    expect(ok._tag === "Right" && ok.right instanceof HostProtocol.Dispatch && ok.right.cpu === 3).toBe(true)
    expect(decode({ _tag: "Dispatch", cpu: -1 })._tag).toBe("Left")
  })
})
