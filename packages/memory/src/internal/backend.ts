/**
 * Where the memory's state lives: plain arrays for the `fast` engine, STM `TRef`s for the
 * `effect` engine (the reference). Both apply the same x86-TSO rules (`Tso.ts`); the steps in
 * `Cpu.ts` decide what to hash, wake and wait for, so the two backends cannot drift apart in
 * anything but where a value is kept.
 */
import { Effect, STM, TRef } from "effect"
import { type BufferedStore, forward } from "../Tso.js"
import { peek } from "./peek.js"

/** A hardware thread's store buffer, in the backend's representation. */
export type Buffer = Array<BufferedStore> | TRef.TRef<ReadonlyArray<BufferedStore>>

export interface Backend {
  readonly kind: "plain" | "stm"
  /** Allocates a cell holding `init`; cells are numbered from 0 in allocation order. */
  alloc(init: number): void
  /** The cell's value in memory now (not in any buffer). */
  peek(addr: number): number
  newBuffer(): Buffer
  pending(b: Buffer): number
  /** The oldest buffered store, or undefined. */
  oldest(b: Buffer): BufferedStore | undefined
  // plain forms
  load(b: Buffer, addr: number): number
  buffer(b: Buffer, addr: number, value: number): void
  write(addr: number, value: number): void
  /** Moves the oldest buffered store to memory; returns it. */
  drainOne(b: Buffer): BufferedStore
  // STM forms
  loadEffect(b: Buffer, addr: number): Effect.Effect<number>
  bufferEffect(b: Buffer, addr: number, value: number): Effect.Effect<void>
  writeEffect(addr: number, value: number): Effect.Effect<void>
  /** Applies `f` to the cell atomically; returns the old value. */
  rmwEffect(addr: number, f: (old: number) => number): Effect.Effect<number>
  drainOneEffect(b: Buffer): Effect.Effect<BufferedStore>
}

/** Plain mutable state: the fast engine. Buffers are arrays used as FIFOs. */
export class PlainBackend implements Backend {
  readonly kind = "plain" as const
  private readonly cells: Array<number> = []
  alloc(init: number): void {
    this.cells.push(init)
  }
  peek(addr: number): number {
    return this.cells[addr]!
  }
  newBuffer(): Buffer {
    return []
  }
  pending(b: Buffer): number {
    return (b as Array<BufferedStore>).length
  }
  oldest(b: Buffer): BufferedStore | undefined {
    return (b as Array<BufferedStore>)[0]
  }
  load(b: Buffer, addr: number): number {
    const buf = b as Array<BufferedStore>
    if (buf.length === 0) return this.cells[addr]!
    const v = forward(buf, addr)
    return v === undefined ? this.cells[addr]! : v
  }
  buffer(b: Buffer, addr: number, value: number): void {
    ;(b as Array<BufferedStore>).push({ addr, value })
  }
  write(addr: number, value: number): void {
    this.cells[addr] = value
  }
  drainOne(b: Buffer): BufferedStore {
    const e = (b as Array<BufferedStore>).shift()!
    this.cells[e.addr] = e.value
    return e
  }
  loadEffect(b: Buffer, addr: number) {
    return Effect.sync(() => this.load(b, addr))
  }
  bufferEffect(b: Buffer, addr: number, value: number) {
    return Effect.sync(() => this.buffer(b, addr, value))
  }
  writeEffect(addr: number, value: number) {
    return Effect.sync(() => this.write(addr, value))
  }
  rmwEffect(addr: number, f: (old: number) => number) {
    return Effect.sync(() => {
      const old = this.cells[addr]!
      this.cells[addr] = f(old)
      return old
    })
  }
  drainOneEffect(b: Buffer) {
    return Effect.sync(() => this.drainOne(b))
  }
}

type StmBuffer = TRef.TRef<ReadonlyArray<BufferedStore>>

/**
 * `TRef.make` is an STM transaction; committing one per allocation would start a fiber each
 * time. Outside any transaction (allocation happens in model code, one actor at a time) a TRef
 * is just its class's instance: take the class from one made the official way. The memory test
 * holds `peek` and this to `STM.commit(TRef.get)`, so an effect upgrade that changes them fails.
 */
let TRefClass: (new (value: unknown) => TRef.TRef<unknown>) | undefined
const makeTRef = <A>(value: A): TRef.TRef<A> => {
  TRefClass ??= Object.getPrototypeOf(Effect.runSync(STM.commit(TRef.make(0)))).constructor
  return new TRefClass!(value) as TRef.TRef<A>
}

/**
 * State in STM, as the design card has it: a `TRef` per cell and per store buffer, every
 * operation one transaction. Used by the effect engine; its plain forms exist only for reads
 * outside a transaction (`peek`, `pending`), which are safe because one actor runs at a time.
 */
export class StmBackend implements Backend {
  readonly kind = "stm" as const
  private readonly cells: Array<TRef.TRef<number>> = []
  alloc(init: number): void {
    this.cells.push(makeTRef(init))
  }
  /** @internal for the test that guards the TRef internals */
  ref(addr: number): TRef.TRef<number> {
    return this.cells[addr]!
  }
  peek(addr: number): number {
    return peek(this.cells[addr]!)
  }
  newBuffer(): Buffer {
    return makeTRef<ReadonlyArray<BufferedStore>>([])
  }
  pending(b: Buffer): number {
    return peek(b as StmBuffer).length
  }
  oldest(b: Buffer): BufferedStore | undefined {
    return peek(b as StmBuffer)[0]
  }
  load(): number {
    throw new Error("StmBackend: loads run as transactions (loadEffect)")
  }
  buffer(): void {
    throw new Error("StmBackend: stores run as transactions (bufferEffect)")
  }
  write(): void {
    throw new Error("StmBackend: writes run as transactions (writeEffect)")
  }
  drainOne(): BufferedStore {
    throw new Error("StmBackend: drains run as transactions (drainOneEffect)")
  }
  loadEffect(b: Buffer, addr: number) {
    const cell = this.cells[addr]!
    return STM.commit(STM.flatMap(TRef.get(b as StmBuffer), (buf) => {
      const v = forward(buf, addr)
      return v === undefined ? TRef.get(cell) : STM.succeed(v)
    }))
  }
  bufferEffect(b: Buffer, addr: number, value: number) {
    return STM.commit(TRef.update(b as StmBuffer, (buf) => [...buf, { addr, value }]))
  }
  writeEffect(addr: number, value: number) {
    return STM.commit(TRef.set(this.cells[addr]!, value))
  }
  rmwEffect(addr: number, f: (old: number) => number) {
    return STM.commit(TRef.modify(this.cells[addr]!, (old) => [old, f(old)] as const))
  }
  drainOneEffect(b: Buffer) {
    return STM.commit(STM.flatMap(TRef.get(b as StmBuffer), (buf) => {
      const oldest = buf[0]!
      return STM.as(STM.zipRight(TRef.set(b as StmBuffer, buf.slice(1)), TRef.set(this.cells[oldest.addr]!, oldest.value)), oldest)
    }))
  }
}
