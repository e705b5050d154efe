/**
 * Litmus tests in herd7's `X86_64` dialect: the abstract syntax, a parser with errors that name
 * the line and what was expected, final-state conditions (`exists`, `~exists`, `forall` over
 * registers `0:rax` and locations `x`/`[x]`, with `/\`, `\/`, `not`, `~`, `=>`), and the herd
 * notation for reporting states.
 *
 * Instructions (AT&T operand order, herd's spelling):
 * - `mov{,q,l} $i|%r,(x)` store; `mov (x),%r` load; `mov $i|%r,%r` register move;
 * - `mfence`; `lfence`/`sfence` (no effect on ordinary write-back memory under TSO);
 * - `xchg{,q,l} %r,(x)` (either order): implicitly locked;
 * - `lock add|sub|or|and|xor $i|%r,(x)`, `lock inc|dec (x)`, `lock xadd %r,(x)`,
 *   `lock cmpxchg (x),%r` (herd's order; also `%r,(x)`): compare with `%rax`, store `%r` on
 *   success, load the old value into `%rax` on failure;
 * - the same arithmetic without `lock` on memory: a load then a store, not atomic;
 * - `add|sub|or|and|xor $i|%r,%r`, `inc|dec %r` on registers.
 */
import { Schema } from "effect"

/** A source operand of a store or an arithmetic instruction. */
export type Source = { readonly kind: "imm"; readonly value: number } | { readonly kind: "reg"; readonly reg: string }

/** Arithmetic kinds. */
export type Alu = "add" | "sub" | "or" | "and" | "xor"

/** What an arithmetic instruction computes (bitwise ops on 64-bit values, through BigInt). */
export const applyAlu = (alu: Alu, x: number, y: number): number => {
  switch (alu) {
    case "add":
      return x + y
    case "sub":
      return x - y
    case "or":
      return Number(BigInt(x) | BigInt(y))
    case "and":
      return Number(BigInt(x) & BigInt(y))
    case "xor":
      return Number(BigInt(x) ^ BigInt(y))
  }
}

/** One instruction of a litmus thread. */
export type Instr =
  | { readonly op: "load"; readonly reg: string; readonly loc: string }
  | { readonly op: "store"; readonly loc: string; readonly src: Source }
  | { readonly op: "mov"; readonly reg: string; readonly src: Source }
  | { readonly op: "alu"; readonly alu: Alu; readonly reg: string; readonly src: Source }
  | { readonly op: "mfence" }
  | { readonly op: "nop"; readonly text: string }
  | { readonly op: "xchg"; readonly reg: string; readonly loc: string }
  | { readonly op: "locked"; readonly alu: Alu; readonly loc: string; readonly src: Source }
  | { readonly op: "xadd"; readonly reg: string; readonly loc: string }
  | { readonly op: "cmpxchg"; readonly reg: string; readonly loc: string }
  | { readonly op: "memalu"; readonly alu: Alu; readonly loc: string; readonly src: Source }

/** A variable of a final state: a register of a thread, or a location. */
export type Var = { readonly kind: "reg"; readonly thread: number; readonly reg: string } | { readonly kind: "loc"; readonly loc: string }

/** A proposition over a final state. */
export type Prop =
  | { readonly k: "eq"; readonly v: Var; readonly value: number }
  | { readonly k: "and"; readonly l: Prop; readonly r: Prop }
  | { readonly k: "or"; readonly l: Prop; readonly r: Prop }
  | { readonly k: "imp"; readonly l: Prop; readonly r: Prop }
  | { readonly k: "not"; readonly p: Prop }
  | { readonly k: "const"; readonly value: boolean }

/** The final condition. */
export interface Condition {
  readonly quantifier: "exists" | "~exists" | "forall"
  readonly prop: Prop
}

