/**
 * What a bug switch is, for every mechanism's `Variants.ts`: the defect it reintroduces (with the
 * spec section and the kernel commit that fixed it), the invariant the spec says it breaks, and
 * the variant settings it needs (a defect of the PV flush needs a PV flush).
 */

/** One bug switch. */
export interface Switch {
  /** The defect, with the spec section (and fix) that describes it. */
  readonly spec: string
  /** The invariant it is found as. */
  readonly breaks: string
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
