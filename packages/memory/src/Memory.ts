/**
 * Shared memory for simulated actors, with x86-TSO or SC semantics. Every operation is a
 * scheduling step (`Cpu.ts`); store-buffer drains are actors of their own, so the strategy
 * decides when a store becomes visible (under `timed`, after `drainLatencyNs`), and waiting on
 * memory blocks on the location's wait queue, which the kernel sees. On the `fast` engine the
 * state is plain arrays; on the `effect` engine a `TRef` per location and per store buffer.
 */
import { Sim } from "@kvmlab/sim"
import { Cpu, drainLoop } from "./Cpu.js"
import { type Backend, PlainBackend, StmBackend } from "./internal/backend.js"
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
  constructor(readonly id: number, readonly name: string) {
    this.changed = Sim.makeWaitQueue(() => `${name} changed`)
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
  /** @internal */
  readonly backend: Backend
  constructor(readonly model: Model, readonly kernel: Sim.Kernel, drainLatencyNs: number) {
    this.drainLatencyNs = drainLatencyNs
    this.backend = kernel.engine === "effect" ? new StmBackend() : new PlainBackend()
  }

  /** Allocates a named location holding `init`. */
  alloc(name: string, init = 0): Loc {
    const loc = new Loc(this.locs.length, name)
    this.backend.alloc(init)
    this.locs.push(loc)
    return loc
  }

  /** Allocates `n` locations named `name[i]`. */
  allocArray(name: string, n: number, init = 0): ReadonlyArray<Loc> {
    return Array.from({ length: n }, (_, i) => this.alloc(`${name}[${i}]`, init))
  }

  /** The value of `loc` in memory now (not in any store buffer). For invariants and reports. */
  peek(loc: Loc): number {
    return this.backend.peek(loc.id)
  }

  /** Every location's value in memory, by name. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const l of this.locs) out[l.name] = this.backend.peek(l.id)
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
  *attach(name: string): Sim.Gen<Cpu> {
    const cpu = new Cpu(this, this.cpus.length, name, this.backend.newBuffer())
    this.cpus.push(cpu)
    if (this.model === "tso") yield* Sim.spawn(`${name}.drain`, () => drainLoop(cpu))
    return cpu
  }

  /** Blocks until every store buffer has drained (the end of a litmus run). */
  *quiesce(): Sim.Gen<void> {
    for (;;) {
      const busy = this.cpus.find((c) => c.pending() > 0)
      if (busy === undefined) return
      yield* busy.waitEmpty()
    }
  }
}

/** Creates the shared memory of the run whose kernel is `k`. */
export const make = (k: Sim.Kernel, options: MemoryOptions): Memory => new Memory(options.model, k, options.drainLatencyNs ?? 20)
