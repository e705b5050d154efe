/**
 * The exhaustive litmus engine: a depth-first search over every state of the TSO (or SC)
 * abstract machine running a test, with a visited set, collecting every final state (all
 * threads done, all buffers drained). Thread-local instructions (register moves and arithmetic)
 * are taken eagerly: they commute with every other transition, so this prunes states without
 * losing outcomes.
 *
 * The search is bounded: the states grow as the product of the threads' positions and buffers,
 * so a test of 10 threads would take gigabytes and minutes. It stops with `StateBoundExceeded`
 * once it has explored more than `maxStates` states (default `MAX_STATES_DEFAULT`).
 */
import { Schema } from "effect"
import { type Alu, applyAlu, type Instr, type LitmusTest, type Source, type Var } from "./Litmus.js"
import { type LitmusOutcome, OutcomeBuilder } from "./Outcome.js"
import type { Model } from "./Tso.js"

// Micro-operations over register and location indices.
const enum K {
  Load,
  StoreImm,
  StoreReg,
  MovImm,
  MovReg,
  AluImm,
  AluReg,
  Fence,
  Nop,
  Xchg,
  LockedImm,
  LockedReg,
  Xadd,
  Cmpxchg
}

interface Micro {
  readonly k: K
  readonly a: number // location index, or destination register
  readonly b: number // register, immediate or source register
  readonly alu: Alu
}


const isLocal = (k: K) => k === K.MovImm || k === K.MovReg || k === K.AluImm || k === K.AluReg || k === K.Nop

/** A test compiled to indices. */
export interface Compiled {
  readonly test: LitmusTest
  readonly locIndex: ReadonlyMap<string, number>
  /** Per thread: register name to index. Index 0 is a hidden scratch register. */
  readonly regIndex: ReadonlyArray<ReadonlyMap<string, number>>
  readonly code: ReadonlyArray<ReadonlyArray<Micro>>
  readonly initMem: ReadonlyArray<number>
  readonly initRegs: ReadonlyArray<ReadonlyArray<number>>
}

/** The index of register `name` in a thread's register map, allocating the next one on first mention. */
const regIn = (regs: Map<string, number>, name: string): number => {
  let i = regs.get(name)
  if (i === undefined) {
    i = regs.size
    regs.set(name, i)
  }
  return i
}

/** Appends the micro-op of a source operand: `kImm` with the immediate, or `kReg` with the source register. */
const pushSource = (out: Array<Micro>, regs: Map<string, number>, s: Source, kImm: K, kReg: K, a: number, alu: Alu = "add") =>
  out.push(s.kind === "imm" ? { k: kImm, a, b: s.value, alu } : { k: kReg, a, b: regIn(regs, s.reg), alu })

/** Appends the micro-ops of one instruction of a thread (`regs` is the thread's register map). */
const compileInstr = (out: Array<Micro>, i: Instr, locIndex: ReadonlyMap<string, number>, regs: Map<string, number>): void => {
  switch (i.op) {
    case "load":
      out.push({ k: K.Load, a: locIndex.get(i.loc)!, b: regIn(regs, i.reg), alu: "add" })
      break
    case "store":
      pushSource(out, regs, i.src, K.StoreImm, K.StoreReg, locIndex.get(i.loc)!)
      break
    case "mov":
      pushSource(out, regs, i.src, K.MovImm, K.MovReg, regIn(regs, i.reg))
      break
    case "alu":
      pushSource(out, regs, i.src, K.AluImm, K.AluReg, regIn(regs, i.reg), i.alu)
      break
    case "mfence":
      out.push({ k: K.Fence, a: 0, b: 0, alu: "add" })
      break
    case "nop":
      out.push({ k: K.Nop, a: 0, b: 0, alu: "add" })
      break
    case "xchg":
      out.push({ k: K.Xchg, a: locIndex.get(i.loc)!, b: regIn(regs, i.reg), alu: "add" })
      break
    case "locked":
      pushSource(out, regs, i.src, K.LockedImm, K.LockedReg, locIndex.get(i.loc)!, i.alu)
      break
    case "xadd":
      out.push({ k: K.Xadd, a: locIndex.get(i.loc)!, b: regIn(regs, i.reg), alu: "add" })
      break
    case "cmpxchg":
      regIn(regs, "rax")
      out.push({ k: K.Cmpxchg, a: locIndex.get(i.loc)!, b: regIn(regs, i.reg), alu: "add" })
      break
    case "memalu": // not locked: a load into scratch, the arithmetic, a store
      out.push({ k: K.Load, a: locIndex.get(i.loc)!, b: 0, alu: "add" })
      pushSource(out, regs, i.src, K.AluImm, K.AluReg, 0, i.alu)
      out.push({ k: K.StoreReg, a: locIndex.get(i.loc)!, b: 0, alu: "add" })
      break
  }
}

