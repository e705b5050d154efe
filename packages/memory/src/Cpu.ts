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
 * Every operation is a step: a scheduling point, then the access when the actor is granted. A
 * locked RMW or a fence first waits, kernel-visibly, for this thread's store buffer to drain.
 * Each returns a yieldable: `const v = yield* cpu.READ_ONCE(x)`.
 */
import { Op, Sim } from "@kvmlab/sim"
import { Effect } from "effect"
import type { Buffer } from "./internal/backend.js"
import type { Loc, Memory } from "./Memory.js"

/** Operation codes mixed into the trace hash. */
const LOAD = 1
const STORE = 2
const FENCE = 3
const RMW = 4
const DRAIN = 5

const bit = (nr: number): number => {
  if (!Number.isInteger(nr) || nr < 0 || nr > 52) throw new RangeError(`bit number ${nr} out of range [0, 52]`)
  return 2 ** nr
}
const hasBit = (v: number, nr: number): boolean => Math.floor(v / bit(nr)) % 2 === 1
const withBit = (v: number, nr: number): number => (hasBit(v, nr) ? v : v + bit(nr))
const withoutBit = (v: number, nr: number): number => (hasBit(v, nr) ? v - bit(nr) : v)

type Host = Op.StepHost
type Blocked = Op.Blocked

class Load<R = number> extends Op.Step<R> {
  constructor(private readonly cpu: Cpu, private readonly loc: Loc) {
    super(true, 0)
  }
  /** What the operation answers with the value loaded. */
  protected answer(v: number): R {
    return v as R
  }
  private finish(host: Host, v: number): R {
    host.op("load", LOAD, this.loc.id, v)
    return this.answer(v)
  }
  run(host: Host): R {
    return this.finish(host, this.cpu.memory.backend.load(this.cpu.buffer, this.loc.id))
  }
  override runEffect(host: Host): Effect.Effect<R> {
    return Effect.map(this.cpu.memory.backend.loadEffect(this.cpu.buffer, this.loc.id), (v) => this.finish(host, v))
  }
}

/** `test_bit`: a load, answering whether bit `nr` is set. */
class TestBit extends Load<boolean> {
  constructor(cpu: Cpu, loc: Loc, private readonly nr: number) {
    super(cpu, loc)
  }
  protected override answer(v: number): boolean {
    return hasBit(v, this.nr)
  }
}

class Store extends Op.Step<void> {
  constructor(private readonly cpu: Cpu, private readonly loc: Loc, private readonly written: number) {
    super(true, 0)
  }
  private finish(host: Host): void {
    // Under SC the store reached memory: waiters on the location re-check; under TSO the drain starts.
    host.wakeAll(this.cpu.memory.model === "sc" ? this.loc.changed : this.cpu.notEmpty)
  }
  run(host: Host): void {
    host.op("store", STORE, this.loc.id, this.written)
    const b = this.cpu.memory.backend
    if (this.cpu.memory.model === "sc") b.write(this.loc.id, this.written)
    else b.buffer(this.cpu.buffer, this.loc.id, this.written)
    this.finish(host)
  }
  override runEffect(host: Host): Effect.Effect<void> {
    return Effect.suspend(() => {
      host.op("store", STORE, this.loc.id, this.written)
      const b = this.cpu.memory.backend
      const write = this.cpu.memory.model === "sc" ? b.writeEffect(this.loc.id, this.written) : b.bufferEffect(this.cpu.buffer, this.loc.id, this.written)
      return Effect.map(write, () => this.finish(host))
    })
  }
}

class Fence extends Op.Step<void> {
  constructor(private readonly cpu: Cpu) {
    super(true, 0)
  }
  run(host: Host): void | Blocked {
    if (this.cpu.pending() > 0) return host.block(this.cpu.empty)
    host.op("mfence", FENCE, 0, 0)
  }
}

class Rmw<A> extends Op.Step<A> {
  constructor(
    private readonly cpu: Cpu,
    private readonly loc: Loc,
    private readonly f: (old: number) => number,
    private readonly result: (old: number) => A
  ) {
    super(true, 0)
  }
  private finish(host: Host, old: number): A {
    const now = this.cpu.memory.backend.peek(this.loc.id)
    host.op("rmw", RMW, this.loc.id, now)
    if (now !== old) host.wakeAll(this.loc.changed)
    return this.result(old)
  }
  run(host: Host): A | Blocked {
    if (this.cpu.pending() > 0) return host.block(this.cpu.empty)
    const b = this.cpu.memory.backend
    const old = b.peek(this.loc.id)
    b.write(this.loc.id, this.f(old))
    return this.finish(host, old)
  }
  override runEffect(host: Host): Effect.Effect<A | Blocked> {
    return Effect.suspend((): Effect.Effect<A | Blocked> => {
      if (this.cpu.pending() > 0) return Effect.succeed(host.block(this.cpu.empty))
      return Effect.map(this.cpu.memory.backend.rmwEffect(this.loc.id, this.f), (old) => this.finish(host, old))
    })
  }
}

