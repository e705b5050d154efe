/** `random`: uniform choice among the runnable actors. */
import type { Prng } from "../../Prng.js"
import type { Pickable, Picker } from "./Picker.js"

export class RandomPicker implements Picker {
  constructor(private readonly prng: Prng) {}
  pick<A extends Pickable>(runnable: ReadonlyArray<A>): A {
    return runnable[this.prng.int(runnable.length)]!
  }
}
