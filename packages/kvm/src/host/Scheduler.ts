/**
 * The host scheduler for overcommit: vCPU threads pinned to physical CPUs, one runqueue per CPU,
 * round-robin with a time slice (`sched_base_slice`, from the cost model). A thread runs only
 * while it is its CPU's `current`. The tick preempts a thread in guest mode by forcing a VM exit
 * (an external-interrupt exit, at an instruction boundary); the preemption itself happens in
 * `vcpu_run`'s loop, through `schedule()` and the KVM preempt notifiers.
 */
import { Prng, Sim } from "@kvmlab/sim"
import type { HostCpu } from "../vcpu/Sched.js"
import type { VcpuState } from "../vcpu/State.js"

export class Runqueue {
  current: VcpuState | undefined = undefined
  readonly queue: Array<VcpuState> = []
  sliceEnd = 0
  /** TIF_NEED_RESCHED of the current thread: set by the tick, cleared by the switch. */
  needResched = false
  readonly switched: Sim.WaitQueue
  constructor(readonly cpu: number) {
    this.switched = Sim.makeWaitQueue(() => `pcpu${cpu} runqueue`)
  }
}

export class Scheduler {
  readonly rqs: Array<Runqueue>
  private readonly prng: Prng.Prng
  /**
   * Under a search strategy virtual time does not advance, so slices never end: the tick then
   * preempts at a check with probability `searchPreemptPercent`, drawn from `seed`.
   */
  constructor(pcpus: number, readonly sliceNs: number, readonly k: Sim.Kernel, seed: number, readonly searchPreemptPercent = 5) {
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
      rq.sliceEnd = this.k.now + this.sliceNs
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
    rq.current = next
    rq.sliceEnd = this.k.now + this.sliceNs
    rq.needResched = false
    this.k.wakeAll(rq.switched)
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
    rq.current = rq.queue.shift()
    rq.sliceEnd = this.k.now + this.sliceNs
    rq.needResched = false
    if (rq.current !== undefined) this.k.wakeAll(rq.switched)
  }

  /** A vCPU thread's CPU under this scheduler: the tick also forces the guest out. */
  readonly cpu: HostCpu = {
    need_resched: (v) => this.need_resched(v),
    guest_should_exit: (v) => this.need_resched(v),
    until_resched: (v) => this.untilResched(v),
    yield_cpu: (v) => this.switchOut(v),
    sleep: (v) => this.sleep(v),
    wake: (v) => this.acquire(v)
  }

  private *waitTurn(v: VcpuState): Sim.Gen<void> {
    const rq = this.rq(v)
    while (rq.current !== v) yield* Sim.wait(rq.switched)
  }
}
