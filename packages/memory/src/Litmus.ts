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
 *
 * The condition and a `locations` line may name only the test's threads, registers its code or
 * init mentions, and locations its code or init mentions (`litmus/Scope.ts`): anything else is an
 * error at its line, not a variable that silently reads 0.
 */
import { parseCondition, parseVarText } from "./litmus/Condition.js"
import { Failure, fail, LitmusParseError, refuse, show } from "./litmus/Errors.js"
import { instrLocs, parseInstr } from "./litmus/Instr.js"
import { checkThread, checkVar, type Scope, scopeOf } from "./litmus/Scope.js"
import type { Instr, LitmusTest, Var } from "./litmus/Syntax.js"

export * from "./litmus/Syntax.js"
export { LitmusParseError } from "./litmus/Errors.js"
export { parseInstr } from "./litmus/Instr.js"
export { evaluate, formatCondition, parseCondition, varName, varsOf } from "./litmus/Condition.js"

/** Parses one test; `file` is used in errors. */
export const parse = (text: string, file: string): LitmusTest | LitmusParseError => {
  try {
    return parseOrThrow(text, file)
  } catch (e) {
    if (e instanceof Failure) return new LitmusParseError({ file, line: e.line, problem: e.problem })
    throw e
  }
}

/** Replaces `(* ... *)` comments by spaces, keeping line numbers. */
const stripComments = (text: string): string => text.replace(/\(\*[\s\S]*?\*\)/g, (c) => c.replace(/[^\n]/g, " "))

/** The lines of a test and the parser's place in them. */
class Lines {
  i = 0
  constructor(readonly lines: ReadonlyArray<string>) {}
  get line(): string {
    return this.lines[this.i] ?? ""
  }
  get done(): boolean {
    return this.i >= this.lines.length
  }
  skipBlank(): void {
    while (!this.done && this.line.trim() === "") this.i++
  }
}

/** Where the test's locations are noted, in order of first mention. */
const noter = (locations: Array<string>) => (loc: string) => {
  if (!locations.includes(loc)) locations.push(loc)
}

const parseOrThrow = (raw: string, file: string): LitmusTest => {
  const at = new Lines(stripComments(raw).split(/\r?\n/))
  const name = parseHead(at)
  const locations: Array<string> = []
  const noteLoc = noter(locations)
  const { initLocs, initRegs, initRegThreads } = parseInit(at, noteLoc)
  const threads = parseProgram(at, noteLoc)
  const scope = scopeOf(threads, initRegs.keys(), locations)
  for (const { thread, line } of initRegThreads) checkThread(scope, thread, line, "init")
  const { condition, observed } = parseTail(at, scope)
  return { name, file, initLocs, initRegs, locations, threads, condition, observed }
}

/** The first line, `X86_64 <name>`; then past the metadata lines to the initial-state block. */
const parseHead = (at: Lines): string => {
  at.skipBlank()
  // An empty file (or one of blank lines and comments) ends on its last line.
  if (at.done) fail(Math.max(1, at.i), "a first line \"X86_64 <name>\"", "end of file")
  const head = at.line.trim().split(/\s+/)
  if (head[0] !== "X86_64" && head[0] !== "X86") fail(at.i + 1, "a first line \"X86_64 <name>\"", show(at.line.trim()))
  if (head[1] === undefined) fail(at.i + 1, "a test name after X86_64", "end of line")
  at.i++
  while (!at.done && !at.line.trimStart().startsWith("{")) at.i++
  if (at.done) fail(at.i, "an initial-state block \"{ ... }\"", "end of file")
  return head[1]!
}

/** The number of line breaks in `s`. */
const newlines = (s: string): number => s.split("\n").length - 1

/** The `;`-separated items of `text` (which starts at `firstLine`), trimmed, each with its line; empty items dropped. */
const items = (text: string, firstLine: number): Array<{ readonly text: string; readonly line: number }> => {
  const out: Array<{ text: string; line: number }> = []
  let line = firstLine
  for (const item of text.split(";")) {
    const t = item.trim()
    if (t !== "") out.push({ text: t, line: line + newlines(item.slice(0, item.length - item.trimStart().length)) })
    line += newlines(item)
  }
  return out
}

