/**
 * A run's history as a kernel engineer reads it: one step per line — the step, the virtual time,
 * the actor, and what it did in the kernel's own names: the memory location (`vcpu[0].mode`,
 * `vcpu[1].requests`, `root.spte[gfn 1]`) with the value read or written, decoded where the
 * kernel has names for it (`IN_GUEST_MODE`, `KVM_REQ_TLB_FLUSH`, `TASK_INTERRUPTIBLE`,
 * `KVM_VCPU_PREEMPTED`), and the model's events (VM entry, VM exit with its `EXIT_REASON_*`,
 * `kvm_flush_remote_tlbs`, an IPI delivered, a preemption). The violation, when there is one,
 * closes the history, and its step is marked.
 */
import { Lapic, Protocol, PvFlush, State } from "@kvmlab/kvm"
import type { ScenarioRun } from "./Runner.js"

const { Protocol: PvProtocol } = PvFlush

/** `EXIT_REASON_*` by number, for the reasons the model distinguishes. */
const exitReasons: Readonly<Record<number, string>> = {
  1: "EXIT_REASON_EXTERNAL_INTERRUPT",
  12: "EXIT_REASON_HLT",
  18: "EXIT_REASON_VMCALL",
  30: "EXIT_REASON_IO_INSTRUCTION",
  40: "EXIT_REASON_PAUSE_INSTRUCTION",
  48: "EXIT_REASON_EPT_VIOLATION",
  49: "EXIT_REASON_EPT_MISCONFIG"
}

/** The requests by bit, for `vcpu->requests`. */
const requestsByBit: ReadonlyArray<readonly [number, string]> = Array.from({ length: 32 }, (_, bit) => [bit, Protocol.requestNameOfBit(bit)] as const)

/** The names of the bits set in `value`, by `names` (bit number, name); unknown bits as numbers. */
const bitNames = (value: number, names: ReadonlyArray<readonly [number, string]>): string => {
  if (value === 0) return "0"
  const out: Array<string> = []
  for (let bit = 0; bit < 53 && 2 ** bit <= value; bit++) {
    if (Math.floor(value / 2 ** bit) % 2 === 1) out.push(names.find(([b]) => b === bit)?.[1] ?? `bit ${bit}`)
  }
  return out.join("|")
}

const preemptedBits: ReadonlyArray<readonly [number, string]> = [
  [Math.log2(PvProtocol.KVM_VCPU_PREEMPTED), "KVM_VCPU_PREEMPTED"],
  [Math.log2(PvProtocol.KVM_VCPU_FLUSH_TLB), "KVM_VCPU_FLUSH_TLB"],
  [Math.log2(PvProtocol.KVM_VCPU_IPI_PENDING), "KVM_VCPU_IPI_PENDING"]
]

const irrBits: ReadonlyArray<readonly [number, string]> = [
  [Math.log2(Lapic.CALL_FUNCTION_VECTOR), "CALL_FUNCTION_VECTOR"],
  [Math.log2(Lapic.TLB_FLUSH_VECTOR), "TLB_FLUSH_VECTOR"],
  [30, "PI_ON"]
]

/** A value as the kernel would name it, given the location's name. */
export const valueOf = (location: string, value: number): string => {
  if (location.endsWith(".mode")) return `${Protocol.modeName(value)} (${value})`
  if (location.endsWith(".requests")) return value === 0 ? "0" : `${bitNames(value, requestsByBit)} (0x${value.toString(16)})`
  if (location.endsWith(".task.__state")) return value === State.TASK_RUNNING ? "TASK_RUNNING" : value === State.TASK_INTERRUPTIBLE ? "TASK_INTERRUPTIBLE" : String(value)
  if (location.endsWith(".thread_info.flags")) return bitNames(value, [[State.TIF_SIGPENDING, "TIF_SIGPENDING"]])
  if (location.endsWith(".steal_time.preempted")) return bitNames(value, preemptedBits)
  if (location.endsWith(".apic.irr")) return bitNames(value, irrBits)
  return String(value)
}

