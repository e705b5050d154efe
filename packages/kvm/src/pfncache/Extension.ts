/**
 * Mechanism E's part in the vCPU thread, and its setup: KVM_REQ_CLOCK_UPDATE runs
 * `kvm_guest_time_update`, which writes the kvmclock pvti through the vCPU's `pv_time` cache
 * (mechanism D computes the pvti; without it the shadow is published as it is); `attach` gives the
 * VM its MMU-notifier state, registers it with the VMM process's MM, and gives each vCPU its
 * (inactive) `pv_time` cache.
 */
import type { Mm } from "../host/Mm.js"
import type { Memslots } from "../memslots/State.js"
import { KVM_REQ_CLOCK_UPDATE } from "../requests/Protocol.js"
import { extension } from "../vcpu/Extension.js"
import type { Vm } from "../Vm.js"
import { notifier } from "./KvmMain.js"
import { kvm_gpc_init } from "./PfnCache.js"
import { KvmMmuNotifier } from "./State.js"
import { pvTime } from "./X86.js"
import { kvm_guest_time_update } from "../kvmclock/X86.js"

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
