/**
 * What the condition, a `locations [...]` line and the init block of a test may name: the test's
 * threads, the registers a thread's code or its init mentions, and the locations the code or the
 * init mentions. herd7 rejects a thread the test does not have ("Bad process P5") but lets a
 * register or location that appears nowhere else read as 0, which turns a typo such as `1:rzz=1`
 * into a silent "Never". Here each is an error naming the line; none of the 2,595 tests of the
 * herd7 oracle suite names anything outside its scope.
 */
import { refuse } from "./Errors.js"
import type { Instr, Source, Var } from "./Syntax.js"

/** The names a test has. */
export interface Scope {
  readonly threads: number
  /** Per thread: the registers its code or its init mentions, in order of first mention. */
  readonly regs: ReadonlyArray<ReadonlySet<string>>
  /** The locations the code or the init mentions, in order of first mention. */
  readonly locations: ReadonlySet<string>
}

const sourceRegs = (s: Source): Array<string> => (s.kind === "reg" ? [s.reg] : [])

/** The registers an instruction mentions; `cmpxchg` also compares with and loads into `%rax`. */
export const instrRegs = (i: Instr): Array<string> => {
  switch (i.op) {
    case "load":
    case "xchg":
    case "xadd":
      return [i.reg]
    case "cmpxchg":
      return [i.reg, "rax"]
    case "mov":
    case "alu":
      return [i.reg, ...sourceRegs(i.src)]
    case "store":
    case "locked":
    case "memalu":
      return sourceRegs(i.src)
    case "mfence":
    case "nop":
      return []
  }
}

/** The scope of a test: its threads' code, its initial registers (`thread:reg`), and its locations. */
export const scopeOf = (
  threads: ReadonlyArray<ReadonlyArray<Instr>>,
  initRegs: Iterable<string>,
  locations: Iterable<string>
): Scope => {
  const regs = threads.map((code) => new Set(code.flatMap(instrRegs)))
  for (const key of initRegs) {
    const [t, reg] = key.split(":")
    regs[Number(t)]?.add(reg!)
  }
  return { threads: threads.length, regs, locations: new Set(locations) }
}

/** At most 8 names, for a message. */
const list = (names: Iterable<string>): string => {
  const all = [...names]
  return all.length > 8 ? all.slice(0, 8).join(", ") + ", …" : all.join(", ")
}

/** Fails at `line` unless the test has thread `t`; `where` names the part of the test (`exists`, `locations`, `init`). */
export const checkThread = (s: Scope, t: number, line: number, where: string): void => {
  if (t < s.threads) return
  const has = s.threads === 1 ? "thread 0" : `threads 0-${s.threads - 1}`
  refuse(line, `${where}: thread ${t} does not exist (the test has ${has})`)
}

/** Fails at `line` unless `v` names a thread, register or location the test has. */
export const checkVar = (s: Scope, v: Var, line: number, where: string): void => {
  if (v.kind === "loc") {
    if (s.locations.has(v.loc)) return
    const has = s.locations.size === 0 ? "no locations" : list(s.locations)
    return refuse(line, `${where}: location ${v.loc} appears nowhere in the code or the init block (the test has ${has})`)
  }
  checkThread(s, v.thread, line, where)
  const regs = s.regs[v.thread]!
  if (regs.has(v.reg)) return
  const has = regs.size === 0 ? "no registers" : list(regs)
  refuse(line, `${where}: register ${v.thread}:${v.reg} appears nowhere in thread ${v.thread}'s code or the init block (thread ${v.thread} has ${has})`)
}
