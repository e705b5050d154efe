/**
 * Mechanism E's part in the vCPU thread, and its setup: KVM_REQ_CLOCK_UPDATE runs
 * `kvm_guest_time_update`, which writes the kvmclock pvti through the vCPU's `pv_time` cache
 * (mechanism D computes the pvti; without it the shadow is published as it is); `attach` gives the
 * VM its MMU-notifier state, registers it with the VMM process's MM, and gives each vCPU its
 * (inactive) `pv_time` cache.
 */
import type { Mm } from "../host/Mm.js"
import type { Memslots } from "../memslots/State.js"
import { KVM_REQ_CLOCK_UPDATE, KVM_REQ_STEAL_UPDATE } from "../requests/Protocol.js"
import { kvm_make_request } from "../requests/Requests.js"
import type { HostCpu } from "../vcpu/Sched.js"
import type { VcpuState } from "../vcpu/State.js"
import type { Sim } from "@kvmlab/sim"
import { extension } from "../vcpu/Extension.js"
import type { Vm } from "../Vm.js"
import { notifier } from "./KvmMain.js"
import { kvm_gpc_init } from "./PfnCache.js"
import { KvmMmuNotifier } from "./State.js"
import { kvm_xen_update_runstate_guest, pvTime, RUNSTATE_runnable, RUNSTATE_running, xenRunstate } from "./X86.js"
import { kvm_guest_time_update } from "../kvmclock/X86.js"

/** `record_steal_time` with Xen: `kvm_xen_runstate_set_running` (module-level generators: none made per run). */
function* set_running(v: VcpuState, host: HostCpu): Sim.Gen<void> {
  if ((yield* v.hw.READ_ONCE(xenRunstate.of(v).active)) === 1) yield* kvm_xen_update_runstate_guest(v, RUNSTATE_running, host)
}

/** `kvm_arch_vcpu_put` of a preempted vCPU: `kvm_xen_runstate_set_preempted`. */
function* set_preempted(v: VcpuState): Sim.Gen<void> {
  if (v.preempted && (yield* v.hw.READ_ONCE(xenRunstate.of(v).active)) === 1) yield* kvm_xen_update_runstate_guest(v, RUNSTATE_runnable)
}

/** `kvm_arch_vcpu_load`: KVM_REQ_STEAL_UPDATE. */
function* request_steal_update(vm: Vm, v: VcpuState): Sim.Gen<void> {
  yield* kvm_make_request(vm, KVM_REQ_STEAL_UPDATE, v, v)
}

/** Sets up mechanism E on `vm` (which has memslots, mechanism C) with `mm` as the VMM's MM. */
export const attach = (vm: Vm, ms: Memslots, mm: Mm): KvmMmuNotifier => {
  const kvm = new KvmMmuNotifier(vm, ms, mm)
  mm.notifiers.push(notifier(kvm))
  for (const v of vm.vcpus) pvTime.set(v, kvm_gpc_init(kvm, `${v.name}.pv_time`))
  vm.attach(
    extension("pfncache", {
      requests: [
        { req: KVM_REQ_CLOCK_UPDATE, handle: (v, host) => kvm_guest_time_update(v, host) }
      ]
    })
  )
  return kvm
}

/**
 * Xen runstate areas on `vm` (mechanism E attached): each vCPU's `runstate_cache`, written at
 * every preemption (`kvm_arch_vcpu_put` of a preempted vCPU: atomic, trylock and skip) and at the
 * next entry after a load (KVM_REQ_STEAL_UPDATE: `record_steal_time` -> `RUNSTATE_running`). The
 * VMM activates each cache (KVM_XEN_VCPU_ATTR_TYPE_RUNSTATE_ADDR).
 */
export const attachRunstate = (vm: Vm, kvm: KvmMmuNotifier): void => {
  for (const v of vm.vcpus) xenRunstate.set(v, kvm_gpc_init(kvm, `${v.name}.xen.runstate_cache`))
  vm.attach(
    extension("xen-runstate", {
      requests: [{ req: KVM_REQ_STEAL_UPDATE, handle: (v, host) => set_running(v, host) }],
      vcpu_put: (v) => set_preempted(v),
      vcpu_load: (v) => request_steal_update(vm, v)
    })
  )
}
