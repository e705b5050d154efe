/**
 * What the host scheduler tells a thread, as Schema-tagged messages in the thread's scheduler
 * mailbox. `__schedule()` on a CPU picks the next task and switches to it (`context_switch`): for
 * the picked thread that is a message — it was waiting, off the CPU, for exactly this — so a
 * thread that nobody dispatches is a kernel-visible wait on an empty mailbox (a deadlock report),
 * not a silent spin. TIF_NEED_RESCHED stays a flag, as in the kernel: the tick and `resched_curr`
 * set it, the running thread polls it at its preemption points.
 */
import { Schema } from "effect"

/** `context_switch(rq, prev, next)`: physical CPU `cpu` is the receiving thread's now. */
export class Dispatch extends Schema.TaggedClass<Dispatch>()("Dispatch", {
  cpu: Schema.Int.pipe(Schema.nonNegative())
}) {}

/** Every message a thread takes from the scheduler. */
export const SchedMessage = Schema.Union(Dispatch)
export type SchedMessage = typeof SchedMessage.Type

/**
 * A thread's scheduler mailbox holds one message: a thread waiting for its CPU is dispatched
 * once, and runs before it can wait again.
 */
export const SCHED_MAILBOX_CAPACITY = 1
