/**
 * A host thread sharing a vCPU's physical CPU (`pv-flush-race`): at each preemption point of the
 * vCPU thread it takes the CPU with a chance of `percent` in a hundred (drawn by the vCPU's
 * actor), runs some steps and gives the CPU back. Unlike the runqueue scheduler it never stops
 * the guest itself: preemption happens only where the vCPU thread checks `need_resched`.
 */
import { Sim } from "@kvmlab/sim"
import { type HostCpu, noYield, nothing } from "../vcpu/Sched.js"

export class Hog {
  busy = false
  readonly run: Sim.WaitQueue
  readonly done: Sim.WaitQueue
  constructor(readonly name: string, readonly maxSteps: number) {
    this.run = Sim.makeWaitQueue(`${name} runqueue`)
    this.done = Sim.makeWaitQueue(`${name} yields`)
  }

  /** The thread's body: run some steps whenever it is given the CPU. */
  *body(): Sim.Gen<never> {
    const k = yield* Sim.kernel()
    for (;;) {
      while (!this.busy) yield* Sim.wait(this.run)
      const n = k.randomBetween(1, this.maxSteps + 1)
      for (let i = 0; i < n; i++) yield* Sim.point(50_000)
      this.busy = false
      k.wakeAll(this.done)
    }
  }

  /** The vCPU thread hands the CPU over: this thread runs until it yields it back. */
  *yield_cpu(k: Sim.Kernel): Sim.Gen<void> {
    this.busy = true
    k.wakeAll(this.run)
    while (this.busy) yield* Sim.wait(this.done)
  }

  /**
   * The vCPU thread's CPU as this thread contends for it, `percent` in a hundred at each
   * preemption point. (Its generators are made once, not as closures per CPU: V8 keeps a
   * generator closure that has run alive until a full GC, and with it the run it closes over.)
   */
  cpu(k: Sim.Kernel, percent: number): HostCpu {
    return {
      need_resched: () => percent > 0 && k.randomBetween(0, 100) < percent,
      guest_should_exit: () => false,
      until_resched: () => Infinity,
      yield_cpu: () => this.yield_cpu(k),
      // The thread only competes at preemption points: a sleeping vCPU leaves it idle.
      sleep: nothing,
      wake: nothing,
      // Not a runqueue: nothing to boost (yield_to's -ESRCH).
      yield_to: noYield,
      single_task_running: () => !this.busy
    }
  }
}
