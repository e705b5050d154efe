/**
 * `replay`: follow recorded decisions, failing loudly at the first one that does not fit; or,
 * as a guide (for shrinking), take each recorded choice when it is runnable and otherwise the
 * actor that ran last, or the lowest id.
 */
import type { Pickable, Picker } from "./Picker.js"

/** Thrown when a replay does not follow its token. */
export class ReplayDivergence extends Error {
  readonly _tag = "ReplayDivergence"
}

export class ReplayPicker implements Picker {
  private i = 0
  constructor(private readonly decisions: ReadonlyArray<number>) {}
  pick<A extends Pickable>(runnable: ReadonlyArray<A>, step: number): A {
    const want = this.decisions[this.i++]
    if (want === undefined) {
      throw new ReplayDivergence(`replay diverged at step ${step}: the token has no decision left`)
    }
    const found = runnable.find((a) => a.id === want)
    if (found === undefined) {
      throw new ReplayDivergence(
        `replay diverged at step ${step}: the token chooses actor ${want}, runnable are [${runnable.map((a) => a.id).join(", ")}]`
      )
    }
    return found
  }
  remaining(): number {
    return this.decisions.length - this.i
  }
}

/** A guide, for shrinking: recorded choices where they fit, else keep running the last actor. */
export class GuidePicker implements Picker {
  private i = 0
  constructor(private readonly decisions: ReadonlyArray<number>) {}
  pick<A extends Pickable>(runnable: ReadonlyArray<A>, _step: number, last: number): A {
    const want = this.decisions[this.i++]
    if (want !== undefined && want >= 0) {
      const found = runnable.find((a) => a.id === want)
      if (found !== undefined) return found
    }
    return runnable.find((a) => a.id === last) ?? runnable[0]!
  }
}
