/**
 * Peterson's lock for two CPUs, from plain loads and stores, on x86-TSO: what a kernel would
 * write without a locked instruction. Each CPU announces its interest (`flag[me] = 1`), gives the
 * other the turn, then waits while the other is interested and has the turn. Announcing is a
 * store and checking is a load of another location: the one reordering x86 allows (a store sits
 * in the store buffer while a later load reads memory), so the smp_mb() between them is required.
 */
import { type Cpu, Memory } from "@kvmlab/memory"
import { Sim } from "@kvmlab/sim"

/** The bug switches: `noMb` drops the smp_mb() of `peterson_lock()`. */
export interface Bugs {
  readonly noMb: boolean
}

/** The lock: one interest flag per CPU and whose turn it is to wait. */
export interface PetersonLock {
  readonly flag: readonly [Memory.Loc, Memory.Loc]
  readonly turn: Memory.Loc
}

export const NR_CPUS = 2
/** Critical sections each CPU runs. */
export const LOOPS = 2
/**
 * The spin's `cpu_relax()`, as a wait the kernel sees: until `flag[other]` changes in memory, or
 * RELAX_NS of virtual time pass (the other CPU may change `turn` instead; under `random` and
 * `swarm` virtual time only moves when nothing else can run).
 */
const RELAX_NS = 100

/** `peterson_lock(lock)` on CPU `me`. */
export function* peterson_lock(cpu: Cpu.Cpu, lock: PetersonLock, me: 0 | 1, bugs: Bugs): Sim.Gen<void> {
  const other = me === 0 ? 1 : 0
  yield* cpu.WRITE_ONCE(lock.flag[me], 1)
  yield* cpu.WRITE_ONCE(lock.turn, other)
  // Pairs with the smp_mb() in the other CPU's peterson_lock(): our flag reaches memory before
  // we read theirs, so at least one of us sees the other's interest (store->load ordering).
  if (!bugs.noMb) yield* cpu.smp_mb()
  // while (READ_ONCE(flag[other]) && READ_ONCE(turn) == other) cpu_relax();
  for (;;) {
    if ((yield* cpu.READ_ONCE(lock.flag[other])) === 0) return
    if ((yield* cpu.READ_ONCE(lock.turn)) !== other) return
    yield* Sim.waitFor(lock.flag[other].changed, RELAX_NS)
  }
}

/** `peterson_unlock(lock)`: the release pairs with the other CPU's READ_ONCE(flag[me]) in peterson_lock(). */
export function* peterson_unlock(cpu: Cpu.Cpu, lock: PetersonLock, me: 0 | 1): Sim.Gen<void> {
  yield* cpu.smp_store_release(lock.flag[me], 0)
}

/**
 * One run: two CPUs each take the lock LOOPS times and increment a shared counter inside it
 * (a plain load and store, as a critical section does). MUTEX-1: at most one CPU in the
 * critical section; checked on entry against a ghost count of the CPUs inside.
 */
export const program = (bugs: Bugs): Sim.Program<number> =>
  function*() {
    const k = yield* Sim.kernel()
    const mem = Memory.make(k, { model: "tso" })
    const lock: PetersonLock = { flag: [mem.alloc("flag[0]"), mem.alloc("flag[1]")], turn: mem.alloc("turn") }
    const counter = mem.alloc("counter")
    const inside: Array<string> = [] // ghost state: who is in the critical section
    const cpus = []
    for (const me of [0, 1] as const) {
      cpus.push(yield* Sim.spawn(`cpu${me}`, function*() {
        const cpu = yield* mem.attach(`cpu${me}`)
        for (let i = 0; i < LOOPS; i++) {
          yield* peterson_lock(cpu, lock, me, bugs)
          yield* Sim.check(k, "MUTEX-1", inside.length === 0, () => `cpu${me} entered the critical section while ${inside.join(", ")} was in it`)
          inside.push(cpu.name)
          yield* cpu.WRITE_ONCE(counter, (yield* cpu.READ_ONCE(counter)) + 1)
          inside.pop()
          yield* peterson_unlock(cpu, lock, me)
        }
      }))
    }
    for (const c of cpus) yield* Sim.join(c)
    yield* mem.quiesce()
    yield* Sim.check(k, "MUTEX-2", mem.peek(counter) === NR_CPUS * LOOPS, () => `counter is ${mem.peek(counter)}, expected ${NR_CPUS * LOOPS}`)
    return mem.peek(counter)
  }
