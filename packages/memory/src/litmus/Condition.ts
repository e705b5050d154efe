/**
 * Final-state conditions: `exists`, `~exists`, `forall` over registers `0:rax` and locations
 * `x`/`[x]`, with `/\`, `\/`, `not`, `~`, `=>`; their variables, evaluation and herd's notation.
 */
import { fail, show } from "./Errors.js"
import type { Condition, Prop, Var } from "./Syntax.js"

type Tok = { t: string; line: number }

const tokenize = (text: string, firstLine: number): Array<Tok> => {
  const out: Array<Tok> = []
  let line = firstLine
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    if (c === "\n") {
      line++
      i++
      continue
    }
    if (/\s/.test(c)) {
      i++
      continue
    }
    const two = text.slice(i, i + 2)
    if (two === "/\\" || two === "\\/" || two === "=>") {
      out.push({ t: two, line })
      i += 2
      continue
    }
    if ("()~=;".includes(c)) {
      out.push({ t: c, line })
      i++
      continue
    }
    const m = /^(\[[A-Za-z_]\w*\]|\d+:[A-Za-z_]\w*|-?(?:0x[0-9a-fA-F]+|\d+)|[A-Za-z_]\w*)/.exec(text.slice(i))
    if (m === null) return fail(line, "a condition", show(text.slice(i, i + 10)))
    out.push({ t: m[0], line })
    i += m[0].length
  }
  return out
}

/** A variable as written in a `locations [...]` line or a condition: `0:rax`, `x`, `[x]`. */
export const parseVarText = (s: string, line: number): Var => {
  let m = /^(\d+):([A-Za-z_]\w*)$/.exec(s)
  if (m) return { kind: "reg", thread: Number(m[1]), reg: m[2]! }
  m = /^\[([A-Za-z_]\w*)\]$/.exec(s) ?? /^([A-Za-z_]\w*)$/.exec(s)
  if (m) return { kind: "loc", loc: m[1]! }
  return fail(line, "a register \"0:rax\" or a location \"x\"/\"[x]\"", show(s))
}

/** Checks a variable a condition names, given its line and the quantifier (`exists`); fails if the test lacks it. */
export type VarCheck = (v: Var, line: number, where: string) => void

/**
 * A parse of a condition's tokens: the tokens, the position, the line to report at their end,
 * and the check of each variable (set once the quantifier is known).
 */
interface Cursor {
  readonly toks: ReadonlyArray<Tok>
  p: number
  readonly lastLine: number
  onVar: (v: Var, line: number) => void
}

/** The current token's text, or undefined at the end. */
const peek = (c: Cursor): string | undefined => c.toks[c.p]?.t

/** The current token's line (the last token's at the end). */
const here = (c: Cursor): number => c.toks[c.p]?.line ?? c.lastLine

/** Consumes token `t`, or fails. */
const expect = (c: Cursor, t: string): void => {
  if (peek(c) !== t) fail(here(c), `"${t}"`, peek(c) === undefined ? "end of file" : show(peek(c)!))
  c.p++
}

/** The leading `exists`, `forall` or `~exists`. */
const parseQuantifier = (c: Cursor): Condition["quantifier"] => {
  if (peek(c) === "exists") {
    c.p++
    return "exists"
  }
  if (peek(c) === "forall") {
    c.p++
    return "forall"
  }
  if (peek(c) === "~" && c.toks[c.p + 1]?.t === "exists") {
    c.p += 2
    return "~exists"
  }
  return fail(here(c), "a condition: exists, ~exists or forall", peek(c) === undefined ? "end of file" : show(peek(c)!))
}

// Right-associative, as herd prints them: a /\ b /\ c == a /\ (b /\ c); => binds loosest.

/** `l => r`. */
const parseImp = (c: Cursor): Prop => {
  const l = parseOr(c)
  if (peek(c) === "=>") {
    c.p++
    return { k: "imp", l, r: parseImp(c) }
  }
  return l
}

/** `l \/ r`. */
const parseOr = (c: Cursor): Prop => {
  const l = parseAnd(c)
  if (peek(c) === "\\/") {
    c.p++
    return { k: "or", l, r: parseOr(c) }
  }
  return l
}

/** `l /\ r`. */
const parseAnd = (c: Cursor): Prop => {
  const l = parseUnary(c)
  if (peek(c) === "/\\") {
    c.p++
    return { k: "and", l, r: parseAnd(c) }
  }
  return l
}