/** The initial registers of each thread, by register index (0 unless the test's init sets them). */
const initRegsOf = (test: LitmusTest, regIndex: ReadonlyArray<ReadonlyMap<string, number>>): Array<Array<number>> =>
  regIndex.map((m, t) => {
    const r = new Array<number>(m.size).fill(0)
    for (const [name, i] of m) r[i] = test.initRegs.get(`${t}:${name}`) ?? 0
    return r
  })

/** Compiles a parsed test for the engines. */
export const compile = (test: LitmusTest): Compiled => {
  const locIndex = new Map(test.locations.map((l, i) => [l, i] as const))
  const regIndex = test.threads.map(() => new Map<string, number>([["%scratch", 0]]))
  for (const key of test.initRegs.keys()) {
    const [t, name] = key.split(":")
    if (Number(t) < test.threads.length) regIn(regIndex[Number(t)]!, name!)
  }
  const code = test.threads.map((instrs, t) => {
    const out: Array<Micro> = []
    for (const i of instrs as ReadonlyArray<Instr>) compileInstr(out, i, locIndex, regIndex[t]!)
    return out
  })
  for (const v of test.observed) if (v.kind === "reg" && v.thread < test.threads.length) regIn(regIndex[v.thread]!, v.reg)
  const initMem = test.locations.map((l) => test.initLocs.get(l) ?? 0)
  const initRegs = initRegsOf(test, regIndex)
  return { test, locIndex, regIndex, code, initMem, initRegs }
}

/**
 * A machine state is one flat array, so a successor is one `slice()` and a visited-set key is
 * one `String.fromCharCode` over it:
 * `[pc_0..pc_T-1 | regs of thread 0 | ... | mem | len_0..len_T-1 | buffer 0 (addr, value)* | ...]`.
 * Thread t's buffer has room for as many entries as t has stores.
 */
interface Layout {
  readonly T: number
  readonly regs: ReadonlyArray<number> // offset of thread t's registers
  readonly mem: number
  readonly len: number // offset of the buffer lengths
  readonly buf: ReadonlyArray<number> // offset of thread t's buffer
  readonly size: number
}

const layoutOf = (c: Compiled): Layout => {
  const T = c.code.length
  let o = T
  const regs = c.initRegs.map((r) => {
    const at = o
    o += r.length
    return at
  })
  const mem = o
  o += c.initMem.length
  const len = o
  o += T
  const buf = c.code.map((code) => {
    const at = o
    o += 2 * code.filter((m) => m.k === K.StoreImm || m.k === K.StoreReg).length
    return at
  })
  return { T, regs, mem, len, buf, size: o }
}

// Values are offset into the UTF-16 range for keys; anything outside falls back to join().
const KEY_OFFSET = 0x4000
const keyBuf: Array<number> = []
const keyOf = (s: Array<number>): string => {
  keyBuf.length = s.length
  for (let i = 0; i < s.length; i++) {
    const v = s[i]!
    if (!(v >= -KEY_OFFSET && v < 0xd800 - KEY_OFFSET && Number.isInteger(v))) return "j" + s.join(",")
    keyBuf[i] = v + KEY_OFFSET
  }
  return String.fromCharCode.apply(null, keyBuf) // one flat string: cheap to hash
}

/** Whether a micro-op needs an empty store buffer: mfence and the locked instructions. */
const isLocked = (k: K) => k === K.Fence || k === K.Xchg || k === K.LockedImm || k === K.LockedReg || k === K.Xadd || k === K.Cmpxchg

/** The value thread t loads from location `a` of state n. */
const loadValue = (L: Layout, n: Array<number>, t: number, lenAt: number, a: number): number => {
  // Store-buffer forwarding: the newest own buffered store to this address, else memory.
  let v = n[L.mem + a]!
  for (let i = n[lenAt]! - 1; i >= 0; i--) {
    const at = L.buf[t]! + 2 * i
    if (n[at] === a) {
      v = n[at + 1]!
      break
    }
  }
  return v
}

/** Thread t stores `value` to location `a` of state n: to memory under SC, into its store buffer under TSO. */
const storeValue = (L: Layout, model: Model, n: Array<number>, t: number, lenAt: number, a: number, value: number): void => {
  if (model === "sc") n[L.mem + a] = value
  else {
    const at = L.buf[t]! + 2 * n[lenAt]!
    n[at] = a
    n[at + 1] = value
    n[lenAt]!++
  }
}

