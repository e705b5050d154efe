/**
 * Instructions in herd's spelling and AT&T operand order (see `Litmus.ts` for the list): operands,
 * and one instruction cell of a test's program.
 */
import { fail, show } from "./Errors.js"
import type { Alu, Instr, Source } from "./Syntax.js"

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

/** One instruction cell split up: the lock prefix, the mnemonic (and it without its size suffix), the operands. */
interface Cell {
  readonly text: string
  readonly line: number
  readonly locked: boolean
  readonly mnemonic: string
  readonly base: string
  readonly ops: ReadonlyArray<Operand>
}

/** Fails unless the instruction has exactly `n` operands. */
const arity = (c: Cell, n: number): void => {
  if (c.ops.length !== n) fail(c.line, `${n} operand${n === 1 ? "" : "s"} for ${c.mnemonic}`, `${c.ops.length}`)
}

/** A source operand: an immediate or a register, never memory. */
const src = (c: Cell, o: Operand): Source => (o.kind === "mem" ? fail(c.line, "an immediate or register source", "a memory operand") : o)

/** Fails when an instruction that cannot take a lock prefix has one. */
const notLocked = (c: Cell): void => {
  if (c.locked) fail(c.line, `an instruction that takes a lock prefix (not ${c.mnemonic})`, "lock")
}

/** `mfence`, and `lfence`/`sfence` (no-ops under TSO). */
const parseFence = (c: Cell): Instr => {
  notLocked(c)
  arity(c, 0)
  return c.mnemonic === "mfence" ? { op: "mfence" } : { op: "nop", text: c.mnemonic }
}

/** `mov`: a store to a location, a load from one, or a register move. */
const parseMov = (c: Cell): Instr => {
  notLocked(c)
  arity(c, 2)
  const [a, b] = [c.ops[0]!, c.ops[1]!]
  if (b.kind === "mem") return { op: "store", loc: b.loc, src: src(c, a) }
  if (b.kind === "reg" && a.kind === "mem") return { op: "load", reg: b.reg, loc: a.loc }
  if (b.kind === "reg") return { op: "mov", reg: b.reg, src: src(c, a) }
  return fail(c.line, "a register or memory destination", "an immediate")
}

/** `xchg` between a register and a location, either way round (implicitly locked). */
const parseXchg = (c: Cell): Instr => {
  arity(c, 2)
  const [a, b] = [c.ops[0]!, c.ops[1]!]
  if (a.kind === "reg" && b.kind === "mem") return { op: "xchg", reg: a.reg, loc: b.loc }
  if (a.kind === "mem" && b.kind === "reg") return { op: "xchg", reg: b.reg, loc: a.loc }
  return fail(c.line, "xchg between a register and a location", show(c.text))
}

/** `lock cmpxchg` between a location and a register, either way round. */
const parseCmpxchg = (c: Cell): Instr => {
  arity(c, 2)
  if (!c.locked) fail(c.line, "lock cmpxchg (without lock it is not atomic, and not supported)", "cmpxchg")
  const [a, b] = [c.ops[0]!, c.ops[1]!]
  if (a.kind === "mem" && b.kind === "reg") return { op: "cmpxchg", reg: b.reg, loc: a.loc }
  if (a.kind === "reg" && b.kind === "mem") return { op: "cmpxchg", reg: a.reg, loc: b.loc }
  return fail(c.line, "cmpxchg between a location and a register", show(c.text))
}

/** `lock xadd %reg,(location)`. */
const parseXadd = (c: Cell): Instr => {
  arity(c, 2)
  if (!c.locked) fail(c.line, "lock xadd (without lock it is not atomic, and not supported)", "xadd")
  const [a, b] = [c.ops[0]!, c.ops[1]!]
  if (a.kind === "reg" && b.kind === "mem") return { op: "xadd", reg: a.reg, loc: b.loc }
  return fail(c.line, "xadd %reg,(location)", show(c.text))
}

/** `inc`/`dec` of a location (locked or not) or of a register: add or subtract 1. */
const parseIncDec = (c: Cell): Instr => {
  arity(c, 1)
  const o = c.ops[0]!
  const alu: Alu = c.base === "inc" ? "add" : "sub"
  const one: Source = { kind: "imm", value: 1 }
  if (o.kind === "mem") return c.locked ? { op: "locked", alu, loc: o.loc, src: one } : { op: "memalu", alu, loc: o.loc, src: one }
  if (o.kind === "reg") {
    notLocked(c)
    return { op: "alu", alu, reg: o.reg, src: one }
  }
  return fail(c.line, `a register or location for ${c.mnemonic}`, "an immediate")
}

/** Two-operand arithmetic (`add`, `sub`, `or`, `and`, `xor`) into a location (locked or not) or a register. */
const parseAlu = (c: Cell, alu: Alu): Instr => {
  arity(c, 2)
  const [a, b] = [c.ops[0]!, c.ops[1]!]
  if (b.kind === "mem") return c.locked ? { op: "locked", alu, loc: b.loc, src: src(c, a) } : { op: "memalu", alu, loc: b.loc, src: src(c, a) }
  if (b.kind === "reg") {
    notLocked(c)
    if (a.kind === "mem") return fail(c.line, "a register or immediate source for register arithmetic", "a memory operand")
    return { op: "alu", alu, reg: b.reg, src: a }
  }
  return fail(c.line, "a register or memory destination", "an immediate")
}

/** Splits a cell into its lock prefix, mnemonic and operands. */
const splitCell = (cell: string, line: number): Cell => {
  const m = /^(lock\s+)?([a-z]+)\s*(.*)$/.exec(cell.trim())
  if (m === null) return fail(line, "an instruction", show(cell))
  const mnemonic = m[2]!
  return {
    text: cell,
    line,
    locked: m[1] !== undefined,
    mnemonic,
    base: mnemonic.replace(/[qlwb]$/, ""),
    ops: m[3]!.trim() === "" ? [] : splitOperands(m[3]!).map((o) => parseOperand(o, line))
  }
}

/** Parses one instruction cell. */
export const parseInstr = (cell: string, line: number): Instr => {
  const c = splitCell(cell, line)
  switch (c.mnemonic) {
    case "mfence":
    case "lfence":
    case "sfence":
      return parseFence(c)
  }
  switch (c.base) {
    case "mov":
      return parseMov(c)
    case "xchg":
      return parseXchg(c)
    case "cmpxchg":
      return parseCmpxchg(c)
    case "xadd":
      return parseXadd(c)
    case "inc":
    case "dec":
      return parseIncDec(c)
  }
  const alu = ALU[c.base]
  if (alu !== undefined) return parseAlu(c, alu)
  return fail(
    line,
    "an instruction (mov, mfence, lfence, sfence, xchg, lock add/sub/or/and/xor/inc/dec/xadd/cmpxchg, add/sub/or/and/xor/inc/dec)",
    show(c.mnemonic)
  )
}

/** The locations an instruction touches. */
export const instrLocs = (i: Instr): Array<string> => ("loc" in i ? [i.loc] : [])