/** A parsed test. */
export interface LitmusTest {
  readonly name: string
  readonly file: string
  /** Initial values of locations (absent: 0). */
  readonly initLocs: ReadonlyMap<string, number>
  /** Initial register values, `thread:reg` to value. */
  readonly initRegs: ReadonlyMap<string, number>
  /** Every location, in order of first mention. */
  readonly locations: ReadonlyArray<string>
  readonly threads: ReadonlyArray<ReadonlyArray<Instr>>
  readonly condition: Condition
  /** Extra observed locations from a `locations [...]` line. */
  readonly observed: ReadonlyArray<Var>
}

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

class Failure {
  constructor(readonly line: number, readonly expected: string, readonly found: string) {}
}

const fail = (line: number, expected: string, found: string): never => {
  throw new Failure(line, expected, found)
}

const show = (s: string): string => (s.length === 0 ? "end of line" : JSON.stringify(s.length > 40 ? s.slice(0, 40) + "…" : s))

// -------------------------------------------------------------------------------- parsing

/** Parses one test; `file` is used in errors. */
export const parse = (text: string, file: string): LitmusTest | LitmusParseError => {
  try {
    return parseOrThrow(text, file)
  } catch (e) {
    if (e instanceof Failure) return new LitmusParseError({ file, line: e.line, expected: e.expected, found: e.found })
    throw e
  }
}

/** Replaces `(* ... *)` comments by spaces, keeping line numbers. */
const stripComments = (text: string): string => text.replace(/\(\*[\s\S]*?\*\)/g, (c) => c.replace(/[^\n]/g, " "))

const parseOrThrow = (raw: string, file: string): LitmusTest => {
  const lines = stripComments(raw).split(/\r?\n/)
  let i = 0
  const skipBlank = () => {
    while (i < lines.length && lines[i]!.trim() === "") i++
  }
  skipBlank()
  const head = (lines[i] ?? "").trim().split(/\s+/)
  if (head[0] !== "X86_64" && head[0] !== "X86") fail(i + 1, "a first line \"X86_64 <name>\"", show(lines[i]?.trim() ?? ""))
  if (head[1] === undefined) fail(i + 1, "a test name after X86_64", "end of line")
  const name = head[1]!
  i++
  // Metadata lines until the initial-state block.
  while (i < lines.length && !lines[i]!.trimStart().startsWith("{")) i++
  if (i >= lines.length) fail(i, "an initial-state block \"{ ... }\"", "end of file")
  const initStartLine = i + 1
  let initText = ""
  for (;;) {
    if (i >= lines.length) fail(initStartLine, "\"}\" closing the initial-state block", "end of file")
    const l = lines[i]!
    const close = l.indexOf("}")
    initText += " " + (close >= 0 ? l.slice(0, close) : l)
    i++
    if (close >= 0) break
  }
  const initLocs = new Map<string, number>()
  const initRegs = new Map<string, number>()
  const locations: Array<string> = []
  const noteLoc = (loc: string) => {
    if (!locations.includes(loc)) locations.push(loc)
  }
  for (const item of initText.replace(/^\s*\{/, "").split(";")) {
    const t = item.trim()
    if (t === "") continue
    const m = /^(?:(?:u?int(?:8|16|32|64)?_t|int|long|uint|unsigned)\s+)?(\d+:)?([A-Za-z_][\w]*)\s*(?:=\s*(-?(?:0x[0-9a-fA-F]+|\d+)))?$/.exec(t)
    if (m === null) fail(initStartLine, "an initial value like \"x=1\", \"0:rax=0\" or \"uint64_t x\"", show(t))
    const value = m![3] === undefined ? 0 : Number(m![3])
    if (m![1] !== undefined) initRegs.set(`${m![1].slice(0, -1)}:${m![2]}`, value)
    else {
      initLocs.set(m![2]!, value)
      noteLoc(m![2]!)
    }
  }
  skipBlank()
  // The thread header "P0 | P1 | ... ;"
  const headerLine = i + 1
  const header = splitRow(lines[i] ?? "")
  if (header.length === 0 || header.some((h, t) => h !== `P${t}`)) {
    fail(headerLine, "a thread header \"P0 | P1 | ... ;\"", show((lines[i] ?? "").trim()))
  }
  const nThreads = header.length
  const threads: Array<Array<Instr>> = Array.from({ length: nThreads }, () => [])
  i++
  for (; i < lines.length; i++) {
    const l = lines[i]!.trim()
    if (l === "") continue
    if (/^(exists|~\s*exists|forall|locations|filter)\b/.test(l) || !l.includes("|") && !l.endsWith(";")) break
    const cells = splitRow(l)
    if (cells.length > nThreads) fail(i + 1, `at most ${nThreads} instruction columns`, `${cells.length}`)
    cells.forEach((cell, t) => {
      if (cell === "") return
      const instr = parseInstr(cell, i + 1)
      for (const loc of instrLocs(instr)) noteLoc(loc)
      threads[t]!.push(instr)
    })
  }
  // Optional "locations [x; 0:rax;]", then the condition (possibly over several lines).
  const observed: Array<Var> = []
  let rest = lines.slice(i).join("\n")
  const restLine = i + 1
  const locs = /^\s*locations\s*\[([^\]]*)\]/.exec(rest)
  if (locs) {
    for (const v of locs[1]!.split(";").map((s) => s.trim()).filter((s) => s !== "")) {
      observed.push(parseVarText(v, restLine))
    }
    rest = rest.slice(locs[0].length)
  }
  if (/^\s*filter\b/.test(rest)) fail(restLine, "a condition (filter is not supported)", "filter")
  const condition = parseCondition(rest, restLine)
  for (const v of [...varsOf(condition.prop), ...observed]) if (v.kind === "loc") noteLoc(v.loc)
  return { name, file, initLocs, initRegs, locations, threads, condition, observed }
}