/** `not p`, `~p`, `(p)`, `true`, `false`, or an equation. */
const parseUnary = (c: Cursor): Prop => {
  const t = peek(c)
  if (t === "not" || t === "~") {
    c.p++
    return { k: "not", p: parseUnary(c) }
  }
  if (t === "(") {
    c.p++
    const inner = parseImp(c)
    expect(c, ")")
    return inner
  }
  if (t === "true" || t === "false") {
    c.p++
    return { k: "const", value: t === "true" }
  }
  if (t === undefined) return fail(here(c), "a proposition", "end of file")
  return parseEq(c, t)
}

/** `var=value`: a register or location `t` (the current token) and an integer. */
const parseEq = (c: Cursor, t: string): Prop => {
  const line = here(c)
  const v = parseVarText(t, line)
  c.onVar(v, line)
  c.p++
  expect(c, "=")
  const n = peek(c)
  if (n === undefined || !/^-?(0x[0-9a-fA-F]+|\d+)$/.test(n)) fail(here(c), "an integer value", n === undefined ? "end of file" : show(n))
  c.p++
  return { k: "eq", v, value: Number(n) }
}

/**
 * Parses `exists (...)`, `~exists (...)` or `forall (...)`; `check` sees every variable with its
 * line (by default, none is checked: a condition on its own has no test to name things in).
 */
export const parseCondition = (text: string, firstLine: number, check?: VarCheck): Condition => {
  const toks = tokenize(text, firstLine)
  const c: Cursor = { toks, p: 0, lastLine: toks.length > 0 ? toks[toks.length - 1]!.line : firstLine, onVar: () => {} }
  const quantifier = parseQuantifier(c)
  if (check !== undefined) c.onVar = (v, line) => check(v, line, quantifier)
  const prop = parseImp(c)
  if (peek(c) === ";") c.p++
  if (c.p < toks.length) fail(here(c), "the end of the condition", show(peek(c)!))
  return { quantifier, prop }
}

/** The variables a proposition mentions, in order of first mention, without repeats. */
export const varsOf = (prop: Prop): Array<Var> => {
  const out: Array<Var> = []
  const seen = new Set<string>()
  const walk = (q: Prop): void => {
    switch (q.k) {
      case "eq": {
        const key = varName(q.v)
        if (!seen.has(key)) {
          seen.add(key)
          out.push(q.v)
        }
        return
      }
      case "not":
        return walk(q.p)
      case "const":
        return
      default:
        walk(q.l)
        walk(q.r)
    }
  }
  walk(prop)
  return out
}

/** herd's name of a variable: `0:rax` or `[x]`. */
export const varName = (v: Var): string => (v.kind === "reg" ? `${v.thread}:${v.reg}` : `[${v.loc}]`)

/** Evaluates a proposition given each variable's value. */
export const evaluate = (prop: Prop, value: (v: Var) => number): boolean => {
  switch (prop.k) {
    case "eq":
      return value(prop.v) === prop.value
    case "and":
      return evaluate(prop.l, value) && evaluate(prop.r, value)
    case "or":
      return evaluate(prop.l, value) || evaluate(prop.r, value)
    case "imp":
      return !evaluate(prop.l, value) || evaluate(prop.r, value)
    case "not":
      return !evaluate(prop.p, value)
    case "const":
      return prop.value
  }
}

/** Prints a condition as herd7 does: `exists (0:rax=0 /\ [x]=1)`. */
export const formatCondition = (c: Condition): string => `${c.quantifier} (${formatProp(c.prop, 0)})`

const PREC = { imp: 1, or: 2, and: 3 } as const

const formatProp = (p: Prop, outer: number): string => {
  switch (p.k) {
    case "eq":
      return `${varName(p.v)}=${p.value}`
    case "const":
      return p.value ? "true" : "false"
    case "not":
      return `not (${formatProp(p.p, 0)})`
    default: {
      const prec = PREC[p.k]
      const op = p.k === "and" ? "/\\" : p.k === "or" ? "\\/" : "=>"
      // Right-associative: a same-operator right child needs no parentheses, a left one does.
      const s = `${formatProp(p.l, prec + 1)} ${op} ${formatProp(p.r, prec)}`
      return prec < outer ? `(${s})` : s
    }
  }
}
