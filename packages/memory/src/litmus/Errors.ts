/** Parse errors of litmus tests: the error users see, and the failure the parser throws inside. */
import { Schema } from "effect"

/** A test that does not parse: where, and what was expected. */
export class LitmusParseError extends Schema.TaggedError<LitmusParseError>()("LitmusParseError", {
  file: Schema.String,
  line: Schema.Number,
  expected: Schema.String,
  found: Schema.String
}) {
  override get message(): string {
    return `${this.file}:${this.line}: expected ${this.expected}, found ${this.found}`
  }
}

/** @internal a parse failure, thrown inside the parser and turned into a `LitmusParseError`. */
export class Failure {
  constructor(readonly line: number, readonly expected: string, readonly found: string) {}
}

/** @internal */
export const fail = (line: number, expected: string, found: string): never => {
  throw new Failure(line, expected, found)
}

/** @internal how a found token is shown in errors */
export const show = (s: string): string => (s.length === 0 ? "end of line" : JSON.stringify(s.length > 40 ? s.slice(0, 40) + "…" : s))
