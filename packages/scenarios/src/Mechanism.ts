/**
 * What a mechanism brings to scenarios, in one record: its bug switches (with the settings each
 * needs, from its kvm folder's `Variants.ts`), the invariants it checks, and its workloads — each a
 * scenario file's `workload` schema, the cross-field rules the schema cannot say, the settings
 * that change nothing in it, and its simulation program — and its built-in scenarios and the
 * switch cases that show each switch found. `Mechanisms.ts` lists the records: adding a mechanism
 * is its kvm folder, its record, and one line there.
 */
import type { Switch, Variants } from "@kvmlab/kvm"
import type { Sim, Strategy } from "@kvmlab/sim"
import type { Schema } from "effect"
import type { Scenario } from "./Scenario.js"

/** A field that is wrong, and why. */
export interface Issue {
  readonly path: string
  readonly message: string
}

/** What a run of a workload reports: counters by name. */
export type Metrics = Record<string, number>

/** Where a program puts its metrics, readable after the run however it ended. */
export interface Sink {
  metrics: () => Metrics
  /** The names of the run's memory locations, by id (what a trace's loads and stores refer to). */
  locations?: () => ReadonlyArray<string>
}

/** Points `sink` (when there is one) at a program's metrics and at its host memory's location names. */
export const bindSink = (sink: Sink | undefined, memory: { readonly locs: ReadonlyArray<{ readonly name: string }> }, metrics: () => Metrics): void => {
  if (sink === undefined) return
  sink.metrics = metrics
  sink.locations = () => memory.locs.map((l) => l.name)
}

/** One kind of workload. `W` is its decoded `workload` field. */
export interface WorkloadDef<W extends { readonly kind: string }> {
  readonly kind: W["kind"]
  readonly schema: Schema.Schema<W, any>
  /** The mechanisms whose switches apply here, by id (its own, and any it runs on top of). */
  readonly exercises: ReadonlyArray<string>
  /** The invariants a run checks. */
  readonly invariants: ReadonlyArray<string>
  /** What the schema cannot say: fields that constrain each other. */
  readonly check: (s: Scenario, w: W) => ReadonlyArray<Issue>
  /** Settings that are valid but change nothing here (printed as notes). */
  readonly notes: (s: Scenario, w: W) => ReadonlyArray<string>
  /** The simulation program. */
  readonly program: (s: Scenario, sink?: Sink) => Sim.Program<Metrics>
}

/** A mechanism of the model, as scenarios see it. */
export interface Mechanism {
  /** "A", "B", ...: the prefix of its switches. */
  readonly id: string
  readonly title: string
  readonly switches: Readonly<Record<string, Switch.Switch>>
  readonly invariants: ReadonlyArray<string>
  readonly workloads: ReadonlyArray<WorkloadDef<any>>
  /**
   * Its built-in scenarios (`kvmlab list`), as scenario files (`Catalogue.builtins` checks them
   * against the scenario schema; typed loosely here, since that schema is made from the records).
   */
  readonly builtins: ReadonlyArray<{ readonly name: string; readonly description: string; readonly [field: string]: unknown }>
  /** Where each of its switches is found (every switch with `breaks`, at least once). */
  readonly switchCases: ReadonlyArray<SwitchCase>
  /** Where each of its switches with `clean` is explored and found clean. */
  readonly cleanCases?: ReadonlyArray<CleanCase>
}

/** Where a switch the model finds no violation for (`Switch.clean`) is explored: `runs` runs, none violating. */
export interface CleanCase extends Omit<SwitchCase, "invariant"> {
  readonly runs: number
}

/**
 * Where a bug switch applies: a built-in scenario, the settings it needs, the strategy that finds
 * it soonest, and the invariant the spec (or, where the spec names none, the model) says it breaks.
 */
export interface SwitchCase {
  readonly bug: Variants.Bug
  readonly scenario: string
  readonly set: ReadonlyArray<readonly [string, string]>
  readonly strategy: Strategy.SearchStrategy
  readonly invariant: string
}

/** The `random` strategy, for switch cases. */
export const random = { _tag: "random" } as const
