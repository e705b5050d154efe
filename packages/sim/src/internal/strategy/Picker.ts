/**
 * The interface every strategy implements: pick one of the runnable actors (sorted by id). A
 * picker sees ids only, never arrival order, so traces do not depend on the engine.
 */

/** What a picker needs of an actor. */
export interface Pickable {
  readonly id: number
}

/**
 * Chooses the next actor among `runnable` (at least two, sorted by id) at scheduling step
 * `step`; `last` is the id of the actor that ran the step before (or -1).
 */
export interface Picker {
  pick<A extends Pickable>(runnable: ReadonlyArray<A>, step: number, last: number): A
}
