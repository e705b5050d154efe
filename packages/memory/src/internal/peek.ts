/**
 * Reads a TRef's committed value outside a transaction. Safe only under the simulation kernel,
 * which runs one actor at a time and checks invariants between steps, when no transaction is
 * in flight. Reaches into effect's TRef representation (`versioned.value`); a test holds it to
 * `STM.commit(TRef.get)` so an effect upgrade that changes it fails loudly.
 */
import type { TRef } from "effect"

export const peek = <A>(ref: TRef.TRef<A>): A => (ref as unknown as { versioned: { value: A } }).versioned.value