/** Executes a locked read-modify-write (xchg, lock alu, xadd, cmpxchg) of thread t on state n; r is t's register offset. */
const atomic = (c: Compiled, L: Layout, n: Array<number>, t: number, r: number, op: Micro): void => {
  const m = L.mem
  switch (op.k) {
    case K.Xchg: {
      const old = n[m + op.a]!
      n[m + op.a] = n[r + op.b]!
      n[r + op.b] = old
      break
    }
    case K.LockedImm:
      n[m + op.a] = applyAlu(op.alu, n[m + op.a]!, op.b)
      break
    case K.LockedReg:
      n[m + op.a] = applyAlu(op.alu, n[m + op.a]!, n[r + op.b]!)
      break
    case K.Xadd: {
      const old = n[m + op.a]!
      n[m + op.a] = old + n[r + op.b]!
      n[r + op.b] = old
      break
    }
    case K.Cmpxchg: {
      const rax = r + c.regIndex[t]!.get("rax")!
      const old = n[m + op.a]!
      if (old === n[rax]) n[m + op.a] = n[r + op.b]!
      else n[rax] = old
      break
    }
  }
}

/** Executes thread t's next micro-op on a copy of s, or returns undefined if it is not enabled. */
const step = (c: Compiled, L: Layout, model: Model, s: Array<number>, t: number): Array<number> | undefined => {
  const op = c.code[t]![s[t]!]!
  const lenAt = L.len + t
  if (isLocked(op.k) && s[lenAt] !== 0) return undefined // mfence and locked instructions need an empty buffer
  const n = s.slice()
  const r = L.regs[t]!
  switch (op.k) {
    case K.Load:
      n[r + op.b] = loadValue(L, n, t, lenAt, op.a)
      break
    case K.StoreImm:
    case K.StoreReg:
      storeValue(L, model, n, t, lenAt, op.a, op.k === K.StoreImm ? op.b : n[r + op.b]!)
      break
    case K.MovImm:
      n[r + op.a] = op.b
      break
    case K.MovReg:
      n[r + op.a] = n[r + op.b]!
      break
    case K.AluImm:
      n[r + op.a] = applyAlu(op.alu, n[r + op.a]!, op.b)
      break
    case K.AluReg:
      n[r + op.a] = applyAlu(op.alu, n[r + op.a]!, n[r + op.b]!)
      break
    case K.Fence:
    case K.Nop:
      break
    case K.Xchg:
    case K.LockedImm:
    case K.LockedReg:
    case K.Xadd:
    case K.Cmpxchg:
      atomic(c, L, n, t, r, op)
      break
  }
  n[t]!++
  return n
}

/** Moves thread t's oldest buffered store to memory. */
const drain = (L: Layout, s: Array<number>, t: number): Array<number> => {
  const n = s.slice()
  const b = L.buf[t]!
  const len = n[L.len + t]!
  n[L.mem + n[b]!] = n[b + 1]!
  for (let i = b; i < b + 2 * (len - 1); i++) n[i] = n[i + 2]!
  n[b + 2 * (len - 1)] = 0
  n[b + 2 * (len - 1) + 1] = 0
  n[L.len + t] = len - 1
  return n
}

/** Reads an observed variable of a final state. */
export const readVar = (c: Compiled, regs: ReadonlyArray<ReadonlyArray<number>>, mem: ReadonlyArray<number>) => (v: Var): number => {
  if (v.kind === "loc") {
    const i = c.locIndex.get(v.loc)
    return i === undefined ? 0 : mem[i]!
  }
  const i = c.regIndex[v.thread]?.get(v.reg)
  return i === undefined ? c.test.initRegs.get(`${v.thread}:${v.reg}`) ?? 0 : regs[v.thread]![i]!
}

const push = (visited: Set<string>, stack: Array<Array<number>>, n: Array<number>): void => {
  const k = keyOf(n)
  if (!visited.has(k)) {
    visited.add(k)
    stack.push(n)
  }
}

/** Statistics of one exhaustive search. */
export interface SearchStats {
  readonly statesVisited: number
}

/**
 * The default bound on the states one search explores. Measured: the largest test of the herd7
 * oracle suite (2,595 tests; BASIC_4_THREAD_EXTRA/WW+RR+WW+RR+mfence+mfences+mfence+mfences)
 * explores 3,035 states under TSO and 1,867 under SC; the largest of examples/litmus
 * (RFI-forward) 62. Reaching a million states took 3.5 to 7 s and 300 to 530 MB on a 2-core
 * development machine (generated tests of 4 to 10 threads, 2 to 12 instructions each), so a test
 * beyond the bound ends within seconds, with a message, where it used to grow to gigabytes.
 */
export const MAX_STATES_DEFAULT = 1_000_000

/** The largest bound one search accepts: a JavaScript `Set` holds at most 2^24 (16,777,216) entries. */
export const MAX_STATES_LIMIT = 16_000_000

