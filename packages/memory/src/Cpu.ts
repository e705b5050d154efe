/**
 * A hardware thread on the shared memory, and the Linux kernel's memory-access vocabulary as it
 * compiles on x86-64 (`arch/x86/include/asm/barrier.h`, `cmpxchg.h`, `bitops.h`):
 *
 * | Linux                                  | x86                 | here                         |
 * |----------------------------------------|---------------------|------------------------------|
 * | `READ_ONCE`, `smp_load_acquire`        | `mov` load          | `load`                       |
 * | `WRITE_ONCE`, `smp_store_release`      | `mov` store         | `store` (buffered under TSO) |
 * | `smp_mb`, `mb`                         | `lock; addl $0,(%rsp)` / `mfence` | `mfence`       |
 * | `smp_wmb`, `smp_rmb`, `barrier`, `smp_mb__{before,after}_atomic` | compiler barrier | no-op |
 * | `smp_store_mb`                         | `xchg`              | locked RMW                   |
 * | `xchg`, `cmpxchg`, `try_cmpxchg`, `atomic_*`, `set_bit`, `test_and_*_bit` | `lock`-prefixed | locked RMW |
 *
 * Every operation is a scheduling point. A locked RMW or a fence first waits, kernel-visibly,
 * for this thread's store buffer to drain.
 */
import { Effect, STM, TRef } from "effect"
import { peek } from "./internal/peek.js"
import { type Loc, type Memory, Op } from "./Memory.js"
import { forward } from "./Tso.js"
import { Sim } from "@kvmlab/sim"

type Buffer = ReadonlyArray<{ readonly addr: number; readonly value: number }>

const bit = (nr: number): number => {
  if (!Number.isInteger(nr) || nr < 0 || nr > 52) throw new RangeError(`bit number ${nr} out of range [0, 52]`)
  return 2 ** nr
}
const hasBit = (v: number, nr: number): boolean => Math.floor(v / bit(nr)) % 2 === 1
const withBit = (v: number, nr: number): number => (hasBit(v, nr) ? v : v + bit(nr))
const withoutBit = (v: number, nr: number): number => (hasBit(v, nr) ? v - bit(nr) : v)

/** One hardware thread: a store buffer and the operations of the code running on it. */
export class Cpu {
  private readonly k: Memory["kernel"]
  private readonly notEmpty: Sim.WaitQueue
  private readonly empty: Sim.WaitQueue

  constructor(readonly memory: Memory, readonly id: number, readonly name: string, readonly buffer: TRef.TRef<Buffer>) {
    this.k = memory.kernel
    this.notEmpty = Sim.makeWaitQueue(`${name} store buffer (empty)`)
    this.empty = Sim.makeWaitQueue(`${name} store buffer (draining)`)
  }

  /** Stores waiting in this thread's buffer. */
  pending(): number {
    return peek(this.buffer).length
  }

  // ------------------------------------------------------------------ the machine operations

  /** A load: own newest buffered store to `loc`, else memory. */
  load(loc: Loc): Effect.Effect<number> {
    return Effect.zipRight(
      this.k.point,
      Effect.map(
        STM.commit(STM.flatMap(TRef.get(this.buffer), (b) => {
          const v = forward(b, loc.id)
          return v === undefined ? TRef.get(loc.ref) : STM.succeed(v)
        })),
        (v) => {
          this.k.op("load", Op.Load, loc.id, v)
          return v
        }
      )
    )
  }

  /** A store: to the tail of the store buffer under TSO, to memory under SC. */
  store(loc: Loc, value: number): Effect.Effect<void> {
    return Effect.zipRight(
      this.k.point,
      Effect.suspend(() => {
        this.k.op("store", Op.Store, loc.id, value)
        if (this.memory.model === "sc") {
          return Effect.map(STM.commit(TRef.set(loc.ref, value)), () => this.k.wakeAll(loc.changed))
        }
        return Effect.map(STM.commit(TRef.update(this.buffer, (b) => [...b, { addr: loc.id, value }])), () =>
          this.k.wakeAll(this.notEmpty))
      })
    )
  }

  /** Blocks until this thread's store buffer is empty. */
  readonly waitEmpty: Effect.Effect<void> = Effect.suspend(() =>
    this.pending() === 0 ? Effect.void : Effect.zipRight(this.k.wait(this.empty), this.waitEmpty)
  )

  /** `mfence`: waits for the store buffer to drain. */
  mfence(): Effect.Effect<void> {
    return Effect.zipRight(this.k.point, Effect.zipRight(this.waitEmpty, Effect.sync(() => this.k.op("mfence", Op.Fence, 0, 0))))
  }

