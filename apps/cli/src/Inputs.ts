/**
 * Command-line options that name themselves when a value is wrong. @effect/cli's own messages
 * ("'abc' is not a integer", "Expected one of the following cases: fast, effect") do not say
 * which option they are about, so each option here is text that the library decodes with a
 * schema (`Options.withSchema`) whose one message starts with the option: `--runs: must be a
 * positive integer, at most 1000000000, got "abc"`. Every bound is stated where the option is
 * declared.
 */
import { Options } from "@effect/cli"
import { ParseResult, Schema } from "effect"

/** A user's value inside a message: quoted, control characters escaped, and cut after 60 characters. */
export const quote = (value: string): string => JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value)

/** Decodes text to a value or fails with one message naming the option. */
const textTo = <A>(option: string, parse: (text: string) => A | undefined, problem: (text: string) => string) =>
  Schema.transformOrFail(Schema.String, Schema.Any as Schema.Schema<A>, {
    strict: true,
    decode: (text, _, ast) => {
      const a = parse(text)
      return a !== undefined ? ParseResult.succeed(a) : ParseResult.fail(new ParseResult.Type(ast, text, `--${option}: ${problem(text)}`))
    },
    encode: (a) => ParseResult.succeed(String(a))
  }).annotations({ message: (issue) => ({ message: issueMessage(issue), override: true }) })

/** The message of the innermost issue: the one `textTo` wrote. */
const issueMessage = (issue: ParseResult.ParseIssue): string =>
  issue._tag === "Transformation" || issue._tag === "Refinement" ? issueMessage(issue.issue)
  : issue._tag === "Type" && issue.message !== undefined ? issue.message
  : ParseResult.TreeFormatter.formatIssueSync(issue)

/** What an integer in [min, max] must be, in words. */
const range = (min: number, max: number): string =>
  min === 1 ? `must be a positive integer, at most ${max}` : min === 0 ? `must be a non-negative integer, at most ${max}` : `must be an integer from ${min} to ${max}`

/**
 * An integer option from `min` to `max`, written in decimal digits (no fraction, exponent or
 * hexadecimal: `1e3` and `0x10` are refused rather than guessed at).
 */
export const integer = (name: string, min: number, max: number): Options.Options<number> =>
  Options.text(name).pipe(
    Options.withPseudoName("integer"),
    Options.withSchema(textTo(name, (text) => {
      const t = text.trim()
      const n = /^[+-]?\d{1,16}$/.test(t) ? Number(t) : Number.NaN
      return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined
    }, (text) => `${range(min, max)}, got ${quote(text)}`))
  )

/** An option that takes one of `values`; `noun` names what it chooses, for the error ("unknown engine"). */
export const choice = <const A extends string>(name: string, values: ReadonlyArray<A>, noun: string): Options.Options<A> =>
  Options.text(name).pipe(
    Options.withPseudoName(values.join("|")),
    Options.withSchema(textTo(name, (text) => values.find((v) => v === text.trim()), (text) => `unknown ${noun} ${quote(text)}; expected ${values.join(", ")}`))
  )
