/**
 * The clock master (spec §4.2, §10.3): the host side of kvmclock that is not a vCPU — the
 * timekeeping notifier and the VMM's clock ioctls — as an actor with a bounded mailbox of
 * Schema-tagged messages from the scenario's timeline or its VMM thread:
 * - `ClocksourceChanged`: `pvclock_gtod_notify`; leaving the TSC, `pvclock_gtod_update_fn` asks
 *   every vCPU for KVM_REQ_MASTERCLOCK_UPDATE (no kick, no wake): each runs its own update at its
 *   next entry, so several updaters run at once;
 * - `SetClock`: `kvm_vm_ioctl_set_clock`, inline on this thread;
 * - `TscWrite`: a host-initiated MSR_IA32_TSC write (KVM_SET_MSRS), sent to the vCPU's thread,
 *   which runs `kvm_synchronize_tsc` between two KVM_RUNs;
 * - `GuestPaused`: KVM_KVMCLOCK_CTRL, sent to the vCPU's thread like `TscWrite`;
 * - `HostClockAdjust`: the timekeeper's NTP rate or step; the notifier does nothing while the
 *   clocksource is the TSC, so the master pair is not refreshed for it (under era=2015 the old pair
 *   drifts from the host clock until the next update).
 */
import { Mailbox, type Sim } from "@kvmlab/sim"
import { KVM_REQ_MASTERCLOCK_UPDATE } from "../requests/Protocol.js"
import { kvm_make_request } from "../requests/Requests.js"
import type { HostThread } from "../Vm.js"
import type { ClockCommand } from "./Protocol.js"
import type { KvmClock } from "./State.js"
import { command } from "../vcpu/Thread.js"
import { KvmclockCtrl, SetTsc } from "../vcpu/Protocol.js"
import { kvm_vm_ioctl_set_clock } from "./X86.js"

/** `pvclock_gtod_update_fn`: KVM_REQ_MASTERCLOCK_UPDATE on every vCPU (`kvm_guest_has_master_clock` drops to 0). */
function* pvclock_gtod_update_fn(c: KvmClock, t: HostThread): Sim.Gen<void> {
  for (const v of c.vm.vcpus) yield* kvm_make_request(c.vm, KVM_REQ_MASTERCLOCK_UPDATE, v, t)
}

/** The one KVM_KVMCLOCK_CTRL command (it has no fields). */
const kvmclockCtrl = new KvmclockCtrl()

/** The vCPU a message names. */
const vcpuOf = (c: KvmClock, cmd: { readonly _tag: string; readonly vcpu: number }) => {
  const v = c.vm.vcpus[cmd.vcpu]
  if (v === undefined) throw new Error(`${cmd._tag}: vcpu ${cmd.vcpu} does not exist (the VM has ${c.vm.vcpus.length})`)
  return v
}

/** Runs one message. */
export function* handle(c: KvmClock, t: HostThread, cmd: Exclude<ClockCommand, { _tag: "Stop" }>): Sim.Gen<void> {
  const now = c.vm.kernel.now
  switch (cmd._tag) {
    case "ClocksourceChanged": {
      const was = c.time.clocksourceTsc
      c.time.clocksourceTsc = cmd.stable
      // pvclock_gtod_notify: work only when the new clocksource is not TSC-based and a guest has a master clock.
      if (was && !cmd.stable && c.next.master) yield* pvclock_gtod_update_fn(c, t) // kvm_guest_has_master_clock
      return
    }
    case "SetClock":
      return yield* kvm_vm_ioctl_set_clock(c, t, cmd.ns)
    case "TscWrite":
      // KVM_SET_MSRS is a vCPU ioctl: the vCPU's thread runs kvm_synchronize_tsc between two KVM_RUNs.
      return yield* command(c.vm, vcpuOf(c, cmd), new SetTsc({ value: cmd.value }), t)
    case "GuestPaused":
      return yield* command(c.vm, vcpuOf(c, cmd), kvmclockCtrl, t)
    case "HostClockAdjust":
      c.time.adjust(now, cmd.ratePpm, cmd.stepNs)
      return
  }
}

/** The clock master: each message from `box` until `Stop`. Returns the messages run. */
export const clock_master = (c: KvmClock, box: Mailbox.Mailbox<ClockCommand>, t: HostThread): Sim.Gen<number> =>
  Mailbox.serve(box, "Stop", (cmd) => handle(c, t, cmd))
