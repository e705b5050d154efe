/**
 * The mechanisms scenarios know, one line each; everything about switches and workloads is
 * looked up here: which workload a scenario file's `workload.kind` names, which mechanism a
 * switch belongs to, and whether it applies to a scenario (its mechanism is exercised by the
 * workload, and the variant settings it needs are set).
 */
import type { Variants } from "@kvmlab/kvm"
import { Schema } from "effect"
import type { Issue, Mechanism, WorkloadDef } from "./Mechanism.js"
import * as KvmClock from "./mechanisms/kvmclock.js"
import * as Memslots from "./mechanisms/memslots.js"
import * as PfnCache from "./mechanisms/pfncache.js"
import * as PvFlush from "./mechanisms/pvflush.js"
import * as Requests from "./mechanisms/requests.js"
import type { Scenario } from "./Scenario.js"

/** Every mechanism: adding one is one line here. */
export const mechanisms = [Requests.mechanism, PvFlush.mechanism, Memslots.mechanism, PfnCache.mechanism, KvmClock.mechanism] as const

type Schemas = (typeof mechanisms)[number]["workloads"][number]["schema"]

/** A scenario file's `workload`: any mechanism's workload, told apart by `kind`. */
export const Workload = Schema.Union(...(mechanisms.flatMap((m) => m.workloads.map((w) => w.schema)) as unknown as [Schemas, ...Array<Schemas>]))

/** The workload definition of `kind`. */
export const workloadOf = (kind: string): WorkloadDef<any> => {
  for (const m of mechanisms) for (const w of m.workloads) if (w.kind === kind) return w as WorkloadDef<any>
  throw new Error(`no workload of kind ${kind}`)
}

/** The mechanism a switch belongs to. */
export const mechanismOf = (bug: Variants.Bug): Mechanism => mechanisms.find((m) => bug in m.switches)!

/** The issues of a scenario the schema cannot see: the workload's own rules, and switches that cannot run here. */
export const issues = (s: Scenario): ReadonlyArray<Issue> => {
  const w = workloadOf(s.workload.kind)
  const out: Array<Issue> = [...w.check(s, s.workload)]
  s.bugs.forEach((bug, i) => {
    const m = mechanismOf(bug)
    if (!w.exercises.includes(m.id)) {
      const where = m.workloads.map((x) => x.kind).join(" and ")
      out.push({ path: `bugs.${i}`, message: `${bug} is a switch of mechanism ${m.id} (${m.title}); it applies to ${where}, not ${w.kind}` })
      return
    }
    const sw = m.switches[bug]!
    for (const [key, allowed] of Object.entries(sw.needs)) {
      const value = (s.variant as Record<string, string>)[key]!
      if (!allowed.includes(value)) {
        out.push({ path: `bugs.${i}`, message: `${bug} needs --variant ${key}=${allowed.join(" or ")} (it is a defect of that variant), got ${key}=${value}` })
      }
    }
  })
  return out
}

/** Settings that are valid but change nothing in this scenario. */
export const notes = (s: Scenario): ReadonlyArray<string> => workloadOf(s.workload.kind).notes(s, s.workload)
