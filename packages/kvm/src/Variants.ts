/**
 * Every mechanism's variants and bug switches together (each mechanism's own are in its folder's
 * `Variants.ts`), with the spec's names. A bug switch reintroduces one defect; every switch off is
 * the merged kernel.
 */
import { Schema } from "effect"
import * as Host from "./host/Variants.js"
import * as KvmClock from "./kvmclock/Variants.js"
import * as Memslots from "./memslots/Variants.js"
import * as PfnCache from "./pfncache/Variants.js"
import * as PvFlush from "./pvflush/Variants.js"
import * as Requests from "./requests/Variants.js"
import type { Knob, Switch } from "./vcpu/Switch.js"

/** Every mechanism's `Variants.ts`: adding a mechanism is one line here. */
const mechanisms = [Requests, PvFlush, Memslots, PfnCache, KvmClock] as const

type Merge<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never
type Mechanisms = (typeof mechanisms)[number]

/** Every bug switch: its defect, the invariant it breaks, the settings it needs. */
export const switches: Merge<Mechanisms["switches"]> = Object.assign({}, ...mechanisms.map((m) => m.switches))
switches satisfies Record<string, Switch>

export type Bug = keyof typeof switches
/** The bug switches, each with its spec section (and the invariant it breaks). */
export const bugs: Readonly<Record<Bug, string>> = Object.fromEntries(
  Object.entries(switches).map(([name, s]) => [name, `${(s as Switch).spec} (${(s as Switch).breaks ?? "no violation in the model"})`])
) as Record<Bug, string>
export const bugNames = Object.keys(switches) as ReadonlyArray<Bug>
export const BugName = Schema.Literal(...(bugNames as [Bug, ...Array<Bug>]))

export const Flush = PvFlush.Flush
export type Flush = PvFlush.Flush

/**
 * Every variant setting: the first two mechanisms' (B's, then A's), the host's, then every later
 * mechanism's in registration order. The order is the scenario file's field order, which a
 * replay token's digest includes (a token made before mechanism C, whose file had no memslot
 * knobs, no longer replays).
 */
const knobs: Merge<Mechanisms["variant"]> & typeof Host.variant = Object.assign({}, PvFlush.variant, Requests.variant, Host.variant, ...mechanisms.slice(2).map((m) => m.variant))
type Knobs = typeof knobs
type KnobValue<K extends keyof Knobs> = Knobs[K] extends Knob<infer L> ? L : never

/**
 * Per-scenario variant settings, each optional with its default (the merged kernel on today's
 * host); every mechanism's knobs, documented in its folder's `Variants.ts`.
 */
export const Variant = Schema.Struct(
  Object.fromEntries(
    Object.entries(knobs).map(([key, k]) => [key, Schema.optionalWith((k as Knob).values, { default: () => (k as Knob).default })])
  ) as { [K in keyof Knobs]: Schema.optionalWith<Schema.Literal<[KnobValue<K>, ...Array<KnobValue<K>>]>, { default: () => KnobValue<K> }> }
)
export type Variant = typeof Variant.Type
export const defaultVariant: Variant = Object.fromEntries(Object.entries(knobs).map(([key, k]) => [key, (k as Knob).default])) as Variant

/** Variant keys and the values each accepts, for command-line parsing and messages. */
export const variantValues: Readonly<Record<keyof Variant, ReadonlyArray<string>>> = Object.fromEntries(
  Object.entries(knobs).map(([key, k]): [string, ReadonlyArray<string>] => [key, (k as Knob).values.literals])
) as Record<keyof Variant, ReadonlyArray<string>>

/** The switches of one run. */
export interface Switches {
  readonly variant: Variant
  readonly bugs: ReadonlySet<Bug>
}

export const has = (s: Switches, bug: Bug): boolean => s.bugs.has(bug)
