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

/** The locations an instruction touches. */
export const instrLocs = (i: Instr): Array<string> => ("loc" in i ? [i.loc] : [])
