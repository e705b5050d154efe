/**
 * PCT, probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010; Shuttle's `pct.rs`):
 * each actor gets a random priority >= depth when first seen; at d-1 distinct change points
 * drawn uniformly, without replacement, from [1, k] the actor about to run drops to priority
 * d-1-i, below every initial one. The highest-priority runnable actor runs. Points count
 * scheduling decisions (a pick among two or more runnable actors), not kernel steps: a step with
 * one runnable actor decides nothing, and about a fifth of the steps are such.
 */
import type { Prng } from "../../Prng.js"
import type { Pickable, Picker } from "./Picker.js"

export class PctPicker implements Picker {
  private readonly priority: Array<number> = []
  private readonly changeAt = new Map<number, number>()
  private decisions = 0
  /** `decisions`: the expected number of scheduling decisions in a run (k). */
  constructor(private readonly prng: Prng, private readonly depth: number, decisions: number) {
    const k = Math.max(1, decisions)
    for (let i = 1; i < depth && this.changeAt.size < k; i++) {
      let at = 1 + prng.int(k)
      while (this.changeAt.has(at)) at = 1 + prng.int(k)
      this.changeAt.set(at, depth - i)
    }
  }
  private prio(a: Pickable): number {
    let p = this.priority[a.id]
    if (p === undefined) {
      p = this.depth + this.prng.int(0x40000000)
      this.priority[a.id] = p
    }
    return p
  }
  private highest<A extends Pickable>(runnable: ReadonlyArray<A>): A {
    let best = runnable[0]!
    let bestP = this.prio(best)
    for (let i = 1; i < runnable.length; i++) {
      const p = this.prio(runnable[i]!)
      if (p > bestP) {
        best = runnable[i]!
        bestP = p
      }
    }
    return best
  }
  pick<A extends Pickable>(runnable: ReadonlyArray<A>): A {
    for (const a of runnable) this.prio(a) // assign in id order, so priorities do not depend on arrival
    const low = this.changeAt.get(++this.decisions)
    if (low !== undefined) this.priority[this.highest(runnable).id] = low
    return this.highest(runnable)
  }
}
