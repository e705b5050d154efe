/**
 * A guest IPI costs one round trip (spec §6 N5, §10.1): the sender's ICR write and the delivery,
 * once per target, with no VM exit and entry of the target charged on top; with posted
 * interrupts (apicv=on) a running target takes it without leaving guest mode at all.
 */
import { describe, expect, it } from "@effect/vitest"
import { Costs, Lapic, Protocol, Sched, Thread, Variants, Vcpu, Vm } from "@kvmlab/kvm"
import { Run, Sim } from "@kvmlab/sim"

/** vcpu0 sends one call-function IPI to vcpu1, which runs guest code until it takes it. */
const oneIpi = (apicv: "on" | "off") =>
  function*() {
    const costs = Costs.defaults
    const host = yield* Vm.makeHost({ pcpus: 2, costs })
    const vm = Vm.makeVm(host, 2, { variant: { ...Variants.defaultVariant, apicv }, bugs: new Set() })
    const [v0, v1] = vm.vcpus as [Vm.Vm["vcpus"][number], Vm.Vm["vcpus"][number]]
    let sentAt = -1
    let takenAt = -1
    const guest: Vcpu.Guest = {
      *step(v) {
        if (v === v0) {
          // Wait until the target is in guest mode, then send.
          if (sentAt < 0 && v1.pcpu.guest === v1.apic) {
            sentAt = vm.kernel.now
            yield* Lapic.kvm_apic_send_ipi(vm, v0, v1, Lapic.CALL_FUNCTION_VECTOR)
          } else yield* Sim.point(costs.guestAccessNs)
          return takenAt >= 0 ? Protocol.ExitReason.Hlt : undefined
        }
        if (Lapic.ack(v, Lapic.CALL_FUNCTION_VECTOR)) {
          takenAt = vm.kernel.now
          return Protocol.ExitReason.Hlt
        }
        yield* Sim.point(costs.guestAccessNs)
        return undefined
      },
      *handleExit(v, reason) {
        if (reason === Protocol.ExitReason.Hlt) Vcpu.kvm_emulate_halt(vm, v)
      }
    }
    const actors = []
    for (const v of vm.vcpus) {
      actors.push(yield* Sim.spawn(v.name, function*() {
        v.hw = yield* host.memory.attach(v.name)
        v.cpu = v.vcpu_id
        v.pcpu = host.pcpus[v.vcpu_id]!
        return yield* Vcpu.vcpu_run(vm, v, guest, Sched.alone)
      }))
    }
    while (takenAt < 0) yield* Sim.point(costs.guestAccessNs)
    const t = yield* Vm.hostThread(host, "teardown", 2)
    for (const v of vm.vcpus) yield* Thread.signal_wake_up(vm, v, t)
    for (const a of actors) yield* Sim.join(a)
    return { elapsed: takenAt - sentAt, taken: vm.stats }
  }

describe.each(["fast", "effect"] as const)("a guest IPI on the %s engine", (engine) => {
  const { ipiSendNs, ipiDeliveryNs, vmExitNs, vmEntryNs } = Costs.defaults
  it.each(["off", "on"] as const)("apicv=%s: one round trip, the target's exit and entry not charged again", (apicv) => {
    const r = Run.runSync(oneIpi(apicv), { seed: 1, engine, strategy: { _tag: "timed" } })
    expect(r.violation).toBeUndefined()
    const out = r.exit?._tag === "Success" ? r.exit.value : undefined
    expect(out).toBeDefined()
    expect(out!.elapsed).toBeGreaterThanOrEqual(ipiSendNs + ipiDeliveryNs)
    // Charging the target's exit, its entry or the send a second time would add at least this.
    expect(out!.elapsed).toBeLessThan(ipiSendNs + ipiDeliveryNs + Math.min(vmExitNs, vmEntryNs, ipiSendNs))
    if (apicv === "on") expect(out!.taken.posted_interrupts_taken_in_guest).toBe(1)
    else expect(out!.taken.exits_ipi).toBeGreaterThanOrEqual(1)
  })
})
