/**
 * What a bug switch is, for every mechanism's `Variants.ts`: the defect it reintroduces (with the
 * spec section and the kernel commit that fixed it), the invariant the spec says it breaks, and
 * the variant settings it needs (a defect of the PV flush needs a PV flush); and what a variant
 * setting is.
 */
import type { Schema } from "effect"

/** One bug switch. */
export interface Switch {
  /** The defect, with the spec section (and fix) that describes it. */
  readonly spec: string
  /** The invariant it is found as (absent when the model finds none: see `clean`). */
  readonly breaks?: string
  /**
   * Why the faithful model finds no violation with this switch alone, where the spec expected
   * one; the mechanism's `cleanCases` measure it (a test explores and finds nothing).
   */
  readonly clean?: string
  /** Variant settings it needs: key to the values that let the defect run. */
  readonly needs: Readonly<Record<string, ReadonlyArray<string>>>
  /** What the switch does besides (shown in `--help` and the README). */
  readonly note?: string
  /**
   * A mutant, not a historical bug: a defect made up so that an invariant no historical bug
   * breaks is shown to fail (its checker is wired). Named `M.*`.
   */
  readonly mutant?: true
}

/**
 * A variant setting (a knob) of a mechanism or of the host: the values it takes, as a Schema
 * literal, and its default — the merged kernel, or the hardware and host of today. Each
 * mechanism's `Variants.ts` exports its knobs as `variant`; `Variants.ts` at the package root
 * makes the scenario file's `variant` struct from every mechanism's.
 */
export interface Knob<L extends string = string> {
  readonly values: Schema.Literal<[L, ...Array<L>]>
  readonly default: NoInfer<L>
}

/** A knob (typed by its literal). */
export const knob = <L extends string>(values: Schema.Literal<[L, ...Array<L>]>, defaultValue: NoInfer<L>): Knob<L> => ({ values, default: defaultValue })
