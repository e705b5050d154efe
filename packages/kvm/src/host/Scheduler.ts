/**
 * The host scheduler for overcommit: vCPU threads pinned to physical CPUs, one runqueue per CPU,
 * round-robin with a time slice (EEVDF's base slice, or CFS's share of the scheduling latency). A thread runs only
 * while it is its CPU's `current`. The tick preempts a thread in guest mode by forcing a VM exit
 * (an external-interrupt exit, at an instruction boundary); the preemption itself happens in
 * `vcpu_run`'s loop, through `schedule()` and the KVM preempt notifiers.
 */
import { Mailbox, Prng, Sim } from "@kvmlab/sim"
import type { Costs } from "../Costs.js"
import { Dispatch, SCHED_MAILBOX_CAPACITY, type SchedMessage } from "./Protocol.js"
import { ESRCH, type HostCpu } from "../vcpu/Sched.js"
import type { VcpuState } from "../vcpu/State.js"

export class Runqueue {
  current: VcpuState | undefined = undefined
  readonly queue: Array<VcpuState> = []
  sliceEnd = 0
  /** TIF_NEED_RESCHED of the current thread: set by the tick, cleared by the switch. */
  needResched = false
  /** The message every switch to a thread on this CPU sends it (messages are immutable). */
  readonly dispatch: Dispatch
  constructor(readonly cpu: number) {
    this.dispatch = new Dispatch({ cpu })
  }
}

/** How long a thread runs before the tick lets the next one have the CPU, by the runqueue's nr_running. */
export interface SlicePolicy {
  readonly name: "eevdf" | "cfs"
  readonly slice: (nr_running: number) => number
}

/**
 * The slice of `sched` (spec §10.1): EEVDF's fixed base slice (`timeSliceNs`), or CFS's
 * `sched_slice`: the scheduling latency shared among the runnable tasks, at least the minimum
 * granularity (`schedLatencyNs / nr_running`, at least `timeSliceNs`: 12 ms for 2 tasks, 8 ms for 3).
 */
export const slicePolicy = (sched: "eevdf" | "cfs", costs: Costs): SlicePolicy =>
  sched === "eevdf"
    ? { name: sched, slice: () => costs.timeSliceNs }
    : { name: sched, slice: (n) => Math.max(costs.schedLatencyNs / Math.max(1, n), costs.timeSliceNs) }

/**
 * The host scheduler of a scenario's `pcpus` CPUs: the slice of `sched`, and the seed of its
 * search-strategy tick drawn from the run's kernel now.
 */
export const forScenario = (k: Sim.Kernel, pcpus: number, sched: "eevdf" | "cfs", costs: Costs): Scheduler =>
  new Scheduler(pcpus, slicePolicy(sched, costs), k, k.randomBetween(0, 0x7fffffff))

export class Scheduler {
  readonly rqs: Array<Runqueue>
  private readonly prng: Prng.Prng
  /** Each thread's scheduler mailbox, made when it first asks for a CPU. */
  private readonly mailboxes = new Map<VcpuState, Mailbox.Mailbox<SchedMessage>>()
  /**
   * Under a search strategy virtual time does not advance, so slices never end: the tick then
   * preempts at a check with probability `searchPreemptPercent`, drawn from `seed`.
   */
  constructor(pcpus: number, readonly policy: SlicePolicy, readonly k: Sim.Kernel, seed: number, readonly searchPreemptPercent = 5) {
    this.rqs = Array.from({ length: pcpus }, (_, i) => new Runqueue(i))
    this.prng = new Prng.Prng(seed)
  }

  rq(v: VcpuState): Runqueue {
    return this.rqs[v.cpu]!
  }

  /**
   * The thread starts or wakes (`try_to_wake_up()`): on an idle CPU it runs at once; otherwise it
   * queues and `resched_curr` sends the CPU a reschedule IPI, so a current thread spinning in
   * the guest leaves its wait and meets the tick.
   */
  *acquire(v: VcpuState): Sim.Gen<void> {
    const rq = this.rq(v)
    if (rq.current === undefined) {
      rq.current = v
      rq.sliceEnd = this.k.now + this.policy.slice(1 + rq.queue.length)
      return
    }
    rq.queue.push(v)
    rq.current.pcpu.post(this.k, undefined)
    yield* this.waitTurn(v)
  }

  /**
   * `need_resched()`: TIF_NEED_RESCHED, which the tick (`scheduler_tick`) sets once the slice is
   * used up and another thread is waiting for the CPU; it stays set until the switch.
   */
  need_resched(v: VcpuState): boolean {
    const rq = this.rq(v)
    if (rq.queue.length === 0) return false
    if (!rq.needResched) rq.needResched = this.k.timing ? this.k.now >= rq.sliceEnd : this.prng.int(100) < this.searchPreemptPercent
    return rq.needResched
  }

