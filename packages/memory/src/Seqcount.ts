/**
 * A sequence counter (`include/linux/seqlock.h`): writers make the count odd while they update,
 * readers retry when the count was odd or changed. Writers must be serialised by the caller
 * (a `Spinlock` makes it a seqlock). On x86 the `smp_wmb`/`smp_rmb` here are compiler barriers;
 * TSO's ordering of stores with stores and loads with loads is what makes the protocol work.
 */
import { Effect } from "effect"
import type { Cpu } from "./Cpu.js"
import type { Loc, Memory } from "./Memory.js"

/** A seqcount: one word. */
export class Seqcount {
  constructor(readonly name: string, readonly sequence: Loc) {}
}

/** Allocates a seqcount at 0. */
export const make = (memory: Memory, name: string): Effect.Effect<Seqcount> =>
  Effect.map(memory.alloc(`${name}.sequence`, 0), (loc) => new Seqcount(name, loc))

/** `write_seqcount_begin(s)`: `s->sequence++; smp_wmb();`. */
export const write_seqcount_begin = (cpu: Cpu, s: Seqcount): Effect.Effect<void> =>
  Effect.flatMap(cpu.READ_ONCE(s.sequence), (seq) =>
    Effect.zipRight(
      cpu.WRITE_ONCE(s.sequence, seq + 1),
      cpu.smp_wmb() // pairs with smp_rmb() in read_seqcount_begin(): count odd before the data
    ))

/** `write_seqcount_end(s)`: `smp_wmb(); s->sequence++;`. */
export const write_seqcount_end = (cpu: Cpu, s: Seqcount): Effect.Effect<void> =>
  Effect.zipRight(
    cpu.smp_wmb(), // pairs with smp_rmb() in read_seqcount_retry(): data before the count turns even
    Effect.flatMap(cpu.READ_ONCE(s.sequence), (seq) => cpu.WRITE_ONCE(s.sequence, seq + 1))
  )

/** `read_seqcount_begin(s)`: waits for an even count, then `smp_rmb()`. Returns the count. */
export const read_seqcount_begin = (cpu: Cpu, s: Seqcount): Effect.Effect<number> =>
  Effect.flatMap(cpu.smp_cond_load_acquire(s.sequence, (v) => v % 2 === 0), (seq) =>
    Effect.as(cpu.smp_rmb() /* pairs with smp_wmb() in write_seqcount_begin() */, seq))

/** `read_seqcount_retry(s, start)`: `smp_rmb();` then true iff the count moved. */
export const read_seqcount_retry = (cpu: Cpu, s: Seqcount, start: number): Effect.Effect<boolean> =>
  Effect.zipRight(
    cpu.smp_rmb(), // pairs with smp_wmb() in write_seqcount_end()
    Effect.map(cpu.READ_ONCE(s.sequence), (seq) => seq !== start)
  )

/** Reads with `body` until a read section completes without a concurrent write. */
export const read = <A>(cpu: Cpu, s: Seqcount, body: Effect.Effect<A>): Effect.Effect<A> => {
  const loop: Effect.Effect<A> = Effect.flatMap(read_seqcount_begin(cpu, s), (start) =>
    Effect.flatMap(body, (a) => Effect.flatMap(read_seqcount_retry(cpu, s, start), (retry) => (retry ? loop : Effect.succeed(a)))))
  return loop
}