/** A search that explored more than its bound of states before it was done: which test, and how large it is. */
export class StateBoundExceeded extends Schema.TaggedError<StateBoundExceeded>()("StateBoundExceeded", {
  file: Schema.String,
  test: Schema.String,
  maxStates: Schema.Number,
  /** States explored when the search stopped: a little more than `maxStates`. */
  statesVisited: Schema.Number,
  threads: Schema.Number,
  instructions: Schema.Number
}) {
  override get message(): string {
    return `${this.file}: more than ${this.maxStates} states explored (bound ${this.maxStates}): ` +
      `test ${this.test} has ${this.threads} threads and ${this.instructions} instructions`
  }
}

/** Options of one search. */
export interface SearchOptions {
  /** Stop once more than this many states were explored (default `MAX_STATES_DEFAULT`, at most `MAX_STATES_LIMIT`). */
  readonly maxStates?: number
}

/**
 * Enumerates every reachable final state of `test` under `model` (default bound), for tests
 * known to be small, such as the oracle suite and the examples: a test beyond the bound is a
 * defect here. A test from a user goes through `search`.
 */
export const check = (test: LitmusTest, model: Model): LitmusOutcome & SearchStats => {
  const r = search(test, model)
  if (r instanceof StateBoundExceeded) throw r
  return r
}

/**
 * Enumerates every reachable final state of `test` under `model`, or stops with
 * `StateBoundExceeded` once more than `options.maxStates` states were explored.
 */
export const search = (test: LitmusTest, model: Model, options: SearchOptions = {}): (LitmusOutcome & SearchStats) | StateBoundExceeded => {
  const chunks = searchInChunks(test, model, options)
  for (;;) {
    const r = chunks.next()
    if (r.done === true) return r.value
  }
}

/** Expansions between two pauses of `searchInChunks`: a few milliseconds. */
const CHUNK = 4096

/**
 * `search`, pausing every few thousand expansions: each `next()` goes on until the next pause,
 * which yields the states explored so far, or the end, which returns the result. A caller that
 * must stay responsive (an app that handles Ctrl-C, a progress display) runs the search this
 * way; the result is the same.
 */
export function* searchInChunks(test: LitmusTest, model: Model, options: SearchOptions = {}): Generator<number, (LitmusOutcome & SearchStats) | StateBoundExceeded, void> {
  const maxStates = options.maxStates ?? MAX_STATES_DEFAULT
  if (!Number.isSafeInteger(maxStates) || maxStates < 1 || maxStates > MAX_STATES_LIMIT) {
    throw new RangeError(`maxStates must be an integer in [1, ${MAX_STATES_LIMIT}], got ${maxStates}`)
  }
  const c = compile(test)
  const L = layoutOf(c)
  const builder = new OutcomeBuilder(test)
  const T = L.T
  const init = new Array<number>(L.size).fill(0)
  c.initRegs.forEach((regs, t) => regs.forEach((v, i) => (init[L.regs[t]! + i] = v)))
  c.initMem.forEach((v, i) => (init[L.mem + i] = v))
  const visited = new Set<string>([keyOf(init)])
  const stack: Array<Array<number>> = [init]
  const regsOf = (s: Array<number>) => c.initRegs.map((r, t) => s.slice(L.regs[t]!, L.regs[t]! + r.length))
  let expansions = 0
  while (stack.length > 0) {
    if (++expansions % CHUNK === 0) yield visited.size
    // One expansion adds at most 2 states per thread, so the set never holds much more than the bound.
    if (visited.size > maxStates) {
      return new StateBoundExceeded({
        file: test.file,
        test: test.name,
        maxStates,
        statesVisited: visited.size,
        threads: T,
        instructions: test.threads.reduce((n, code) => n + code.length, 0)
      })
    }
    const s = stack.pop()!
    // Take a thread-local step eagerly when there is one: it commutes with everything.
    let local = -1
    for (let t = 0; t < T; t++) {
      const op = c.code[t]![s[t]!]
      if (op !== undefined && isLocal(op.k)) {
        local = t
        break
      }
    }
    if (local >= 0) {
      push(visited, stack, step(c, L, model, s, local)!)
      continue
    }
    let final = true
    for (let t = 0; t < T; t++) {
      if (s[t]! < c.code[t]!.length) {
        final = false
        const n = step(c, L, model, s, t)
        if (n !== undefined) push(visited, stack, n)
      }
      if (s[L.len + t]! > 0) {
        final = false
        push(visited, stack, drain(L, s, t))
      }
    }
    if (final) builder.add(readVar(c, regsOf(s), s.slice(L.mem, L.mem + c.initMem.length)))
  }
  return { ...builder.build(), statesVisited: visited.size }
}
