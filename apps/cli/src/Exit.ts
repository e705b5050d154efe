/**
 * Exit codes and user-facing errors of the kvmlab command: 0 when all is well, 1 when a
 * violation (or a failing condition the user asked about) was found, 2 for bad input. A bad
 * input error names the field or file and the problem.
 */
import { Schema } from "effect"

export const OK = 0
export const FOUND = 1
export const BAD_INPUT = 2

/** Bad input from the user: which field or file, and what is wrong with it. */
export class BadInput extends Schema.TaggedError<BadInput>()("BadInput", {
  field: Schema.String,
  message: Schema.String
}) {}
