/** Parse errors of litmus tests: the error users see, and the failure the parser throws inside. */
import { Schema } from "effect"

/**
 * A test that does not parse, or names what it does not have: the line, and what is wrong
 * (`expected ..., found ...` for syntax; a sentence such as `exists: thread 5 does not exist
 * (the test has threads 0-1)` for a name).
 */
export class LitmusParseError extends Schema.TaggedError<LitmusParseError>()("LitmusParseError", {
  file: Schema.String,
  line: Schema.Number,
  problem: Schema.String
}) {
  override get message(): string {
    return `${this.file}:${this.line}: ${this.problem}`
  }
}

/** @internal a parse failure, thrown inside the parser and turned into a `LitmusParseError`. */
export class Failure {
  constructor(readonly line: number, readonly problem: string) {}
}

/** @internal a syntax error: what was expected, and what was found instead */
export const fail = (line: number, expected: string, found: string): never => {
  throw new Failure(line, `expected ${expected}, found ${found}`)
}

/** @internal an error that is not about syntax, stated as a sentence */
export const refuse = (line: number, problem: string): never => {
  throw new Failure(line, problem)
}

/** @internal how a found token is shown in errors */
export const show = (s: string): string => (s.length === 0 ? "end of line" : JSON.stringify(s.length > 40 ? s.slice(0, 40) + "…" : s))
