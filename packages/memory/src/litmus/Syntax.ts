/**
 * The abstract syntax of herd7 `X86_64` litmus tests: operands, instructions, final-state
 * conditions and a test; and the ALU the engines share.
 */
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
