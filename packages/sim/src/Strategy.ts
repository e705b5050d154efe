/**
 * Strategies: how the kernel picks the next actor among the runnable ones (always sorted by
 * actor id, never by arrival order). They are data, so they travel in replay tokens, scenario
 * files and HTTP payloads.
 *
 * - `random`: uniform over runnable actors; costs of scheduling points are ignored, so only
 *   explicit sleeps order actors in time. The widest search.
 * - `swarm`: random with per-run weights per actor (swarm testing), so that some runs starve an
 *   actor (a store-buffer drain, a vCPU) and others favour it; costs ignored as for `random`.
 * - `pct`: probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010) with `depth` d:
 *   random priorities, d-1 distinct priority change points over an expected run length of
 *   `steps` scheduling decisions (steps with one runnable actor decide nothing and do not count).
 *   Finds a bug of depth d with probability at least 1/(n * k^(d-1)) per run.
 * - `timed`: discrete-event order by virtual time; every scheduling point costs the time its
 *   caller states (e.g. a store-buffer drain latency), ties broken by the seed. The default for
 *   measurements.
 * - `replay`: follows the decisions in a token and fails loudly when the run diverges.
 */
import { Schema } from "effect"

/** Uniform random choice among runnable actors. */
export const Random = Schema.TaggedStruct("random", {})
/** Swarm random: per-run random weights per actor, then weighted choice. */
export const Swarm = Schema.TaggedStruct("swarm", {})
/** PCT with a bug depth and an expected run length in decisions (learned by `explore` when absent). */
export const Pct = Schema.TaggedStruct("pct", {
  depth: Schema.Int.pipe(Schema.between(1, 64)),
  steps: Schema.optional(Schema.Int.pipe(Schema.between(1, 100_000_000)))
})
/** Discrete-event order by virtual time, ties by seed. */
export const Timed = Schema.TaggedStruct("timed", {})
/** Follow a replay token. */
export const Replay = Schema.TaggedStruct("replay", { token: Schema.String })

/** Any strategy, as data. */
export const Strategy = Schema.Union(Random, Swarm, Pct, Timed, Replay)
export type Strategy = typeof Strategy.Type
/** The strategies that make their own choices (everything but replay). */
export type SearchStrategy = Exclude<Strategy, { readonly _tag: "replay" }>

/** Whether scheduling points cost virtual time under this strategy. */
export const honoursCosts = (s: SearchStrategy): boolean => s._tag === "timed"

/** A short human name: `random`, `pct:3`, `timed`. */
export const format = (s: Strategy): string =>
  s._tag === "pct" ? `pct:${s.depth}` : s._tag

/** Parses `random`, `timed`, `pct` (depth 3) or `pct:D`; returns an error message otherwise. */
export const parse = (text: string): SearchStrategy | string => {
  if (text === "random") return { _tag: "random" }
  if (text === "timed") return { _tag: "timed" }
  if (text === "swarm") return { _tag: "swarm" }
  const m = /^pct(?::(\d+))?$/.exec(text)
  if (m) {
    const depth = m[1] === undefined ? 3 : Number(m[1])
    return depth >= 1 && depth <= 64 ? { _tag: "pct", depth } : `pct depth must be in [1, 64], got ${depth}`
  }
  return `unknown strategy "${text}": expected random, swarm, pct, pct:D or timed`
}