/** Splits "a | b | c ;" into trimmed cells. */
const splitRow = (line: string): Array<string> => {
  const t = line.trim().replace(/;\s*$/, "")
  return t === "" ? [] : t.split("|").map((c) => c.trim())
}

const REG = /^%([a-z][a-z0-9]*)$/
const MEM = /^\(\s*([A-Za-z_]\w*)\s*\)$/
const IMM = /^\$(-?(?:0x[0-9a-fA-F]+|\d+))$/

type Operand = { kind: "imm"; value: number } | { kind: "reg"; reg: string } | { kind: "mem"; loc: string }

const parseOperand = (s: string, line: number): Operand => {
  let m = IMM.exec(s)
  if (m) return { kind: "imm", value: Number(m[1]) }
  m = REG.exec(s)
  if (m) return { kind: "reg", reg: m[1]! }
  m = MEM.exec(s)
  if (m) return { kind: "mem", loc: m[1]! }
  return fail(line, "an operand: $imm, %reg or (location)", show(s))
}

const splitOperands = (s: string): Array<string> => {
  const out: Array<string> = []
  let depth = 0
  let cur = ""
  for (const ch of s) {
    if (ch === "(") depth++
    if (ch === ")") depth--
    if (ch === "," && depth === 0) {
      out.push(cur.trim())
      cur = ""
    } else cur += ch
  }
  if (cur.trim() !== "") out.push(cur.trim())
  return out
}

const ALU: Record<string, Alu> = { add: "add", sub: "sub", or: "or", and: "and", xor: "xor" }

