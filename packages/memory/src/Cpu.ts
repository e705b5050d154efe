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

/** Makes `op` ready to be yielded again (its maker's pool hands it out once it was answered). */
const renew = (op: Op.Op): void => {
  op.yielded = false
  op.answered = false
}

class Load extends Op.Step<number | boolean> {
  /** Bit number for `test_bit` (the load answers whether it is set), -1 for a plain load. */
  declare nr: number
  constructor(private readonly cpu: Cpu, private loc: Loc) {
    super(true, 0)
    this.nr = -1
  }
  reuse(loc: Loc, nr: number): this {
    renew(this)
    this.loc = loc
    this.nr = nr
    return this
  }
  private finish(host: Host, v: number): number | boolean {
    host.op("load", LOAD, this.loc.id, v)
    return this.nr < 0 ? v : hasBit(v, this.nr)
  }
  run(host: Host): number | boolean {
    return this.finish(host, this.cpu.memory.backend.load(this.cpu.buffer, this.loc.id))
  }
  override runEffect(host: Host): Effect.Effect<number | boolean> {
    return Effect.map(this.cpu.memory.backend.loadEffect(this.cpu.buffer, this.loc.id), (v) => this.finish(host, v))
  }
}

class Store extends Op.Step<void> {
  constructor(private readonly cpu: Cpu, private loc: Loc, private written: number) {
    super(true, 0)
  }
  reuse(loc: Loc, written: number): this {
    renew(this)
    this.loc = loc
    this.written = written
    return this
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
  reuse(): this {
    renew(this)
    return this
  }
  run(host: Host): void | Blocked {
    if (this.cpu.pending() > 0) return host.block(this.cpu.empty)
    host.op("mfence", FENCE, 0, 0)
  }
}

/**
 * What a locked read-modify-write writes and answers, by kind: the Linux operations as codes
 * with their operands in fields (no closure per operation), or `Apply` with a function.
 */
const enum RmwKind {
  /** `xchg`: writes `a`, answers the old value. */
  Xchg,
  /** `smp_store_mb`: writes `a`, answers nothing. */
  StoreMb,
  /** `cmpxchg`: writes `b` iff the old value is `a`; answers the old value. */
  Cmpxchg,
  /** `try_cmpxchg`: the same, answering whether it stored. */
  TryCmpxchg,
  /** `atomic_add`: adds `a`, answers nothing. */
  Add,
  /** `atomic_inc_return`: adds 1, answers the new value. */
  IncReturn,
  /** `atomic_dec_and_test`: subtracts 1, answers whether the new value is zero. */
  DecAndTest,
  /** `atomic_fetch_or`: ors `a` in, answers the old value. */
  FetchOr,
  /** `set_bit`: sets bit `a`, answers nothing. */
  SetBit,
  /** `clear_bit`: clears bit `a`, answers nothing. */
  ClearBit,
  /** `test_and_set_bit`: sets bit `a`, answers the old bit. */
  TestAndSetBit,
  /** `test_and_clear_bit`: clears bit `a`, answers the old bit. */
  TestAndClearBit,
  /** `rmw(loc, f)`: writes `f(old)`, answers the old value. */
  Apply
}

class Rmw extends Op.Step<unknown> {
  constructor(
    private readonly cpu: Cpu,
    private loc: Loc,
    private rmwKind: RmwKind,
    private a: number,
    private b: number,
    private f: ((old: number) => number) | undefined
  ) {
    super(true, 0)
  }
  reuse(loc: Loc, kind: RmwKind, a: number, b: number, f: ((old: number) => number) | undefined): this {
    renew(this)
    this.loc = loc
    this.rmwKind = kind
    this.a = a
    this.b = b
    this.f = f
    return this
  }
  /** The value written over `old`. */
  private apply(old: number): number {
    switch (this.rmwKind) {
      case RmwKind.Xchg:
      case RmwKind.StoreMb:
        return this.a
      case RmwKind.Cmpxchg:
      case RmwKind.TryCmpxchg:
        return old === this.a ? this.b : old
      case RmwKind.Add:
        return old + this.a
      case RmwKind.IncReturn:
        return old + 1
      case RmwKind.DecAndTest:
        return old - 1
      case RmwKind.FetchOr:
        return orBits(old, this.a)
      case RmwKind.SetBit:
      case RmwKind.TestAndSetBit:
        return withBit(old, this.a)
      case RmwKind.ClearBit:
      case RmwKind.TestAndClearBit:
        return withoutBit(old, this.a)
      case RmwKind.Apply:
        return this.f!(old)
    }
  }
  /** What the operation answers, given the value it replaced. */
  private result(old: number): unknown {
    switch (this.rmwKind) {
      case RmwKind.StoreMb:
      case RmwKind.Add:
      case RmwKind.SetBit:
      case RmwKind.ClearBit:
        return undefined
      case RmwKind.TryCmpxchg:
        return old === this.a
      case RmwKind.IncReturn:
        return old + 1
      case RmwKind.DecAndTest:
        return old - 1 === 0
      case RmwKind.TestAndSetBit:
      case RmwKind.TestAndClearBit:
        return hasBit(old, this.a)
      default:
        return old
    }
  }
  private finish(host: Host, old: number): unknown {
    const now = this.cpu.memory.backend.peek(this.loc.id)
    host.op("rmw", RMW, this.loc.id, now)
    if (now !== old) host.wakeAll(this.loc.changed)
    return this.result(old)
  }
  run(host: Host): unknown {
    if (this.cpu.pending() > 0) return host.block(this.cpu.empty)
    const b = this.cpu.memory.backend
    const old = b.peek(this.loc.id)
    b.write(this.loc.id, this.apply(old))
    return this.finish(host, old)
  }
  override runEffect(host: Host): Effect.Effect<unknown> {
    return Effect.suspend((): Effect.Effect<unknown> => {
      if (this.cpu.pending() > 0) return Effect.succeed(host.block(this.cpu.empty))
      return Effect.map(this.cpu.memory.backend.rmwEffect(this.loc.id, (old) => this.apply(old)), (old) => this.finish(host, old))
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

  /*
   * One operation object of each class, reused once it has been answered: code on one hardware
   * thread yields one operation at a time, so in a run almost every operation reuses its
   * thread's object (an operation made and not yet answered gets a fresh object).
   */
  private load1: Load | undefined = undefined
  private store1: Store | undefined = undefined
  private fence1: Fence | undefined = undefined
  private rmw1: Rmw | undefined = undefined

  constructor(readonly memory: Memory, readonly id: number, readonly name: string, readonly buffer: Buffer) {
    this.notEmpty = Sim.makeWaitQueue(() => `${name} store buffer (empty)`)
    this.empty = Sim.makeWaitQueue(() => `${name} store buffer (draining)`)
  }

  private loadOp(loc: Loc, nr: number): Load {
    const op = this.load1
    if (op !== undefined && op.answered) return op.reuse(loc, nr)
    const fresh = new Load(this, loc)
    fresh.nr = nr
    return (this.load1 = fresh)
  }
  private storeOp(loc: Loc, value: number): Store {
    const op = this.store1
    if (op !== undefined && op.answered) return op.reuse(loc, value)
    return (this.store1 = new Store(this, loc, value))
  }
  private fenceOp(): Fence {
    const op = this.fence1
    if (op !== undefined && op.answered) return op.reuse()
    return (this.fence1 = new Fence(this))
  }
  private rmwOp<A>(loc: Loc, kind: RmwKind, a: number, b: number, f?: (old: number) => number): Sim.Yieldable<A> {
    const op = this.rmw1
    if (op !== undefined && op.answered) return op.reuse(loc, kind, a, b, f) as Sim.Yieldable<A>
    return (this.rmw1 = new Rmw(this, loc, kind, a, b, f)) as Sim.Yieldable<A>
  }

  /** Stores waiting in this thread's buffer. */
  pending(): number {
    return this.memory.backend.pending(this.buffer)
  }

  // ------------------------------------------------------------------ the machine operations

  /** A load: own newest buffered store to `loc`, else memory. */
  load(loc: Loc): Sim.Yieldable<number> {
    return this.loadOp(loc, -1) as Sim.Yieldable<number>
  }

  /** A store: to the tail of the store buffer under TSO, to memory under SC. */
  store(loc: Loc, value: number): Sim.Yieldable<void> {
    return this.storeOp(loc, value)
  }

  /** Blocks until this thread's store buffer is empty. */
  *waitEmpty(): Sim.Gen<void> {
    while (this.pending() > 0) yield* Sim.wait(this.empty)
  }

  /** `mfence`: waits for the store buffer to drain. */
  mfence(): Sim.Yieldable<void> {
    return this.fenceOp()
  }

  /** A locked read-modify-write: drains the buffer, then applies `f` to memory atomically. Returns the old value. */
  rmw(loc: Loc, f: (old: number) => number): Sim.Yieldable<number> {
    return this.rmwOp(loc, RmwKind.Apply, 0, 0, f)
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
    return this.loadOp(loc, -1) as Sim.Yieldable<number>
  }
  /** `WRITE_ONCE(x, v)`: a plain store. */
  WRITE_ONCE(loc: Loc, value: number): Sim.Yieldable<void> {
    return this.storeOp(loc, value)
  }
  /** `smp_load_acquire(p)`: a plain load; x86 loads are not reordered with later accesses. */
  smp_load_acquire(loc: Loc): Sim.Yieldable<number> {
    return this.loadOp(loc, -1) as Sim.Yieldable<number>
  }
  /** `smp_store_release(p, v)`: a plain store; x86 stores are not reordered with earlier accesses. */
  smp_store_release(loc: Loc, value: number): Sim.Yieldable<void> {
    return this.storeOp(loc, value)
  }
  /** `smp_mb()`: a full barrier (the store buffer drains before later loads). */
  smp_mb(): Sim.Yieldable<void> {
    return this.fenceOp()
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
    return this.rmwOp(loc, RmwKind.StoreMb, value, 0)
  }
  /** `xchg(p, v)`: returns the old value. */
  xchg(loc: Loc, value: number): Sim.Yieldable<number> {
    return this.rmwOp(loc, RmwKind.Xchg, value, 0)
  }
  /** `cmpxchg(p, old, new)`: returns the value found; stored `new` iff it equalled `old`. */
  cmpxchg(loc: Loc, expected: number, value: number): Sim.Yieldable<number> {
    return this.rmwOp(loc, RmwKind.Cmpxchg, expected, value)
  }
  /** `try_cmpxchg(p, &old, new)`: true iff it stored. */
  try_cmpxchg(loc: Loc, expected: number, value: number): Sim.Yieldable<boolean> {
    return this.rmwOp(loc, RmwKind.TryCmpxchg, expected, value)
  }
  /** `atomic_read(v)`. */
  atomic_read(loc: Loc): Sim.Yieldable<number> {
    return this.loadOp(loc, -1) as Sim.Yieldable<number>
  }
  /** `atomic_set(v, i)`. */
  atomic_set(loc: Loc, value: number): Sim.Yieldable<void> {
    return this.storeOp(loc, value)
  }
  /** `atomic_add(i, v)`. */
  atomic_add(n: number, loc: Loc): Sim.Yieldable<void> {
    return this.rmwOp(loc, RmwKind.Add, n, 0)
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
    return this.rmwOp(loc, RmwKind.IncReturn, 0, 0)
  }
  /** `atomic_dec_and_test(v)`: true iff the new value is zero. */
  atomic_dec_and_test(loc: Loc): Sim.Yieldable<boolean> {
    return this.rmwOp(loc, RmwKind.DecAndTest, 0, 0)
  }
  /** `atomic_fetch_or(i, v)`: the old value. */
  atomic_fetch_or(mask: number, loc: Loc): Sim.Yieldable<number> {
    return this.rmwOp(loc, RmwKind.FetchOr, mask, 0)
  }
  /** `set_bit(nr, addr)`: `lock bts`. */
  set_bit(nr: number, loc: Loc): Sim.Yieldable<void> {
    return this.rmwOp(loc, RmwKind.SetBit, nr, 0)
  }
  /** `clear_bit(nr, addr)`: `lock btr`. */
  clear_bit(nr: number, loc: Loc): Sim.Yieldable<void> {
    return this.rmwOp(loc, RmwKind.ClearBit, nr, 0)
  }
  /** `test_and_set_bit(nr, addr)`: the old bit. */
  test_and_set_bit(nr: number, loc: Loc): Sim.Yieldable<boolean> {
    return this.rmwOp(loc, RmwKind.TestAndSetBit, nr, 0)
  }
  /** `test_and_clear_bit(nr, addr)`: the old bit. */
  test_and_clear_bit(nr: number, loc: Loc): Sim.Yieldable<boolean> {
    return this.rmwOp(loc, RmwKind.TestAndClearBit, nr, 0)
  }
  /** `test_bit(nr, addr)`: a plain load. */
  test_bit(nr: number, loc: Loc): Sim.Yieldable<boolean> {
    return this.loadOp(loc, nr) as Sim.Yieldable<boolean>
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