/** The initial-state block `{ x=1; 0:rax=0; uint64_t y; }`, possibly over several lines. */
const parseInit = (at: Lines, noteLoc: (loc: string) => void) => {
  const startLine = at.i + 1
  const text: Array<string> = []
  for (;;) {
    if (at.done) fail(startLine, "\"}\" closing the initial-state block", "end of file")
    const close = at.line.indexOf("}")
    text.push(close >= 0 ? at.line.slice(0, close) : at.line)
    at.i++
    if (close >= 0) break
  }
  const initLocs = new Map<string, number>()
  const initRegs = new Map<string, number>()
  /** The thread of each initial register, and its line: checked once the threads are known. */
  const initRegThreads: Array<{ readonly thread: number; readonly line: number }> = []
  for (const { text: t, line } of items(text.join("\n").replace(/^\s*\{/, ""), startLine)) {
    const m = /^(?:(?:u?int(?:8|16|32|64)?_t|int|long|uint|unsigned)\s+)?(\d+:)?([A-Za-z_][\w]*)\s*(?:=\s*(-?(?:0x[0-9a-fA-F]+|\d+)))?$/.exec(t)
    if (m === null) fail(line, "an initial value like \"x=1\", \"0:rax=0\" or \"uint64_t x\"", show(t))
    const value = m![3] === undefined ? 0 : Number(m![3])
    if (m![1] !== undefined) {
      const thread = Number(m![1].slice(0, -1))
      initRegs.set(`${thread}:${m![2]}`, value)
      initRegThreads.push({ thread, line })
    } else {
      initLocs.set(m![2]!, value)
      noteLoc(m![2]!)
    }
  }
  return { initLocs, initRegs, initRegThreads }
}

/** The thread header `P0 | P1 | ... ;` and the instruction rows under it. */
/**
 * The size of test this parser takes: a litmus test is a handful of threads of a few
 * instructions (the 2,595 tests of herd7's x86 suite have at most 4 threads and 7 instructions
 * per thread); anything far beyond is refused at its line rather than explored for minutes.
 */
export const MAX_THREADS = 16
export const MAX_INSTRUCTIONS_PER_THREAD = 256

const parseProgram = (at: Lines, noteLoc: (loc: string) => void): Array<Array<Instr>> => {
  at.skipBlank()
  const header = splitRow(at.line)
  if (header.length === 0 || header.some((h, t) => h !== `P${t}`)) {
    fail(at.i + 1, "a thread header \"P0 | P1 | ... ;\"", show(at.line.trim()))
  }
  if (header.length > MAX_THREADS) refuse(at.i + 1, `${header.length} threads: at most ${MAX_THREADS} (a litmus test is a handful of threads)`)
  const threads: Array<Array<Instr>> = Array.from({ length: header.length }, () => [])
  for (at.i++; !at.done; at.i++) {
    const l = at.line.trim()
    if (l === "") continue
    if (/^(exists|~\s*exists|forall|locations|filter)\b/.test(l) || !l.includes("|") && !l.endsWith(";")) break
    const cells = splitRow(l)
    if (cells.length > threads.length) fail(at.i + 1, `at most ${threads.length} instruction columns`, `${cells.length}`)
    cells.forEach((cell, t) => {
      if (cell === "") return
      const instr = parseInstr(cell, at.i + 1)
      for (const loc of instrLocs(instr)) noteLoc(loc)
      if (threads[t]!.length === MAX_INSTRUCTIONS_PER_THREAD) {
        refuse(at.i + 1, `thread ${t} has more than ${MAX_INSTRUCTIONS_PER_THREAD} instructions (a litmus test is a few per thread)`)
      }
      threads[t]!.push(instr)
    })
  }
  return threads
}

/**
 * An optional `locations [x; 0:rax;]`, then the condition (possibly over several lines); every
 * variable either names must be in the test's scope.
 */
const parseTail = (at: Lines, scope: Scope) => {
  const observed: Array<Var> = []
  let rest = at.lines.slice(at.i).join("\n")
  let restLine = at.i + 1
  const locs = /^(\s*locations\s*\[)([^\]]*)\]/.exec(rest)
  if (locs) {
    for (const { text, line } of items(locs[2]!, restLine + newlines(locs[1]!))) {
      const v = parseVarText(text, line)
      checkVar(scope, v, line, "locations")
      observed.push(v)
    }
    restLine += newlines(locs[0])
    rest = rest.slice(locs[0].length)
  }
  const filter = /^(\s*)filter\b/.exec(rest)
  if (filter) fail(restLine + newlines(filter[1]!), "a condition (filter is not supported)", "filter")
  return { condition: parseCondition(rest, restLine, (v, line, where) => checkVar(scope, v, line, where)), observed }
}

/** Splits "a | b | c ;" into trimmed cells. */
const splitRow = (line: string): Array<string> => {
  const t = line.trim().replace(/;\s*$/, "")
  return t === "" ? [] : t.split("|").map((c) => c.trim())
}