  /** Virtual ns until the tick would preempt `v` (Infinity when nothing else wants its CPU). */
  untilResched(v: VcpuState): number {
    const rq = this.rq(v)
    if (rq.queue.length === 0) return Infinity
    // Searching: wake up as soon as nothing else can run, so the tick gets its chance.
    return this.k.timing ? Math.max(1, rq.sliceEnd - this.k.now) : 1
  }

  /** `schedule()` of a still-runnable `v`: the next queued thread gets the CPU, `v` queues behind. */
  *switchOut(v: VcpuState): Sim.Gen<void> {
    const rq = this.rq(v)
    const next = rq.queue.shift()
    if (next === undefined) return
    rq.queue.push(v)
    yield* this.switchTo(rq, next)
    yield* this.waitTurn(v)
  }

  /**
   * `schedule()` of a task that sleeps (or exits): it leaves the runqueue and the next queued
   * thread gets the CPU.
   */
  *sleep(v: VcpuState): Sim.Gen<void> {
    const rq = this.rq(v)
    if (rq.current !== v) {
      const i = rq.queue.indexOf(v)
      if (i >= 0) rq.queue.splice(i, 1)
      return
    }
    const next = rq.queue.shift()
    if (next !== undefined) yield* this.switchTo(rq, next)
    else {
      rq.current = undefined
      rq.needResched = false
    }
  }

  /** `__schedule()` picked `next`: it is the CPU's current thread, with a new slice; the switch is a message to it. */
  private *switchTo(rq: Runqueue, next: VcpuState): Sim.Gen<void> {
    rq.current = next
    rq.sliceEnd = this.k.now + this.policy.slice(1 + rq.queue.length)
    rq.needResched = false
    yield* this.mailboxOf(next).send(rq.dispatch)
  }

  private mailboxOf(v: VcpuState): Mailbox.Mailbox<SchedMessage> {
    let box = this.mailboxes.get(v)
    if (box === undefined) {
      box = Mailbox.make<SchedMessage>(this.k, `${v.name} scheduler`, SCHED_MAILBOX_CAPACITY)
      this.mailboxes.set(v, box)
    }
    return box
  }

  /** The runqueue `v` is queued on (runnable, not running), if any. */
  private queuedOn(v: VcpuState): Runqueue | undefined {
    const rq = this.rq(v)
    return rq.queue.includes(v) ? rq : undefined
  }

  /**
   * `yield_to(p, preempt = true)` from the running `v`: `yield_to_task_fair` makes `p` its CPU's
   * next pick (`set_next_buddy`) and `v` yields; on another CPU `resched_curr` makes that CPU's
   * current thread switch at its next check. `v`'s own CPU is marked for rescheduling when others
   * wait there: the caller's `schedule()` lets them run.
   */
  *yield_to(v: VcpuState, p: VcpuState): Sim.Gen<number> {
    const rq = this.rq(v)
    const prq = this.rq(p)
    // Both runqueues hold one task: no point in yielding.
    if (rq.queue.length === 0 && prq.queue.length === 0) return ESRCH
    // task_on_cpu(p) || !task_is_running(p)
    if (this.queuedOn(p) === undefined) return 0
    prq.queue.splice(prq.queue.indexOf(p), 1)
    prq.queue.unshift(p)
    if (prq !== rq && prq.current !== undefined) {
      prq.needResched = true
      prq.current.pcpu.post(this.k, undefined)
    }
    if (rq.queue.length > 0) rq.needResched = true
    return 1
  }

  /** A vCPU thread's CPU under this scheduler: the tick also forces the guest out. */
  readonly cpu: HostCpu = {
    need_resched: (v) => this.need_resched(v),
    guest_should_exit: (v) => this.need_resched(v),
    until_resched: (v) => this.untilResched(v),
    yield_cpu: (v) => this.switchOut(v),
    sleep: (v) => this.sleep(v),
    wake: (v) => this.acquire(v),
    yield_to: (v, target) => this.yield_to(v, target),
    single_task_running: (v) => this.rq(v).queue.length === 0
  }

  /** Off the CPU until the scheduler switches to `v`. */
  private *waitTurn(v: VcpuState): Sim.Gen<void> {
    const m = yield* this.mailboxOf(v).receive()
    if (m.cpu !== v.cpu || this.rq(v).current !== v) throw new Error(`${v.name} dispatched on pcpu${m.cpu}, but it is not that CPU's current thread`)
  }
}
