/**
 * The shadow MMU's invariant (spec §1.8): WALK-1, checked at each dereference by a lockless walker
 * (`walk_shadow_page_lockless_begin/_end`). It counts itself and returns undefined when it holds,
 * or the violation's message.
 */
import type { Sim } from "@kvmlab/sim"
import type { VcpuState } from "../vcpu/State.js"

export const ids = ["WALK-1"] as const

/** WALK-1: a lockless walker dereferences a shadow page that has been freed. */
export const walk1 = (k: Sim.Kernel, v: VcpuState, page: number, freed: boolean): string | undefined =>
  k.check("WALK-1", !freed) ? undefined : `${v.name}'s lockless walk dereferences shadow page ${page} after kvm_mmu_commit_zap_page freed it`
