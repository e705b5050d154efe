/**
 * A sequence counter (`include/linux/seqlock.h`): writers make the count odd while they update,
 * readers retry when the count was odd or changed. Writers must be serialised by the caller
 * (a `Spinlock` makes it a seqlock). On x86 the `smp_wmb`/`smp_rmb` here are compiler barriers;
 * TSO's ordering of stores with stores and loads with loads is what makes the protocol work.
 */
import type { Sim } from "@kvmlab/sim"
import type { Cpu } from "./Cpu.js"
import type { Loc, Memory } from "./Memory.js"

/** A seqcount: one word. */
export class Seqcount {
  constructor(readonly name: string, readonly sequence: Loc) {}
}

/** Allocates a seqcount at 0. */
export const make = (memory: Memory, name: string): Seqcount => new Seqcount(name, memory.alloc(`${name}.sequence`, 0))

/** `write_seqcount_begin(s)`: `s->sequence++; smp_wmb();`. */
export function* write_seqcount_begin(cpu: Cpu, s: Seqcount): Sim.Gen<void> {
  const seq = yield* cpu.READ_ONCE(s.sequence)
  yield* cpu.WRITE_ONCE(s.sequence, seq + 1)
  yield* cpu.smp_wmb() // pairs with smp_rmb() in read_seqcount_begin(): count odd before the data
}

/** `write_seqcount_end(s)`: `smp_wmb(); s->sequence++;`. */
export function* write_seqcount_end(cpu: Cpu, s: Seqcount): Sim.Gen<void> {
  yield* cpu.smp_wmb() // pairs with smp_rmb() in read_seqcount_retry(): data before the count turns even
  const seq = yield* cpu.READ_ONCE(s.sequence)
  yield* cpu.WRITE_ONCE(s.sequence, seq + 1)
}

/** `read_seqcount_begin(s)`: waits for an even count, then `smp_rmb()`. Returns the count. */
export function* read_seqcount_begin(cpu: Cpu, s: Seqcount): Sim.Gen<number> {
  const seq = yield* cpu.smp_cond_load_acquire(s.sequence, (v) => v % 2 === 0)
  yield* cpu.smp_rmb() // pairs with smp_wmb() in write_seqcount_begin()
  return seq
}

/** `read_seqcount_retry(s, start)`: `smp_rmb();` then true iff the count moved. */
export function* read_seqcount_retry(cpu: Cpu, s: Seqcount, start: number): Sim.Gen<boolean> {
  yield* cpu.smp_rmb() // pairs with smp_wmb() in write_seqcount_end()
  return (yield* cpu.READ_ONCE(s.sequence)) !== start
}

/** Reads with `body` until a read section completes without a concurrent write. */
export function* read<A>(cpu: Cpu, s: Seqcount, body: () => Sim.Gen<A>): Sim.Gen<A> {
  for (;;) {
    const start = yield* read_seqcount_begin(cpu, s)
    const a = yield* body()
    if (!(yield* read_seqcount_retry(cpu, s, start))) return a
  }
}