class Drain extends Op.Step<void> {
  constructor(private readonly cpu: Cpu, point: boolean) {
    super(point, point ? cpu.memory.drainLatencyNs : 0)
  }
  private finish(host: Host, e: { readonly addr: number; readonly value: number }): void {
    host.op("drain", DRAIN, e.addr, e.value)
    host.wakeAll(this.cpu.memory.locs[e.addr]!.changed)
    if (this.cpu.pending() === 0) host.wakeAll(this.cpu.empty)
  }
  run(host: Host): void {
    this.finish(host, this.cpu.memory.backend.drainOne(this.cpu.buffer))
  }
  override runEffect(host: Host): Effect.Effect<void> {
    return Effect.map(this.cpu.memory.backend.drainOneEffect(this.cpu.buffer), (e) => this.finish(host, e))
  }
}

const identity = (x: number) => x
const ignore = (): void => {}

/**
 * The drain actor's body: forever, move the oldest buffered store to memory. Woken by a store,
 * the wake-up grant is itself the scheduling decision, so it drains at once (under `timed`, it
 * first waits out the drain latency).
 */
export function* drainLoop(cpu: Cpu): Sim.Gen<never> {
  const k = yield* Sim.kernel()
  for (;;) {
    if (cpu.pending() === 0) {
      yield* Sim.wait(cpu.notEmpty)
      if (!k.timing && cpu.pending() > 0) yield* new Drain(cpu, false)
      continue
    }
    yield* new Drain(cpu, true)
  }
}

/** One hardware thread: a store buffer and the operations of the code running on it. */
export class Cpu {
  /** @internal woken when a store enters the buffer */
  readonly notEmpty: Sim.WaitQueue
  /** @internal woken when the buffer drains empty */
  readonly empty: Sim.WaitQueue

  constructor(readonly memory: Memory, readonly id: number, readonly name: string, readonly buffer: Buffer) {
    this.notEmpty = Sim.makeWaitQueue(() => `${name} store buffer (empty)`)
    this.empty = Sim.makeWaitQueue(() => `${name} store buffer (draining)`)
  }

  /** Stores waiting in this thread's buffer. */
  pending(): number {
    return this.memory.backend.pending(this.buffer)
  }

  // ------------------------------------------------------------------ the machine operations

  /** A load: own newest buffered store to `loc`, else memory. */
  load(loc: Loc): Sim.Yieldable<number> {
    return new Load(this, loc)
  }

  /** A store: to the tail of the store buffer under TSO, to memory under SC. */
  store(loc: Loc, value: number): Sim.Yieldable<void> {
    return new Store(this, loc, value)
  }

  /** Blocks until this thread's store buffer is empty. */
  *waitEmpty(): Sim.Gen<void> {
    while (this.pending() > 0) yield* Sim.wait(this.empty)
  }

  /** `mfence`: waits for the store buffer to drain. */
  mfence(): Sim.Yieldable<void> {
    return new Fence(this)
  }

  /** A locked read-modify-write: drains the buffer, then applies `f` to memory atomically. Returns the old value. */
  rmw(loc: Loc, f: (old: number) => number): Sim.Yieldable<number> {
    return new Rmw(this, loc, f, identity)
  }

  /**
   * Waits until `pred` holds of `loc`, re-reading after each change: a blocking wait the kernel
   * sees, not a hidden spin. Returns the value that satisfied it.
   */
  *waitUntil(loc: Loc, pred: (v: number) => boolean): Sim.Gen<number> {
    for (;;) {
      const v = yield* this.load(loc)
      if (pred(v)) return v
      yield* Sim.wait(loc.changed)
    }
  }

  // ------------------------------------------------------------------ the Linux vocabulary