  /** A locked read-modify-write: drains the buffer, then applies `f` to memory atomically. Returns the old value. */
  rmw(loc: Loc, f: (old: number) => number): Effect.Effect<number> {
    return Effect.zipRight(
      this.k.point,
      Effect.zipRight(
        this.waitEmpty,
        Effect.map(
          STM.commit(TRef.modify(loc.ref, (old) => [old, f(old)] as const)),
          (old) => {
            const now = peek(loc.ref)
            this.k.op("rmw", Op.Rmw, loc.id, now)
            if (now !== old) this.k.wakeAll(loc.changed)
            return old
          }
        )
      )
    )
  }

  /** The drain actor's body: forever, move the oldest buffered store to memory. */
  readonly drainLoop: Effect.Effect<never> = Effect.suspend(() => {
    if (this.pending() === 0) return Effect.zipRight(this.k.wait(this.notEmpty), this.drainAfterWake)
    return Effect.zipRight(this.k.pointCost(this.memory.drainLatencyNs), Effect.zipRight(this.drainOne, this.drainLoop))
  })

  // Woken by a store: the wake-up grant is itself the scheduling decision, so drain at once
  // (under `timed`, first wait out the drain latency).
  private readonly drainAfterWake: Effect.Effect<never> = Effect.suspend(() =>
    this.k.timing || this.pending() === 0 ? this.drainLoop : Effect.zipRight(this.drainOne, this.drainLoop)
  )

  private readonly drainOne: Effect.Effect<void> = Effect.suspend(() => Effect.map(
    STM.commit(STM.flatMap(TRef.get(this.buffer), (b) => {
      const oldest = b[0]!
      const loc = this.memory.locs[oldest.addr]!
      return STM.as(STM.zipRight(TRef.set(this.buffer, b.slice(1)), TRef.set(loc.ref, oldest.value)), oldest)
    })),
    (e) => {
      this.k.op("drain", Op.Drain, e.addr, e.value)
      this.k.wakeAll(this.memory.locs[e.addr]!.changed)
      if (this.pending() === 0) this.k.wakeAll(this.empty)
    }
  ))

  /**
   * Waits until `pred` holds of `loc`, re-reading after each change: a blocking wait the kernel
   * sees, not a hidden spin. Returns the value that satisfied it.
   */
  waitUntil(loc: Loc, pred: (v: number) => boolean): Effect.Effect<number> {
    const loop: Effect.Effect<number> = Effect.flatMap(this.load(loc), (v) =>
      pred(v) ? Effect.succeed(v) : Effect.zipRight(this.k.wait(loc.changed), loop))
    return loop
  }

  // ------------------------------------------------------------------ the Linux vocabulary

