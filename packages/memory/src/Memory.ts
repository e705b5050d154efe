/**
 * Shared memory for simulated actors, with x86-TSO or SC semantics. Its state lives in STM:
 * each location is a `TRef`, each hardware thread's store buffer is a `TRef` of buffered stores,
 * and every operation is one transaction taken at a scheduling point. Store-buffer drains are
 * actors of their own, so the strategy decides when a store becomes visible (under `timed`,
 * after `drainLatencyNs`), and waiting on memory blocks on the location's wait queue, which the
 * kernel sees.
 */
import { Sim } from "@kvmlab/sim"
import { Effect, STM, TRef } from "effect"
import { Cpu } from "./Cpu.js"
import { peek } from "./internal/peek.js"
import type { Model } from "./Tso.js"

/** Operation codes mixed into the trace hash. */
export const enum Op {
  Load = 1,
  Store = 2,
  Fence = 3,
  Rmw = 4,
  Drain = 5
}

/** A memory location: one machine word. */
export class Loc {
  /** Actors waiting for this location to change in memory (`smp_cond_load_*`, lock spinners). */
  readonly changed: Sim.WaitQueue
  constructor(readonly id: number, readonly name: string, readonly ref: TRef.TRef<number>) {
    this.changed = Sim.makeWaitQueue(`${name} changed`)
  }
}

/** Options of a memory. */
export interface MemoryOptions {
  readonly model: Model
  /** Virtual time from a store to its drain under the `timed` strategy (default 20 ns). */
  readonly drainLatencyNs?: number
}

/** The shared memory of one simulation run. Create it with `make` inside the run. */
export class Memory {
  readonly locs: Array<Loc> = []
  readonly cpus: Array<Cpu> = []
  readonly drainLatencyNs: number
  constructor(readonly model: Model, readonly kernel: Sim.Kernel, drainLatencyNs: number) {
    this.drainLatencyNs = drainLatencyNs
  }

  /** Allocates a named location holding `init`. */
  alloc(name: string, init = 0): Effect.Effect<Loc> {
    return Effect.map(STM.commit(TRef.make(init)), (ref) => {
      const loc = new Loc(this.locs.length, name, ref)
      this.locs.push(loc)
      return loc
    })
  }

  /** Allocates `n` locations named `name[i]`. */
  allocArray(name: string, n: number, init = 0): Effect.Effect<ReadonlyArray<Loc>> {
    return Effect.forEach(Array.from({ length: n }, (_, i) => i), (i) => this.alloc(`${name}[${i}]`, init))
  }

  /** The value of `loc` in memory now (not in any store buffer). For invariants and reports. */
  peek(loc: Loc): number {
    return peek(loc.ref)
  }

  /** Every location's value in memory, by name. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const l of this.locs) out[l.name] = peek(l.ref)
    return out
  }

  /** Whether every store buffer is empty. */
  drained(): boolean {
    return this.cpus.every((c) => c.pending() === 0)
  }

  /**
   * Attaches a hardware thread for the calling actor: its own store buffer and, under TSO, a
   * drain actor named `<name>.drain`.
   */
  attach(name: string): Effect.Effect<Cpu, never, Sim.SimKernel> {
    return Effect.gen(this, function*() {
      const buffer = yield* STM.commit(TRef.make<ReadonlyArray<{ readonly addr: number; readonly value: number }>>([]))
      const cpu = new Cpu(this, this.cpus.length, name, buffer)
      this.cpus.push(cpu)
      if (this.model === "tso") yield* Sim.spawn(`${name}.drain`, cpu.drainLoop)
      return cpu
    })
  }

  /** Blocks until every store buffer has drained (the end of a litmus run). */
  readonly quiesce: Effect.Effect<void> = Effect.suspend(() => {
    const busy = this.cpus.find((c) => c.pending() > 0)
    return busy === undefined ? Effect.void : Effect.zipRight(busy.waitEmpty, this.quiesce)
  })
}

/** Creates the shared memory of the current run. */
export const make = (options: MemoryOptions): Effect.Effect<Memory, never, Sim.SimKernel> =>
  Effect.map(Sim.SimKernel, (k) => new Memory(options.model, k, options.drainLatencyNs ?? 20))