/** Parses one instruction cell. */
export const parseInstr = (cell: string, line: number): Instr => {
  const m = /^(lock\s+)?([a-z]+)\s*(.*)$/.exec(cell.trim())
  if (m === null) return fail(line, "an instruction", show(cell))
  const locked = m[1] !== undefined
  const mnemonic = m[2]!
  const ops = m[3]!.trim() === "" ? [] : splitOperands(m[3]!).map((o) => parseOperand(o, line))
  const base = mnemonic.replace(/[qlwb]$/, "")
  const arity = (n: number) => {
    if (ops.length !== n) fail(line, `${n} operand${n === 1 ? "" : "s"} for ${mnemonic}`, `${ops.length}`)
  }
  const src = (o: Operand): Source => (o.kind === "mem" ? fail(line, "an immediate or register source", "a memory operand") : o)
  const notLocked = () => {
    if (locked) fail(line, `an instruction that takes a lock prefix (not ${mnemonic})`, "lock")
  }
  switch (mnemonic) {
    case "mfence":
      notLocked()
      arity(0)
      return { op: "mfence" }
    case "lfence":
    case "sfence":
      notLocked()
      arity(0)
      return { op: "nop", text: mnemonic }
  }
  switch (base) {
    case "mov": {
      notLocked()
      arity(2)
      const [a, b] = [ops[0]!, ops[1]!]
      if (b.kind === "mem") return { op: "store", loc: b.loc, src: src(a) }
      if (b.kind === "reg" && a.kind === "mem") return { op: "load", reg: b.reg, loc: a.loc }
      if (b.kind === "reg") return { op: "mov", reg: b.reg, src: src(a) }
      return fail(line, "a register or memory destination", "an immediate")
    }
    case "xchg": {
      arity(2)
      const [a, b] = [ops[0]!, ops[1]!]
      if (a.kind === "reg" && b.kind === "mem") return { op: "xchg", reg: a.reg, loc: b.loc }
      if (a.kind === "mem" && b.kind === "reg") return { op: "xchg", reg: b.reg, loc: a.loc }
      return fail(line, "xchg between a register and a location", show(cell))
    }
    case "cmpxchg": {
      arity(2)
      if (!locked) fail(line, "lock cmpxchg (without lock it is not atomic, and not supported)", "cmpxchg")
      const [a, b] = [ops[0]!, ops[1]!]
      if (a.kind === "mem" && b.kind === "reg") return { op: "cmpxchg", reg: b.reg, loc: a.loc }
      if (a.kind === "reg" && b.kind === "mem") return { op: "cmpxchg", reg: a.reg, loc: b.loc }
      return fail(line, "cmpxchg between a location and a register", show(cell))
    }
    case "xadd": {
      arity(2)
      if (!locked) fail(line, "lock xadd (without lock it is not atomic, and not supported)", "xadd")
      const [a, b] = [ops[0]!, ops[1]!]
      if (a.kind === "reg" && b.kind === "mem") return { op: "xadd", reg: a.reg, loc: b.loc }
      return fail(line, "xadd %reg,(location)", show(cell))
    }
    case "inc":
    case "dec": {
      arity(1)
      const o = ops[0]!
      const alu: Alu = base === "inc" ? "add" : "sub"
      const one: Source = { kind: "imm", value: 1 }
      if (o.kind === "mem") return locked ? { op: "locked", alu, loc: o.loc, src: one } : { op: "memalu", alu, loc: o.loc, src: one }
      if (o.kind === "reg") {
        notLocked()
        return { op: "alu", alu, reg: o.reg, src: one }
      }
      return fail(line, `a register or location for ${mnemonic}`, "an immediate")
    }
  }
  const alu = ALU[base]
  if (alu !== undefined) {
    arity(2)
    const [a, b] = [ops[0]!, ops[1]!]
    if (b.kind === "mem") return locked ? { op: "locked", alu, loc: b.loc, src: src(a) } : { op: "memalu", alu, loc: b.loc, src: src(a) }
    if (b.kind === "reg") {
      notLocked()
      if (a.kind === "mem") return fail(line, "a register or immediate source for register arithmetic", "a memory operand")
      return { op: "alu", alu, reg: b.reg, src: a }
    }
    return fail(line, "a register or memory destination", "an immediate")
  }
  return fail(
    line,
    "an instruction (mov, mfence, lfence, sfence, xchg, lock add/sub/or/and/xor/inc/dec/xadd/cmpxchg, add/sub/or/and/xor/inc/dec)",
    show(mnemonic)
  )
}

const instrLocs = (i: Instr): Array<string> => ("loc" in i ? [i.loc] : [])

// -------------------------------------------------------------------------------- conditions

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

const parseVarText = (s: string, line: number): Var => {
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