  /** `READ_ONCE(x)`: a plain load. */
  READ_ONCE(loc: Loc): Effect.Effect<number> {
    return this.load(loc)
  }
  /** `WRITE_ONCE(x, v)`: a plain store. */
  WRITE_ONCE(loc: Loc, value: number): Effect.Effect<void> {
    return this.store(loc, value)
  }
  /** `smp_load_acquire(p)`: a plain load; x86 loads are not reordered with later accesses. */
  smp_load_acquire(loc: Loc): Effect.Effect<number> {
    return this.load(loc)
  }
  /** `smp_store_release(p, v)`: a plain store; x86 stores are not reordered with earlier accesses. */
  smp_store_release(loc: Loc, value: number): Effect.Effect<void> {
    return this.store(loc, value)
  }
  /** `smp_mb()`: a full barrier (the store buffer drains before later loads). */
  smp_mb(): Effect.Effect<void> {
    return this.mfence()
  }
  /** `smp_wmb()`: a compiler barrier on x86 (stores are already ordered). */
  smp_wmb(): Effect.Effect<void> {
    return Effect.void
  }
  /** `smp_rmb()`: a compiler barrier on x86 (loads are already ordered). */
  smp_rmb(): Effect.Effect<void> {
    return Effect.void
  }
  /** `barrier()`: a compiler barrier. */
  barrier(): Effect.Effect<void> {
    return Effect.void
  }
  /** `smp_mb__before_atomic()`: a compiler barrier on x86 (locked instructions are full barriers). */
  smp_mb__before_atomic(): Effect.Effect<void> {
    return Effect.void
  }
  /** `smp_mb__after_atomic()`: a compiler barrier on x86 (locked instructions are full barriers). */
  smp_mb__after_atomic(): Effect.Effect<void> {
    return Effect.void
  }
  /** `smp_store_mb(var, v)`: `xchg` on x86, a store followed by a full barrier. */
  smp_store_mb(loc: Loc, value: number): Effect.Effect<void> {
    return Effect.asVoid(this.rmw(loc, () => value))
  }
  /** `xchg(p, v)`: returns the old value. */
  xchg(loc: Loc, value: number): Effect.Effect<number> {
    return this.rmw(loc, () => value)
  }
  /** `cmpxchg(p, old, new)`: returns the value found; stored `new` iff it equalled `old`. */
  cmpxchg(loc: Loc, expected: number, value: number): Effect.Effect<number> {
    return this.rmw(loc, (cur) => (cur === expected ? value : cur))
  }
  /** `try_cmpxchg(p, &old, new)`: true iff it stored. */
  try_cmpxchg(loc: Loc, expected: number, value: number): Effect.Effect<boolean> {
    return Effect.map(this.cmpxchg(loc, expected, value), (found) => found === expected)
  }
  /** `atomic_read(v)`. */
  atomic_read(loc: Loc): Effect.Effect<number> {
    return this.load(loc)
  }
  /** `atomic_set(v, i)`. */
  atomic_set(loc: Loc, value: number): Effect.Effect<void> {
    return this.store(loc, value)
  }
  /** `atomic_add(i, v)`. */
  atomic_add(n: number, loc: Loc): Effect.Effect<void> {
    return Effect.asVoid(this.rmw(loc, (v) => v + n))
  }
  /** `atomic_inc(v)`. */
  atomic_inc(loc: Loc): Effect.Effect<void> {
    return this.atomic_add(1, loc)
  }
  /** `atomic_dec(v)`. */
  atomic_dec(loc: Loc): Effect.Effect<void> {
    return this.atomic_add(-1, loc)
  }
  /** `atomic_inc_return(v)`: the new value. */
  atomic_inc_return(loc: Loc): Effect.Effect<number> {
    return Effect.map(this.rmw(loc, (v) => v + 1), (old) => old + 1)
  }
  /** `atomic_dec_and_test(v)`: true iff the new value is zero. */
  atomic_dec_and_test(loc: Loc): Effect.Effect<boolean> {
    return Effect.map(this.rmw(loc, (v) => v - 1), (old) => old - 1 === 0)
  }
  /** `atomic_fetch_or(i, v)`: the old value. */
  atomic_fetch_or(mask: number, loc: Loc): Effect.Effect<number> {
    return this.rmw(loc, (v) => orBits(v, mask))
  }
  /** `set_bit(nr, addr)`: `lock bts`. */
  set_bit(nr: number, loc: Loc): Effect.Effect<void> {
    return Effect.asVoid(this.rmw(loc, (v) => withBit(v, nr)))
  }
  /** `clear_bit(nr, addr)`: `lock btr`. */
  clear_bit(nr: number, loc: Loc): Effect.Effect<void> {
    return Effect.asVoid(this.rmw(loc, (v) => withoutBit(v, nr)))
  }
  /** `test_and_set_bit(nr, addr)`: the old bit. */
  test_and_set_bit(nr: number, loc: Loc): Effect.Effect<boolean> {
    return Effect.map(this.rmw(loc, (v) => withBit(v, nr)), (old) => hasBit(old, nr))
  }
  /** `test_and_clear_bit(nr, addr)`: the old bit. */
  test_and_clear_bit(nr: number, loc: Loc): Effect.Effect<boolean> {
    return Effect.map(this.rmw(loc, (v) => withoutBit(v, nr)), (old) => hasBit(old, nr))
  }
  /** `test_bit(nr, addr)`: a plain load. */
  test_bit(nr: number, loc: Loc): Effect.Effect<boolean> {
    return Effect.map(this.load(loc), (v) => hasBit(v, nr))
  }
  /** `smp_cond_load_acquire(ptr, cond)`: waits until `cond(VAL)`; returns VAL. */
  smp_cond_load_acquire(loc: Loc, cond: (v: number) => boolean): Effect.Effect<number> {
    return this.waitUntil(loc, cond)
  }
  /** `smp_cond_load_relaxed(ptr, cond)`: the same on x86. */
  smp_cond_load_relaxed(loc: Loc, cond: (v: number) => boolean): Effect.Effect<number> {
    return this.waitUntil(loc, cond)
  }
}

/** Bitwise OR for non-negative integers up to 2^53 (JS `|` truncates to 32 bits). */
export const orBits = (a: number, b: number): number => {
  const hi = (Math.floor(a / 0x100000000) | Math.floor(b / 0x100000000)) >>> 0
  const lo = ((a >>> 0) | (b >>> 0)) >>> 0
  return hi * 0x100000000 + lo
}

export { hasBit, withBit, withoutBit }
