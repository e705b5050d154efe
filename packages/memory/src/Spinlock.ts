/**
 * A spinlock on the shared memory, shaped like the x86 queued spinlock's fast and slow paths
 * (`kernel/locking/qspinlock.c`, `include/asm-generic/qspinlock.h`): acquire with a locked
 * `try_cmpxchg(0 -> 1)`, otherwise wait (kernel-visibly) for the word to read 0 and try again;
 * release with `smp_store_release(&lock->locked, 0)`. Waiters are not queued in FIFO order,
 * which is the test-and-test-and-set behaviour qspinlock degrades to under contention.
 * The holder is tracked so that hold times and lock-holder preemption can be observed.
 */
import type { Sim } from "@kvmlab/sim"
import type { Cpu } from "./Cpu.js"
import type { Loc, Memory } from "./Memory.js"

/** A spinlock: one word, 0 free, 1 held. */
export class Spinlock {
  /** Ghost: the id of the holding thread, or -1. Bookkeeping for checks; not part of the protocol. */
  holder = -1
  /** Times the lock was taken. */
  acquisitions = 0
  constructor(readonly name: string, readonly locked: Loc) {}
}

/** Thrown (an actor failure, so a violation) if the protocol ever lets two threads hold the lock. */
const MUTEX = "spinlock.mutual-exclusion"

/** Allocates a free spinlock. */
export const make = (memory: Memory, name: string): Spinlock => new Spinlock(name, memory.alloc(`${name}.locked`, 0))

const acquired = (cpu: Cpu, lock: Spinlock): void => {
  if (lock.holder !== -1) throw new Error(`${MUTEX}: ${cpu.name} acquired ${lock.name} held by thread ${lock.holder}`)
  lock.holder = cpu.id
  lock.acquisitions++
}

/** `spin_lock(lock)`. */
export function* spin_lock(cpu: Cpu, lock: Spinlock): Sim.Gen<void> {
  while (!(yield* cpu.try_cmpxchg(lock.locked, 0, 1))) {
    // Slow path: spin reading the word until it looks free (a kernel-visible wait), then retry.
    yield* cpu.smp_cond_load_relaxed(lock.locked, (v) => v === 0)
  }
  acquired(cpu, lock)
}

/** `spin_trylock(lock)`: true iff acquired. */
export function* spin_trylock(cpu: Cpu, lock: Spinlock): Sim.Gen<boolean> {
  if (!(yield* cpu.try_cmpxchg(lock.locked, 0, 1))) return false
  acquired(cpu, lock)
  return true
}

/** `spin_unlock(lock)`: the release store pairs with the acquiring `try_cmpxchg` of the next holder. */
export function* spin_unlock(cpu: Cpu, lock: Spinlock): Sim.Gen<void> {
  if (lock.holder !== cpu.id) throw new Error(`${cpu.name} released ${lock.name} held by thread ${lock.holder}`)
  lock.holder = -1
  yield* cpu.smp_store_release(lock.locked, 0)
}

/** Runs `body` with the lock held. */
export function* withLock<A>(cpu: Cpu, lock: Spinlock, body: () => Sim.Gen<A>): Sim.Gen<A> {
  yield* spin_lock(cpu, lock)
  const a = yield* body()
  yield* spin_unlock(cpu, lock)
  return a
}
