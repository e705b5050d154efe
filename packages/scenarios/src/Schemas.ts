/** Schema pieces the scenario file and the workloads share. */
import { Schema } from "effect"

/** An integer in [min, max]. */
export const Count = (min: number, max: number) => Schema.Int.pipe(Schema.greaterThanOrEqualTo(min), Schema.lessThanOrEqualTo(max))
/** A share in percent. */
export const Percent = Count(0, 100)
