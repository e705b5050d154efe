/**
 * A spinlock on the shared memory, shaped like the x86 queued spinlock's fast and slow paths
 * (`kernel/locking/qspinlock.c`, `include/asm-generic/qspinlock.h`): acquire with a locked
 * `try_cmpxchg(0 -> 1)`, otherwise wait (kernel-visibly) for the word to read 0 and try again;
 * release with `smp_store_release(&lock->locked, 0)`. Waiters are not queued in FIFO order,
 * which is the test-and-test-and-set behaviour qspinlock degrades to under contention.
 * The holder is tracked so that hold times and lock-holder preemption can be observed.
 */
import { Effect } from "effect"
import type { Cpu } from "./Cpu.js"
import type { Loc, Memory } from "./Memory.js"

/** A spinlock: one word, 0 free, 1 held. */
export class Spinlock {
  /** The id of the holding thread, or -1. Bookkeeping for checks; not part of the protocol. */
  holder = -1
  /** Times the lock was taken. */
  acquisitions = 0
  constructor(readonly name: string, readonly locked: Loc) {}
}

/** Raised (as a defect) if the protocol ever lets two threads hold the lock. */
const MUTEX = "spinlock.mutual-exclusion"

/** Allocates a free spinlock. */
export const make = (memory: Memory, name: string): Effect.Effect<Spinlock> =>
  Effect.map(memory.alloc(`${name}.locked`, 0), (loc) => new Spinlock(name, loc))

const acquired = (cpu: Cpu, lock: Spinlock): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (lock.holder !== -1) return Effect.dieMessage(`${MUTEX}: ${cpu.name} acquired ${lock.name} held by thread ${lock.holder}`)
    lock.holder = cpu.id
    lock.acquisitions++
    return Effect.void
  })

/** `spin_lock(lock)`. */
export const spin_lock = (cpu: Cpu, lock: Spinlock): Effect.Effect<void> => {
  const loop: Effect.Effect<void> = Effect.flatMap(cpu.try_cmpxchg(lock.locked, 0, 1), (ok) =>
    ok
      ? acquired(cpu, lock)
      // Slow path: spin reading the word until it looks free (a kernel-visible wait), then retry.
      : Effect.zipRight(cpu.smp_cond_load_relaxed(lock.locked, (v) => v === 0), loop))
  return loop
}

/** `spin_trylock(lock)`: true iff acquired. */
export const spin_trylock = (cpu: Cpu, lock: Spinlock): Effect.Effect<boolean> =>
  Effect.flatMap(cpu.try_cmpxchg(lock.locked, 0, 1), (ok) => (ok ? Effect.as(acquired(cpu, lock), true) : Effect.succeed(false)))

/** `spin_unlock(lock)`: the release store pairs with the acquiring `try_cmpxchg` of the next holder. */
export const spin_unlock = (cpu: Cpu, lock: Spinlock): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (lock.holder !== cpu.id) return Effect.dieMessage(`${cpu.name} released ${lock.name} held by thread ${lock.holder}`)
    lock.holder = -1
    return cpu.smp_store_release(lock.locked, 0)
  })

/** Runs `body` with the lock held. */
export const withLock = <A, E, R>(cpu: Cpu, lock: Spinlock, body: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.zipRight(spin_lock(cpu, lock), Effect.zipLeft(body, spin_unlock(cpu, lock)))
