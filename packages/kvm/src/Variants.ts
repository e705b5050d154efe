/**
 * Every mechanism's variants and bug switches together (each mechanism's own are in its folder's
 * `Variants.ts`), with the spec's names. A bug switch reintroduces one defect; every switch off is
 * the merged kernel.
 */
import { Schema } from "effect"
import * as Host from "./host/Variants.js"
import * as PvFlush from "./pvflush/Variants.js"
import * as Requests from "./requests/Variants.js"
import type { Switch } from "./vcpu/Switch.js"

/** Every bug switch: its defect, the invariant it breaks, the settings it needs. */
export const switches = { ...Requests.switches, ...PvFlush.switches } as const satisfies Record<string, Switch>

export type Bug = keyof typeof switches
/** The bug switches, each with its spec section (and the invariant it breaks). */
export const bugs: Readonly<Record<Bug, string>> = Object.fromEntries(
  Object.entries(switches).map(([name, s]) => [name, `${s.spec} (${s.breaks})`])
) as Record<Bug, string>
export const bugNames = Object.keys(switches) as ReadonlyArray<Bug>
export const BugName = Schema.Literal(...(bugNames as [Bug, ...Array<Bug>]))

export const Flush = PvFlush.Flush
export type Flush = PvFlush.Flush

/** Per-scenario variant knobs. */
export const Variant = Schema.Struct({
  /** Guest remote flush: native IPIs, the merged PV flush (§2.4-2.6), or Peter's IPI_PENDING scheme (§2.9). */
  flush: Schema.optionalWith(Flush, { default: () => "native" as const }),
  /**
   * The two smp_mb()s thread 4 removed as redundant: in kvm_flush_remote_tlbs (a4ee1ca4) and in
   * kvm_mmu_commit_zap_page (c142786c6). The merged kernel has neither ("off").
   */
  extraBarriers: Schema.optionalWith(Requests.ExtraBarriers, { default: () => "off" as const }),
  /** Posted interrupts (APICv): off by default, so a guest IPI to a running vCPU takes it out of guest mode. */
  apicv: Schema.optionalWith(Host.Apicv, { default: () => "off" as const }),
  /** Pause-loop exiting with `kvm_vcpu_on_spin`'s directed yield (KVM's default: on). */
  ple: Schema.optionalWith(Host.Ple, { default: () => "on" as const }),
  /** The guest's KVM_HC_SCHED_YIELD after a call-function IPI to a preempted vCPU (off: thread 1's era, before v5.3). */
  pvSchedYield: Schema.optionalWith(Host.PvSchedYield, { default: () => "off" as const }),
  /** The host scheduler's slice policy (eevdf: today's; cfs: §6 N1's era). */
  sched: Schema.optionalWith(Host.SchedPolicy, { default: () => "eevdf" as const })
})
export type Variant = typeof Variant.Type
export const defaultVariant: Variant = { flush: "native", extraBarriers: "off", apicv: "off", ple: "on", pvSchedYield: "off", sched: "eevdf" }

/** Variant keys and the values each accepts, for command-line parsing and messages. */
export const variantValues: Readonly<Record<keyof Variant, ReadonlyArray<string>>> = {
  flush: Flush.literals,
  extraBarriers: ["on", "off"],
  apicv: Host.Apicv.literals,
  ple: Host.Ple.literals,
  pvSchedYield: Host.PvSchedYield.literals,
  sched: Host.SchedPolicy.literals
}

/** The switches of one run. */
export interface Switches {
  readonly variant: Variant
  readonly bugs: ReadonlySet<Bug>
}

export const has = (s: Switches, bug: Bug): boolean => s.bugs.has(bug)
