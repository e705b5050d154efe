/**
 * The JS peer: the same kind of work as an exploration, done with fast-check's scheduler (the
 * one `effect` re-exports as `FastCheck`). The toy: 4 actors x 3 rounds; in each round an actor
 * reads a shared counter, yields to the scheduler (one scheduled task), then writes the value
 * it read plus one. A schedule that lets another actor in between a read and its write loses an
 * update, so runs ending with the counter below 12 are "lost updates found".
 *
 * fast-check's scheduler is promise-based (fast-check 3.23, `SchedulerImplem`): `schedule`
 * returns a promise that settles only when `waitOne` picks that task and `waitOne` itself
 * returns a promise, so a run cannot be driven synchronously. `peerStepsPerSecond` is
 * therefore async: await it.
 *
 * A step is one resolved scheduled task: one `waitOne()` that picked one task (12 per run).
 *
 * As specified, every actor reads the counter (0) before the first scheduled task exists, so
 * every run loses updates whatever the schedule: `lostUpdatesFound === runs` is the expected
 * answer, not a measure of exploration. `{ gateStart: true }` makes each actor first wait for a
 * scheduled start task (as a kvmlab actor waits at spawn until the kernel picks it): 16 steps
 * per run, and the lost-update count then depends on the schedules drawn.
 * The schedulers are drawn up front with `FastCheck.sample(FastCheck.scheduler(), ...)`, so
 * the timed part is only the runs: starting the actors and driving them to the end.
 */
import { FastCheck } from "effect"

export interface PeerOptions {
  /** Seed of the schedulers (default 42). */
  readonly seed?: number
  /** Each actor first waits for one scheduled start task (default false: the toy as specified). */
  readonly gateStart?: boolean
}

export interface PeerResult {
  readonly runs: number
  readonly steps: number
  readonly stepsPerSecond: number
  readonly lostUpdatesFound: number
  /**
   * Steps per second of this process's CPU time (user + system, all threads) over the same
   * interval: less disturbed than wall time when other processes share the CPUs.
   */
  readonly stepsPerCpuSecond: number
}

const ACTORS = 4
const ROUNDS = 3

/** One run of the toy under scheduler `s`: the steps taken and the final counter. */
const runOnce = async (s: FastCheck.Scheduler, gateStart: boolean): Promise<{ steps: number; counter: number }> => {
  let counter = 0
  const actor = async () => {
    if (gateStart) await s.schedule(Promise.resolve())
    for (let round = 0; round < ROUNDS; round++) {
      const read = counter
      await s.schedule(Promise.resolve()) // the one scheduling point of the round
      counter = read + 1
    }
  }
  // Each actor runs synchronously up to its first `schedule`, so 4 tasks are pending here. After
  // a task is released, its actor runs on to its next `schedule` (or its end) before `waitOne`'s
  // own promise settles: the actor's reaction to the task's promise was registered first.
  const done = Promise.all(Array.from({ length: ACTORS }, actor))
  let steps = 0
  while (s.count() > 0) {
    await s.waitOne()
    steps++
  }
  await done
  return { steps, counter }
}

/**
 * Runs the toy `runs` times (schedulers drawn from `seed`) and measures the steps per second of
 * the runs alone. Async: fast-check's scheduler has to be awaited.
 */
export const peerStepsPerSecond = async (runs: number, options: PeerOptions = {}): Promise<PeerResult> => {
  const gateStart = options.gateStart ?? false
  const perRun = ACTORS * (ROUNDS + (gateStart ? 1 : 0))
  const schedulers: Array<FastCheck.Scheduler | undefined> = FastCheck.sample(FastCheck.scheduler(), { numRuns: runs, seed: options.seed ?? 42 })
  let steps = 0
  let lostUpdatesFound = 0
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < schedulers.length; i++) {
    // Drop each scheduler once used: it keeps its run's log, and thousands kept alive make the
    // garbage collector, not the scheduling, the measured work.
    const s = schedulers[i]!
    schedulers[i] = undefined
    const r = await runOnce(s, gateStart)
    steps += r.steps
    if (r.counter < ACTORS * ROUNDS) lostUpdatesFound++
  }
  const ns = Number(process.hrtime.bigint() - t0)
  const cpu = process.cpuUsage(cpu0)
  const cpuUs = cpu.user + cpu.system
  if (steps !== runs * perRun) throw new Error(`expected ${runs * perRun} steps, counted ${steps}`)
  return {
    runs: schedulers.length,
    steps,
    stepsPerSecond: Math.round((steps * 1e9) / ns),
    lostUpdatesFound,
    stepsPerCpuSecond: cpuUs > 0 ? Math.round((steps * 1e6) / cpuUs) : 0
  }
}
