/**
 * The actor litmus engine: one simulated actor per litmus thread, executing its instructions on
 * the simulated `Memory` through the kernel (on either engine: plain state, or STM), for a
 * number of seeded runs. Every final state it
 * reaches must be one the exhaustive engine lists, and with enough runs it should reach them
 * all: that is how the runtime is held to the semantics.
 */
import { Run, Sim } from "@kvmlab/sim"
import type { Strategy } from "@kvmlab/sim"
import { Exit } from "effect"
import type { Cpu } from "./Cpu.js"
import { type Compiled, compile, readVar } from "./Exhaustive.js"
import { applyAlu, type Instr, type LitmusTest, type Source } from "./Litmus.js"
import * as Memory from "./Memory.js"
import { type LitmusOutcome, OutcomeBuilder } from "./Outcome.js"
import type { Model } from "./Tso.js"

/** Runs one thread's instructions on `cpu`; registers live in `regs` (by the compiled index). */
function* thread(c: Compiled, t: number, cpu: Cpu, locs: ReadonlyArray<Memory.Loc>, regs: Array<number>): Sim.Gen<void> {
  const r = (name: string) => c.regIndex[t]!.get(name)!
  const value = (s: Source) => (s.kind === "imm" ? s.value : regs[r(s.reg)]!)
  const loc = (name: string) => locs[c.locIndex.get(name)!]!
  for (const i of c.test.threads[t] as ReadonlyArray<Instr>) {
    switch (i.op) {
      case "load":
        regs[r(i.reg)] = yield* cpu.load(loc(i.loc))
        break
      case "store":
        yield* cpu.store(loc(i.loc), value(i.src))
        break
      case "mov":
        regs[r(i.reg)] = value(i.src)
        break
      case "alu":
        regs[r(i.reg)] = applyAlu(i.alu, regs[r(i.reg)]!, value(i.src))
        break
      case "mfence":
        yield* cpu.mfence()
        break
      case "nop":
        break
      case "xchg":
        regs[r(i.reg)] = yield* cpu.xchg(loc(i.loc), regs[r(i.reg)]!)
        break
      case "locked": {
        const v = value(i.src)
        yield* cpu.rmw(loc(i.loc), (old) => applyAlu(i.alu, old, v))
        break
      }
      case "xadd": {
        const v = regs[r(i.reg)]!
        regs[r(i.reg)] = yield* cpu.rmw(loc(i.loc), (old) => old + v)
        break
      }
      case "cmpxchg": {
        const expected = regs[r("rax")]!
        const v = regs[r(i.reg)]!
        regs[r("rax")] = yield* cpu.cmpxchg(loc(i.loc), expected, v) // the old value; equal to rax on success
        break
      }
      case "memalu": {
        const old = yield* cpu.load(loc(i.loc)) // not locked: a load, then a separate store
        yield* cpu.store(loc(i.loc), applyAlu(i.alu, old, value(i.src)))
        break
      }
    }
  }
}

/**
 * Thread `t` on a hardware thread of its own. Module-level, spawned through an arrow: V8 keeps a
 * generator closure that has run (and the run it closes over) alive until a full GC.
 */
function* hardwareThread(c: Compiled, t: number, memory: Memory.Memory, locs: ReadonlyArray<Memory.Loc>, regs: Array<number>): Sim.Gen<void> {
  yield* thread(c, t, yield* memory.attach(`P${t}`), locs, regs)
}

/** The program of one run: spawn the threads, join them, drain, return the final registers and memory. */
export const program = (c: Compiled, model: Model): Sim.Program<{ regs: Array<Array<number>>; mem: Array<number> }> =>
  function*() {
    const memory = Memory.make(yield* Sim.kernel(), { model })
    const locs = c.test.locations.map((name, i) => memory.alloc(name, c.initMem[i]!))
    const regs = c.initRegs.map((r) => r.slice())
    const actors = []
    for (let t = 0; t < c.code.length; t++) {
      actors.push(yield* Sim.spawn(`P${t}`, () => hardwareThread(c, t, memory, locs, regs[t]!)))
    }
    for (const a of actors) {
      const exit = yield* Sim.join(a)
      if (exit._tag === "failure") throw new Error(`thread ${a.name} failed: ${exit.message}`)
    }
    yield* memory.quiesce()
    return { regs, mem: locs.map((l) => memory.peek(l)) }
  }

/** Options of the actor engine. */
export interface ActorsOptions {
  readonly model: Model
  readonly runs: number
  readonly seed: number
  /** Default `swarm`, which reaches skewed drain timings far sooner than uniform `random`. */
  readonly strategy?: Strategy.SearchStrategy
  /** Stop early once this many distinct final states were reached (e.g. the exhaustive count). */
  readonly stopAtStates?: number
  /** Which simulation engine runs the threads (default `fast`). */
  readonly engine?: Run.Engine
}

/** Runs `test` `runs` times under the kernel and reports the final states reached. */
export const check = (test: LitmusTest, options: ActorsOptions): LitmusOutcome & { readonly runs: number } => {
  const chunks = checkInChunks(test, options)
  for (;;) {
    const r = chunks.next()
    if (r.done === true) return r.value
  }
}

/** Runs between two pauses of `checkInChunks`. */
const CHUNK = 64

/**
 * `check`, pausing every few dozen runs: each pause yields the runs made so far, and the end
 * returns the result (the same as `check`'s). For a caller that must stay responsive.
 */
export function* checkInChunks(test: LitmusTest, options: ActorsOptions): Generator<number, LitmusOutcome & { readonly runs: number }, void> {
  const c = compile(test)
  const builder = new OutcomeBuilder(test)
  const prog = program(c, options.model)
  let i = 0
  for (; i < options.runs; i++) {
    if (options.stopAtStates !== undefined && builder.size >= options.stopAtStates) break
    if (i > 0 && i % CHUNK === 0) yield i
    const r = Run.runSync(prog, { seed: (options.seed + i) >>> 0, strategy: options.strategy ?? { _tag: "swarm" }, engine: options.engine ?? "fast" })
    if (r.exit === undefined || Exit.isFailure(r.exit)) {
      throw new Error(`${test.name}: run ${i} ended ${r.outcome}: ${r.violation?.message ?? "failure"}`)
    }
    builder.add(readVar(c, r.exit.value.regs, r.exit.value.mem))
  }
  return { ...builder.build(), runs: i }
}
