/**
 * Chrome/Perfetto trace-event JSON (the "JSON Array/Object format" that ui.perfetto.dev and
 * chrome://tracing open): one process per VM plus one for the host, one thread track per vCPU
 * and per physical CPU, guest-mode intervals as slices, everything else as instant events.
 * Under the `timed` strategy timestamps are virtual time; under search strategies, where time
 * does not advance, they are scheduling steps (1 step = 1 µs on the time axis).
 */
import type { Sim } from "@kvmlab/sim"

interface TraceEventJson {
  readonly name: string
  readonly ph: "B" | "E" | "i" | "M"
  readonly ts: number
  readonly pid: number
  readonly tid: number
  /** Instant scope: "t" the thread's track, "g" global (across every track). */
  readonly s?: "t" | "g"
  readonly args?: Record<string, unknown>
}

const HOST_PID = 1000

/** Which track an actor's events go on: vCPU threads per VM, physical CPUs and host threads under the host. */
const trackOf = (actor: string, tracks: Map<string, { pid: number; tid: number }>): { pid: number; tid: number } => {
  const base = actor.replace(/\.(drain|apic)$/, "")
  const known = tracks.get(base)
  if (known !== undefined) return known
  const vcpu = /^(?:vm(\d+)\.)?vcpu(\d+)$/.exec(base)
  const pcpu = /^pcpu(\d+)$/.exec(base)
  const t = vcpu !== null
    ? { pid: Number(vcpu[1] ?? 0), tid: Number(vcpu[2]) }
    : pcpu !== null
    ? { pid: HOST_PID, tid: Number(pcpu[1]) }
    : { pid: HOST_PID, tid: 10_000 + tracks.size }
  tracks.set(base, t)
  return t
}

/**
 * Converts a run's trace to trace-event JSON. A violation, when the run broke an invariant, is
 * marked where it happened: a global instant event (a line across every track in the UI) named
 * `VIOLATION <invariant>`, on the track of the actor that found it, with the message.
 */
export const fromTrace = (
  trace: ReadonlyArray<Sim.TraceEvent>,
  o: { readonly timed: boolean; readonly title: string; readonly violation?: Omit<Sim.Violation, "timeNs"> & { readonly timeNs: number } | undefined }
) => {
  const tracks = new Map<string, { pid: number; tid: number }>()
  const events: Array<TraceEventJson> = []
  const ts = (e: Sim.TraceEvent) => (o.timed ? e.timeNs / 1000 : e.step)
  for (const e of trace) {
    const track = e.name === "ipi.deliver" || e.name === "pcpu.online" ? trackOf(`pcpu${e.args[0] ?? 0}`, tracks) : trackOf(e.actor, tracks)
    if (e.name === "guest.enter") events.push({ name: "guest", ph: "B", ts: ts(e), ...track })
    else if (e.name === "guest.exit") {
      events.push({ name: "guest", ph: "E", ts: ts(e), ...track, args: { exitReason: e.args[1] } })
    } else events.push({ name: e.name, ph: "i", s: "t", ts: ts(e), ...track, args: { args: e.args, actor: e.actor, step: e.step } })
  }
  const v = o.violation
  if (v !== undefined) {
    events.push({
      name: `VIOLATION ${v.invariant}`,
      ph: "i",
      s: "g",
      ts: o.timed ? v.timeNs / 1000 : v.step,
      ...trackOf(v.actor, tracks),
      args: { invariant: v.invariant, message: v.message, actor: v.actor, step: v.step }
    })
  }
  const meta: Array<TraceEventJson> = [{ name: "process_name", ph: "M", ts: 0, pid: HOST_PID, tid: 0, args: { name: "host" } }]
  const pids = new Set<number>()
  for (const [actor, t] of tracks) {
    if (t.pid !== HOST_PID) pids.add(t.pid)
    meta.push({ name: "thread_name", ph: "M", ts: 0, pid: t.pid, tid: t.tid, args: { name: actor } })
  }
  for (const p of pids) meta.push({ name: "process_name", ph: "M", ts: 0, pid: p, tid: 0, args: { name: `vm${p}` } })
  return { displayTimeUnit: "ns", otherData: { title: o.title, timeAxis: o.timed ? "virtual µs" : "scheduling steps" }, traceEvents: [...meta, ...events] }
}
