/**
 * Mechanism E's part in the vCPU thread, and its setup: KVM_REQ_CLOCK_UPDATE writes the kvmclock
 * pvti through the vCPU's `pv_time` cache (the part of `kvm_guest_time_update` that uses the
 * cache); `attach` gives the VM its MMU-notifier state, registers it with the VMM process's MM,
 * and gives each vCPU its (inactive) `pv_time` cache.
 */
import type { Sim } from "@kvmlab/sim"
import type { Mm } from "../host/Mm.js"
import type { Memslots } from "../memslots/State.js"
import { KVM_REQ_CLOCK_UPDATE } from "../requests/Protocol.js"
import { extension } from "../vcpu/Extension.js"
import type { HostCpu } from "../vcpu/Sched.js"
import type { VcpuState } from "../vcpu/State.js"
import type { Vm } from "../Vm.js"
import { notifier } from "./KvmMain.js"
import { kvm_gpc_init } from "./PfnCache.js"
import { KvmMmuNotifier } from "./State.js"
import { kvm_setup_guest_pvclock, pvTime } from "./X86.js"

/** `kvm_guest_time_update`'s use of the cache: the pvti, if the guest enabled kvmclock (module-level: no generator closure per run). */
function* kvm_guest_time_update(v: VcpuState, host: HostCpu): Sim.Gen<void> {
  if ((yield* v.hw.READ_ONCE(pvTime.of(v).active)) === 1) yield* kvm_setup_guest_pvclock(v, pvTime.of(v), host)
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
