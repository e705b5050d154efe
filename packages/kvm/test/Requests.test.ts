import { describe, expect, it } from "@effect/vitest"
import { Costs, Protocol, Requests, Sched, Thread, Variants, Vcpu, Vm } from "@kvmlab/kvm"
import { Run, Sim } from "@kvmlab/sim"

describe("request constants", () => {
  it("match include/linux/kvm_host.h and arch/x86/include/asm/kvm_host.h", () => {
    expect(Protocol.KVM_REQ_TLB_FLUSH).toBe(0 | (1 << 9) | (1 << 8))
    expect(Protocol.KVM_REQ_UNBLOCK).toBe(2)
    expect(Protocol.requestBit(Protocol.KVM_REQ_EVENT)).toBe(14) // KVM_ARCH_REQ(6)
    expect(Protocol.requestBit(Protocol.KVM_REQ_STEAL_UPDATE)).toBe(16) // KVM_ARCH_REQ(8)
    expect(Protocol.KVM_REQ_OUTSIDE_GUEST_MODE & Protocol.KVM_REQUEST_MASK).toBe(0)
  })

  it("every cost has a source", () => {
    for (const key of Object.keys(Costs.defaults)) expect(Costs.sources[key as keyof Costs.Costs]).toMatch(/^(spec §|assumption|kernel[/ ])/)
  })
})

/**
 * One vCPU that halts at once, and a host thread that makes `req` to it. The vCPU wakes only
 * for requests without NO_WAKEUP; the teardown signal then ends its KVM_RUN.
 */
const haltedVcpu = (req: number) =>
  function*() {
    const host = yield* Vm.makeHost({ pcpus: 1, costs: Costs.defaults })
    const vm = Vm.makeVm(host, 1, { variant: Variants.defaultVariant, bugs: new Set() })
    const v = vm.vcpus[0]!
    let entries = 0
    const guest: Vcpu.Guest = {
      *step() {
        yield* Sim.point()
        entries++
        return Protocol.ExitReason.Hlt
      },
      *handleExit(v) {
        Vcpu.kvm_emulate_halt(vm, v)
      }
    }
    const actor = yield* Sim.spawn("vcpu0", function*() {
      v.hw = yield* host.memory.attach("vcpu0")
      v.cpu = 0
      v.pcpu = host.pcpus[0]!
      return yield* Vcpu.vcpu_run(vm, v, guest, Sched.alone)
    })
    const t = yield* Vm.hostThread(host, "requester", 1)
    // Wait until the vCPU has halted and blocked.
    while (!(v.ghost.blocking && vm.stats.blocks === 1)) yield* Sim.point()
    const before = entries
    yield* Requests.kvm_make_vcpus_request_mask(vm, req, [v], t)
    for (let i = 0; i < 50; i++) yield* Sim.point()
    const woke = entries > before || !v.ghost.blocking
    yield* Thread.signal_wake_up(vm, v, t)
    yield* Sim.join(actor)
    return { woke, wakeups: vm.stats.halt_wakeup ?? 0 }
  }

describe.each(["fast", "effect"] as const)("WAKE-1 on the %s engine", (engine) => {
  it("a request without NO_WAKEUP wakes a blocked vCPU; KVM_REQ_TLB_FLUSH does not", () => {
    const event = Run.runSync(haltedVcpu(Protocol.KVM_REQ_EVENT), { seed: 3, engine })
    expect(event.violation).toBeUndefined()
    expect(event.exit?._tag === "Success" && event.exit.value.woke).toBe(true)
    const flush = Run.runSync(haltedVcpu(Protocol.KVM_REQ_TLB_FLUSH), { seed: 3, engine })
    expect(flush.violation).toBeUndefined()
    expect(flush.exit?._tag === "Success" && flush.exit.value).toEqual({ woke: false, wakeups: 1 }) // only the teardown kick
  })
})
