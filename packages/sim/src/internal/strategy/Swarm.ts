/**
 * `swarm` (Groce et al., "Swarm testing", ISSTA 2012, applied to schedules): each actor draws a
 * weight in {1, 2, 4, ..., 128} when first seen, and runnable actors are chosen in proportion to
 * their weights. Different runs favour different actors (a lazy store-buffer drain in one, an
 * eager one in the next), which reaches skewed schedules that uniform choice almost never does.
 */
import type { Prng } from "../../Prng.js"
import type { Pickable, Picker } from "./Picker.js"

export class SwarmPicker implements Picker {
  private readonly weight: Array<number> = []
  constructor(private readonly prng: Prng) {}
  pick<A extends Pickable>(runnable: ReadonlyArray<A>): A {
    let total = 0
    for (const a of runnable) {
      let w = this.weight[a.id]
      if (w === undefined) {
        w = 1 << this.prng.int(8)
        this.weight[a.id] = w
      }
      total += w
    }
    let x = this.prng.int(total)
    for (const a of runnable) {
      x -= this.weight[a.id]!
      if (x < 0) return a
    }
    return runnable[runnable.length - 1]!
  }
}