/** One trace event in words. */
const describe = (name: string, args: ReadonlyArray<number>, locations: ReadonlyArray<string>): string => {
  const loc = (id: number) => locations[id] ?? `location ${id}`
  const [a = 0, b = 0] = args
  switch (name) {
    case "load":
      return `load   ${loc(a)} -> ${valueOf(loc(a), b)}`
    case "store":
      return `store  ${loc(a)} = ${valueOf(loc(a), b)}  (into the store buffer)`
    case "drain":
      return `drain  ${loc(a)} = ${valueOf(loc(a), b)}  (the buffered store reaches memory)`
    case "rmw":
      return `rmw    ${loc(a)}, now ${valueOf(loc(a), b)}  (LOCK-prefixed: a full barrier)`
    case "mfence":
      return "mfence (smp_mb: the store buffer is empty)"
    case "guest.enter":
      return `VM entry: vcpu ${a} runs guest code`
    case "guest.exit":
      return `VM exit: vcpu ${a}, ${exitReasons[b] ?? `exit reason ${b}`}`
    case "kvm_flush_remote_tlbs":
      return `kvm_flush_remote_tlbs (vm ${a}) begins`
    case "request":
      return `kvm_make_request(${Protocol.requestNameOfBit(b)}, vcpu ${a})`
    case "request.clear":
      return `kvm_clear_request(${Protocol.requestNameOfBit(b)}, vcpu ${a})`
    case "kvmclock.pair":
      return `pvclock_update_vm_gtod_copy: use_master_clock ${a}, master_kernel_ns ${b}, master_cycle_now ${args[2] ?? 0}`
    case "ipi.send":
      return `IPI sent to pcpu ${a} (to kick vcpu ${b})`
    case "apic.ipi":
      return `guest IPI: vcpu ${a} -> vcpu ${b}, ${bitNames(args[2] ?? 0, irrBits)}`
    case "guest.tlb_flush":
      return `guest TLB flushed on vcpu ${a} (flush IPI handler)`
    case "tlb.flush_guest":
      return `kvm_vcpu_flush_tlb_guest: vcpu ${a}'s deferred flush (record_steal_time)`
    case "tlb.flush":
      return `kvm_vcpu_flush_tlb_all: vcpu ${a}'s TLB flushed (KVM_REQ_TLB_FLUSH handled)`
    case "ipi.deliver":
      return `IPI delivered to pcpu ${a}`
    case "sched.out":
      return `kvm_sched_out: vcpu ${a} preempted`
    case "sched.in":
      return `kvm_sched_in: vcpu ${a} runs again`
    case "sp.free":
      return `kvm_mmu_commit_zap_page frees shadow page ${a}`
    case "pcpu.online":
      return `pcpu ${a} online`
    default:
      return `${name} ${args.join(" ")}`.trim()
  }
}

/**
 * The text history of `run` (recorded with `trace: true`): a header, one line per step, and the
 * violation. `last` keeps only the final lines of long runs (0: all).
 */
export const render = (run: ScenarioRun, last = 0): ReadonlyArray<string> => {
  const v = run.violations[0]
  const width = Math.max(5, ...run.trace.map((e) => e.actor.length))
  const events = last > 0 && run.trace.length > last ? run.trace.slice(-last) : run.trace
  const lines = [
    `${run.scenario} (seed ${run.seed}, ${run.strategy}${run.bugs.length > 0 ? `, bugs: ${run.bugs.join(", ")}` : ""}): ${run.outcome} after ${run.steps} steps`,
    ...(events.length < run.trace.length ? [`... ${run.trace.length - events.length} earlier events`] : []),
    `${"step".padStart(6)} ${"time".padStart(10)}  ${"actor".padEnd(width)}  what`
  ]
  for (const e of events) {
    const mark = v !== undefined && e.step === v.step && e.actor === v.actor ? "  <-- " + v.invariant : ""
    lines.push(`${String(e.step).padStart(6)} ${`${e.timeNs}ns`.padStart(10)}  ${e.actor.padEnd(width)}  ${describe(e.name, e.args, run.locations)}${mark}`)
  }
  if (v !== undefined) lines.push(`VIOLATION ${v.invariant} at step ${v.step} by ${v.actor}: ${v.message}`)
  return lines
}
