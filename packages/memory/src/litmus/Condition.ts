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

/** Parses `exists (...)`, `~exists (...)` or `forall (...)`. */
export const parseCondition = (text: string, firstLine: number): Condition => {
  const toks = tokenize(text, firstLine)
  let p = 0
  const lastLine = toks.length > 0 ? toks[toks.length - 1]!.line : firstLine
  const peek = () => toks[p]?.t
  const here = () => toks[p]?.line ?? lastLine
  const expect = (t: string) => {
    if (peek() !== t) fail(here(), `"${t}"`, peek() === undefined ? "end of file" : show(peek()!))
    p++
  }
  let quantifier: Condition["quantifier"]
  if (peek() === "exists") {
    quantifier = "exists"
    p++
  } else if (peek() === "forall") {
    quantifier = "forall"
    p++
  } else if (peek() === "~" && toks[p + 1]?.t === "exists") {
    quantifier = "~exists"
    p += 2
  } else {
    return fail(here(), "a condition: exists, ~exists or forall", peek() === undefined ? "end of file" : show(peek()!))
  }
  // Right-associative, as herd prints them: a /\ b /\ c == a /\ (b /\ c); => binds loosest.
  const imp = (): Prop => {
    const l = or()
    if (peek() === "=>") {
      p++
      return { k: "imp", l, r: imp() }
    }
    return l
  }
  const or = (): Prop => {
    const l = and()
    if (peek() === "\\/") {
      p++
      return { k: "or", l, r: or() }
    }
    return l
  }
  const and = (): Prop => {
    const l = unary()
    if (peek() === "/\\") {
      p++
      return { k: "and", l, r: and() }
    }
    return l
  }
  const unary = (): Prop => {
    const t = peek()
    if (t === "not" || t === "~") {
      p++
      return { k: "not", p: unary() }
    }
    if (t === "(") {
      p++
      const inner = imp()
      expect(")")
      return inner
    }
    if (t === "true" || t === "false") {
      p++
      return { k: "const", value: t === "true" }
    }
    if (t === undefined) return fail(here(), "a proposition", "end of file")
    const line = here()
    const v = parseVarText(t, line)
    p++
    expect("=")
    const n = peek()
    if (n === undefined || !/^-?(0x[0-9a-fA-F]+|\d+)$/.test(n)) fail(here(), "an integer value", n === undefined ? "end of file" : show(n))
    p++
    return { k: "eq", v, value: Number(n) }
  }
  const prop = imp()
  if (peek() === ";") p++
  if (p < toks.length) fail(here(), "the end of the condition", show(peek()!))
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