  /** `READ_ONCE(x)`: a plain load. */
  READ_ONCE(loc: Loc): Sim.Yieldable<number> {
    return new Load(this, loc)
  }
  /** `WRITE_ONCE(x, v)`: a plain store. */
  WRITE_ONCE(loc: Loc, value: number): Sim.Yieldable<void> {
    return new Store(this, loc, value)
  }
  /** `smp_load_acquire(p)`: a plain load; x86 loads are not reordered with later accesses. */
  smp_load_acquire(loc: Loc): Sim.Yieldable<number> {
    return new Load(this, loc)
  }
  /** `smp_store_release(p, v)`: a plain store; x86 stores are not reordered with earlier accesses. */
  smp_store_release(loc: Loc, value: number): Sim.Yieldable<void> {
    return new Store(this, loc, value)
  }
  /** `smp_mb()`: a full barrier (the store buffer drains before later loads). */
  smp_mb(): Sim.Yieldable<void> {
    return new Fence(this)
  }
  /** `smp_wmb()`: a compiler barrier on x86 (stores are already ordered). */
  smp_wmb(): Sim.Yieldable<void> {
    return Op.nothing
  }
  /** `smp_rmb()`: a compiler barrier on x86 (loads are already ordered). */
  smp_rmb(): Sim.Yieldable<void> {
    return Op.nothing
  }
  /** `barrier()`: a compiler barrier. */
  barrier(): Sim.Yieldable<void> {
    return Op.nothing
  }
  /** `smp_mb__before_atomic()`: a compiler barrier on x86 (locked instructions are full barriers). */
  smp_mb__before_atomic(): Sim.Yieldable<void> {
    return Op.nothing
  }
  /** `smp_mb__after_atomic()`: a compiler barrier on x86 (locked instructions are full barriers). */
  smp_mb__after_atomic(): Sim.Yieldable<void> {
    return Op.nothing
  }
  /** `smp_store_mb(var, v)`: `xchg` on x86, a store followed by a full barrier. */
  smp_store_mb(loc: Loc, value: number): Sim.Yieldable<void> {
    return new Rmw(this, loc, () => value, ignore)
  }
  /** `xchg(p, v)`: returns the old value. */
  xchg(loc: Loc, value: number): Sim.Yieldable<number> {
    return new Rmw(this, loc, () => value, identity)
  }
  /** `cmpxchg(p, old, new)`: returns the value found; stored `new` iff it equalled `old`. */
  cmpxchg(loc: Loc, expected: number, value: number): Sim.Yieldable<number> {
    return new Rmw(this, loc, (cur) => (cur === expected ? value : cur), identity)
  }
  /** `try_cmpxchg(p, &old, new)`: true iff it stored. */
  try_cmpxchg(loc: Loc, expected: number, value: number): Sim.Yieldable<boolean> {
    return new Rmw(this, loc, (cur) => (cur === expected ? value : cur), (found) => found === expected)
  }
  /** `atomic_read(v)`. */
  atomic_read(loc: Loc): Sim.Yieldable<number> {
    return new Load(this, loc)
  }
  /** `atomic_set(v, i)`. */
  atomic_set(loc: Loc, value: number): Sim.Yieldable<void> {
    return new Store(this, loc, value)
  }
  /** `atomic_add(i, v)`. */
  atomic_add(n: number, loc: Loc): Sim.Yieldable<void> {
    return new Rmw(this, loc, (v) => v + n, ignore)
  }
  /** `atomic_inc(v)`. */
  atomic_inc(loc: Loc): Sim.Yieldable<void> {
    return this.atomic_add(1, loc)
  }
  /** `atomic_dec(v)`. */
  atomic_dec(loc: Loc): Sim.Yieldable<void> {
    return this.atomic_add(-1, loc)
  }
  /** `atomic_inc_return(v)`: the new value. */
  atomic_inc_return(loc: Loc): Sim.Yieldable<number> {
    return new Rmw(this, loc, (v) => v + 1, (old) => old + 1)
  }
  /** `atomic_dec_and_test(v)`: true iff the new value is zero. */
  atomic_dec_and_test(loc: Loc): Sim.Yieldable<boolean> {
    return new Rmw(this, loc, (v) => v - 1, (old) => old - 1 === 0)
  }
  /** `atomic_fetch_or(i, v)`: the old value. */
  atomic_fetch_or(mask: number, loc: Loc): Sim.Yieldable<number> {
    return new Rmw(this, loc, (v) => orBits(v, mask), identity)
  }
  /** `set_bit(nr, addr)`: `lock bts`. */
  set_bit(nr: number, loc: Loc): Sim.Yieldable<void> {
    return new Rmw(this, loc, (v) => withBit(v, nr), ignore)
  }
  /** `clear_bit(nr, addr)`: `lock btr`. */
  clear_bit(nr: number, loc: Loc): Sim.Yieldable<void> {
    return new Rmw(this, loc, (v) => withoutBit(v, nr), ignore)
  }
  /** `test_and_set_bit(nr, addr)`: the old bit. */
  test_and_set_bit(nr: number, loc: Loc): Sim.Yieldable<boolean> {
    return new Rmw(this, loc, (v) => withBit(v, nr), (old) => hasBit(old, nr))
  }
  /** `test_and_clear_bit(nr, addr)`: the old bit. */
  test_and_clear_bit(nr: number, loc: Loc): Sim.Yieldable<boolean> {
    return new Rmw(this, loc, (v) => withoutBit(v, nr), (old) => hasBit(old, nr))
  }
  /** `test_bit(nr, addr)`: a plain load. */
  test_bit(nr: number, loc: Loc): Sim.Yieldable<boolean> {
    return new TestBit(this, loc, nr)
  }
  /** `smp_cond_load_acquire(ptr, cond)`: waits until `cond(VAL)`; returns VAL. */
  smp_cond_load_acquire(loc: Loc, cond: (v: number) => boolean): Sim.Gen<number> {
    return this.waitUntil(loc, cond)
  }
  /** `smp_cond_load_relaxed(ptr, cond)`: the same on x86. */
  smp_cond_load_relaxed(loc: Loc, cond: (v: number) => boolean): Sim.Gen<number> {
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
