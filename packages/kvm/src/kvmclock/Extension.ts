/**
 * Mechanism D's part in the vCPU thread, and its setup. `attach` gives the VM its clock state
 * (`kvm->arch`), each vCPU its own, and the requests a vCPU handles in `vcpu_enter_guest`:
 * KVM_REQ_MASTERCLOCK_UPDATE (`kvm_update_masterclock`, on this vCPU's thread: several vCPUs may
 * run one at once) and KVM_REQ_GLOBAL_CLOCK_UPDATE (`kvm_gen_kvmclock_update`). KVM_REQ_CLOCK_UPDATE
 * is mechanism E's registration (`pfncache/Extension.ts`), which calls this mechanism's
 * `kvm_guest_time_update`. CLK-2 is checked before every guest instruction.
 */
import { Sim } from "@kvmlab/sim"
import { KVM_REQ_CLOCK_UPDATE, KVM_REQ_GLOBAL_CLOCK_UPDATE, KVM_REQ_MASTERCLOCK_UPDATE } from "../requests/Protocol.js"
import { kvm_make_request, kvm_vcpu_kick } from "../requests/Requests.js"
import { extension } from "../vcpu/Extension.js"
import type { VcpuState } from "../vcpu/State.js"
import type { HostThread, Vm } from "../Vm.js"
import * as Inv from "./Invariants.js"
import { KVMCLOCK_UPDATE_DELAY_NS } from "./Protocol.js"
import { KvmClock, setClock, VcpuClock, vcpuClock } from "./State.js"
import type { HostTime } from "./Time.js"
import { kvm_set_guest_paused, kvm_synchronize_tsc, kvm_update_masterclock } from "./X86.js"

/** `kvmclock_update_fn`, 100 ms after it was scheduled: KVM_REQ_CLOCK_UPDATE on every vCPU, and a kick. */
function* kvmclock_update_fn(c: KvmClock, cpu: number): Sim.Gen<void> {
  const t: HostThread = { name: "kvmclock_update_work", hw: yield* c.vm.memory.attach("kvmclock_update_work"), cpu }
  yield* Sim.sleep(KVMCLOCK_UPDATE_DELAY_NS)
  c.updateWorkPending = false
  for (const v of c.vm.vcpus) {
    yield* kvm_make_request(c.vm, KVM_REQ_CLOCK_UPDATE, v, t)
    yield* kvm_vcpu_kick(c.vm, v, t)
  }
}

/**
 * `kvm_gen_kvmclock_update`: this vCPU's clock now (KVM_REQ_CLOCK_UPDATE, handled later in the
 * same pass), everyone's within `KVMCLOCK_UPDATE_DELAY` (`schedule_delayed_work`: nothing if pending).
 */
function* kvm_gen_kvmclock_update(c: KvmClock, v: VcpuState): Sim.Gen<void> {
  yield* kvm_make_request(c.vm, KVM_REQ_CLOCK_UPDATE, v, v)
  if (c.updateWorkPending) return
  c.updateWorkPending = true
  yield* Sim.spawn("kvmclock_update_work", () => kvmclock_update_fn(c, v.cpu))
}

/** CLK-2 before a guest instruction of `v`. */
const lockstep = (c: KvmClock, v: VcpuState): readonly [string, string] | undefined => {
  const bad = Inv.clk2(c.vm.kernel, c, v, vcpuClock.of(v).pairSeen, c.next.master)
  return bad === undefined ? undefined : ["CLK-2", bad]
}

/** Sets up mechanism D on `vm` (which has mechanism E's `pv_time` caches), with `time` as the host's clocks. */
export const attach = (vm: Vm, time: HostTime): KvmClock => {
  const c = new KvmClock(vm, time)
  setClock(vm, c)
  for (const v of vm.vcpus) {
    vcpuClock.set(v, new VcpuClock(vm.memory, v))
    c.published.push(new Map())
  }
  vm.attach(
    extension("kvmclock", {
      requests: [
        { req: KVM_REQ_MASTERCLOCK_UPDATE, handle: (v) => kvm_update_masterclock(c, v) },
        { req: KVM_REQ_GLOBAL_CLOCK_UPDATE, handle: (v) => kvm_gen_kvmclock_update(c, v) }
      ],
      guest_instruction: (v) => lockstep(c, v),
      vcpu_ioctl: function*(v, cmd) {
        if (cmd._tag === "SetTsc") yield* kvm_synchronize_tsc(c, v, cmd.value, true, v)
        else yield* kvm_set_guest_paused(c, v, v)
      }
    })
  )
  return c
}
