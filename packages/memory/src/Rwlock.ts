/**
 * A reader-writer lock on the shared memory, after the kernel's queued rwlock
 * (`include/asm-generic/qrwlock.h`, `kernel/locking/qrwlock.c`): one word `cnts` with the writer
 * byte (`_QW_LOCKED`), the waiting-writer bit (`_QW_WAITING`) and the reader count above
 * `_QR_SHIFT`, plus the `wait_lock` spinlock that queues the slow paths, so a waiting writer
 * holds new readers off (the lock is fair, not reader-preferring).
 *
 * One difference: `queued_write_unlock` is `smp_store_release(&lock->wlocked, 0)`, a byte store
 * into the word readers add to; memory here holds whole words, so the model clears the writer
 * byte with a locked read-modify-write (on x86 that is also a full barrier, stronger than the
 * release the kernel needs).
 */
import type { Sim } from "@kvmlab/sim"
import type { Cpu } from "./Cpu.js"
import type { Loc, Memory } from "./Memory.js"
import * as Spinlock from "./Spinlock.js"

/** `_QW_WAITING`: a writer is waiting. */
export const _QW_WAITING = 0x100
/** `_QW_LOCKED`: a writer holds the lock. */
export const _QW_LOCKED = 0x0ff
/** `_QW_WMASK`: the writer mask. */
export const _QW_WMASK = 0x1ff
/** `_QR_BIAS`: one reader (`1 << _QR_SHIFT`, `_QR_SHIFT` = 9). */
export const _QR_BIAS = 0x200

/** `struct qrwlock`. */
export class Rwlock {
  /** Ghost: the thread holding it for write, or -1. */
  writer = -1
  /** Ghost: the threads holding it for read. */
  readonly readers = new Set<number>()
  constructor(readonly name: string, readonly cnts: Loc, readonly wait_lock: Spinlock.Spinlock) {}
}

/** Allocates a free rwlock. */
export const make = (memory: Memory, name: string): Rwlock => new Rwlock(name, memory.alloc(`${name}.cnts`, 0), Spinlock.make(memory, `${name}.wait_lock`))

const readAcquired = (cpu: Cpu, lock: Rwlock): void => {
  if (lock.writer !== -1) throw new Error(`rwlock.exclusion: ${cpu.name} read-locked ${lock.name} held for write by thread ${lock.writer}`)
  lock.readers.add(cpu.id)
}

/** `queued_read_lock_slowpath` (process context): leave, queue on `wait_lock`, come back, wait for the writer to go. */
function* queued_read_lock_slowpath(cpu: Cpu, lock: Rwlock): Sim.Gen<void> {
  yield* cpu.atomic_add(-_QR_BIAS, lock.cnts)
  yield* Spinlock.spin_lock(cpu, lock.wait_lock)
  yield* cpu.atomic_add(_QR_BIAS, lock.cnts)
  // The ACQUIRE of the wait keeps the critical section after it.
  yield* cpu.smp_cond_load_acquire(lock.cnts, (v) => (v & _QW_LOCKED) === 0)
  yield* Spinlock.spin_unlock(cpu, lock.wait_lock)
}

/** `read_lock(lock)` (`queued_read_lock`): add a reader; if a writer holds or waits, the slow path. */
export function* read_lock(cpu: Cpu, lock: Rwlock): Sim.Gen<void> {
  const cnts = (yield* cpu.rmw(lock.cnts, (v) => v + _QR_BIAS)) + _QR_BIAS // atomic_add_return_acquire
  if ((cnts & _QW_WMASK) !== 0) yield* queued_read_lock_slowpath(cpu, lock)
  readAcquired(cpu, lock)
}

/**
 * `read_trylock(lock)` (`queued_read_trylock`): no writer holding or waiting, then add a reader
 * and look again; a writer that came in between makes it back out. True iff acquired.
 */
export function* read_trylock(cpu: Cpu, lock: Rwlock): Sim.Gen<boolean> {
  if (((yield* cpu.atomic_read(lock.cnts)) & _QW_WMASK) !== 0) return false
  const cnts = (yield* cpu.rmw(lock.cnts, (v) => v + _QR_BIAS)) + _QR_BIAS // atomic_add_return_acquire
  if ((cnts & _QW_WMASK) === 0) {
    readAcquired(cpu, lock)
    return true
  }
  yield* cpu.atomic_add(-_QR_BIAS, lock.cnts)
  return false
}

/** `read_unlock(lock)`: `atomic_sub_return_release(_QR_BIAS, &lock->cnts)`. */
export function* read_unlock(cpu: Cpu, lock: Rwlock): Sim.Gen<void> {
  if (!lock.readers.delete(cpu.id)) throw new Error(`${cpu.name} read-unlocked ${lock.name}, which it does not hold`)
  yield* cpu.atomic_add(-_QR_BIAS, lock.cnts)
}

const writeAcquired = (cpu: Cpu, lock: Rwlock): void => {
  if (lock.writer !== -1 || lock.readers.size > 0) {
    throw new Error(`rwlock.exclusion: ${cpu.name} write-locked ${lock.name} (writer ${lock.writer}, ${lock.readers.size} readers)`)
  }
  lock.writer = cpu.id
}

/** `queued_write_lock_slowpath`: queue on `wait_lock`, raise `_QW_WAITING`, wait for the readers to leave. */
function* queued_write_lock_slowpath(cpu: Cpu, lock: Rwlock): Sim.Gen<void> {
  yield* Spinlock.spin_lock(cpu, lock.wait_lock)
  // Try to acquire the lock directly if no reader is present.
  if ((yield* cpu.atomic_read(lock.cnts)) !== 0 || !(yield* cpu.try_cmpxchg(lock.cnts, 0, _QW_LOCKED))) {
    yield* cpu.atomic_fetch_or(_QW_WAITING, lock.cnts)
    // When no more readers or writers, set the locked flag.
    while (!(yield* cpu.try_cmpxchg(lock.cnts, yield* cpu.smp_cond_load_relaxed(lock.cnts, (v) => v === _QW_WAITING), _QW_LOCKED)));
  }
  yield* Spinlock.spin_unlock(cpu, lock.wait_lock)
}

/** `write_lock(lock)` (`queued_write_lock`): 0 -> `_QW_LOCKED`, else the slow path. */
export function* write_lock(cpu: Cpu, lock: Rwlock): Sim.Gen<void> {
  if (!(yield* cpu.try_cmpxchg(lock.cnts, 0, _QW_LOCKED))) yield* queued_write_lock_slowpath(cpu, lock)
  writeAcquired(cpu, lock)
}

/** `write_unlock(lock)`: clear the writer byte (see the header for the locked operation). */
export function* write_unlock(cpu: Cpu, lock: Rwlock): Sim.Gen<void> {
  if (lock.writer !== cpu.id) throw new Error(`${cpu.name} write-unlocked ${lock.name} held by thread ${lock.writer}`)
  lock.writer = -1
  yield* cpu.rmw(lock.cnts, (v) => v - (v & _QW_LOCKED))
}
