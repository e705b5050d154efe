/**
 * The host's and the guest's configuration, which every mechanism runs under (spec §10.1 Costs
 * and Time slices): posted interrupts, pause-loop exiting, the guest's PV sched yield, and the
 * host scheduler's era. Each default is today's merged kernel on hardware that has the feature,
 * except where a published comparison needs the older setting (say so when you compare).
 */
import { Schema } from "effect"
import { knob } from "../vcpu/Switch.js"

/** `kvm_intel.enable_apicv`: posted interrupts deliver a guest IPI to a running target without a VM exit. */
export const Apicv = Schema.Literal("on", "off")
/** `kvm_intel.ple_gap` (0 disables): a guest spinning on PAUSE takes a pause-loop exit and KVM yields to another vCPU of its VM. */
export const Ple = Schema.Literal("on", "off")
/** KVM_FEATURE_PV_SCHED_YIELD (v5.3, §6 N6): the guest yields to a preempted target of its call-function IPI. */
export const PvSchedYield = Schema.Literal("on", "off")
/**
 * The host scheduler: `eevdf` (v6.6+, a fixed base slice) or `cfs` (before: the slice is the
 * scheduling latency shared among the runnable tasks, at least the minimum granularity).
 */
export const SchedPolicy = Schema.Literal("eevdf", "cfs")

/** The host's and the guest's settings, under every mechanism. */
export const variant = {
  /** Posted interrupts (APICv): off by default, so a guest IPI to a running vCPU takes it out of guest mode. */
  apicv: knob(Apicv, "off"),
  /** Pause-loop exiting with `kvm_vcpu_on_spin`'s directed yield (KVM's default: on). */
  ple: knob(Ple, "on"),
  /** The guest's KVM_HC_SCHED_YIELD after a call-function IPI to a preempted vCPU (off: thread 1's era, before v5.3). */
  pvSchedYield: knob(PvSchedYield, "off"),
  /** The host scheduler's slice policy (eevdf: today's; cfs: §6 N1's era). */
  sched: knob(SchedPolicy, "eevdf")
}
