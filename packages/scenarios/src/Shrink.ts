/**
 * Counterexample shrinking: from a violating run's token, a token whose run breaks the same
 * invariant in as few steps as it can find. Every candidate is checked by running it (on the
 * fast engine) with the candidate decisions as a guide — where a decision does not fit, the
 * actor that ran last goes on — and the decisions the run really took become the next token,
 * which replays strictly.
 *
 * Each stage may use a third of the budgets (runs and steps), and what the stages before it left.
 *
 * 1. Decisions (delta debugging, Zeller and Hildebrandt, TSE 2002, over the decision list):
 *    drop chunks of decisions, halving the chunk size down to one; then turn each remaining
 *    preemption (a switch away from an actor that could have gone on) into "go on".
 * 2. The scenario's size: every workload count, `vcpusPerVm`, `vms` and `pcpus` lowered
 *    (to its minimum, half, one less), each candidate guided by the current decisions or, failing
 *    that, searched with a few seeds of the token's strategy; then the decisions again.
 * 3. In the smallest scenario, the shortest violating run of a few hundred seeds (the token's
 *    strategy and swarm), and its decisions shrunk once more.
 *
 * A candidate is kept only when it breaks the same invariant and is strictly smaller: fewer
 * steps, or as many steps with fewer preemptions, or no more of either in a smaller scenario
 * (so the search ends).
 */
import { ReplayToken, Run, type Strategy } from "@kvmlab/sim"
import { Effect, Either } from "effect"
import { boundsOf, program, scenarioOfToken, validate } from "./Runner.js"
import { canonical, decode, encode, type Scenario, ScenarioError } from "./Scenario.js"

/** What `shrink` found. */
export interface ShrinkResult {
  readonly invariant: string
  readonly message: string
  /** The shrunk run's token: it replays strictly, on either engine. */
  readonly token: string
  readonly stepsBefore: number
  readonly stepsAfter: number
  readonly preemptionsBefore: number
  readonly preemptionsAfter: number
  /** Scenario settings changed, as `key=old->new`. */
  readonly changes: ReadonlyArray<string>
  /** Candidate runs made. */
  readonly candidates: number
}

/** The token's run does not break anything, or the token cannot be read. */
export class ShrinkError extends Error {
  readonly _tag = "ShrinkError"
}

interface Candidate {
  readonly s: Scenario
  readonly seed: number
  readonly strategy: Strategy.SearchStrategy
  readonly decisions: ReadonlyArray<number>
  readonly steps: number
  readonly preemptions: number
  readonly message: string
  readonly token: string
}

/**
 * Preemptions in a run: decisions that chose another actor while the one that ran the step
 * before could go on. Reconstructed from the decision list alone: a decision equal to the
 * previous decision's actor is "go on".
 */
const preemptionsOf = (decisions: ReadonlyArray<number>): number => {
  let n = 0
  for (let i = 1; i < decisions.length; i++) if (decisions[i] !== decisions[i - 1]) n++
  return n
}

/** Options of a shrink. */
export interface ShrinkOptions {
  /** Most candidate runs (default 10,000: a few seconds). */
  readonly budget?: number
  /**
   * Most simulation steps over all candidate runs (default 20,000,000: about 20 s here): a
   * counterexample tens of thousands of steps long (a liveness violation) gets fewer candidates.
   */
  readonly stepBudget?: number
  /** Seeds tried for the shortest run of the smallest scenario (default 200; a quarter of them for each smaller scenario the guide does not reproduce). */
  readonly searchSeeds?: number
}

/** Shrinks the run of `token`; fails when the token does not decode or its run has no violation. */
export const shrink = (token: string, o: ShrinkOptions = {}): Effect.Effect<ShrinkResult, ShrinkError | ScenarioError | Run.InvalidRunOptions> =>
  Effect.try({
    try: () => drive(steps(token, o)),
    catch: (e) => (e instanceof ShrinkError || e instanceof ScenarioError || e instanceof Run.InvalidRunOptions ? e : new ShrinkError(String(e)))
  })

/**
 * The same shrink as `shrink`, as a generator that yields before each candidate run (a caller on
 * an event loop can give it turns between runs); it throws `ShrinkError` (or `ScenarioError`,
 * `InvalidRunOptions`) where `shrink` fails with them.
 */
export function* steps(token: string, o: ShrinkOptions = {}): Steps<ShrinkResult> {
  const data = ReplayToken.decode(token)
  if (data instanceof ReplayToken.InvalidReplayToken) throw new ShrinkError(data.message)
  const s0 = Either.getOrThrowWith(scenarioOfToken(token), (e) => e)
  return yield* shrinkSteps(s0, data, o)
}

/** One shrink in progress: the invariant every candidate must break, the limits, and the candidate runs made so far. */
interface Shrinker {
  readonly invariant: string
  /** The token's strategy. */
  readonly strategy: Strategy.SearchStrategy
  readonly budget: number
  readonly stepBudget: number
  readonly searchSeeds: number
  tried: number
  /** Steps of the candidate runs so far. */
  stepsRun: number
  /** The share of both budgets the stages so far may use (the stage running now included). */
  share: number
}

/** Whether the shrink has used up its candidate runs or its steps (so far as the running stage may use them). */
const spent = (sh: Shrinker): boolean => sh.tried >= sh.budget * sh.share || sh.stepsRun >= sh.stepBudget * sh.share

/**
 * Runs a stage with the budgets' share up to `share` (what earlier stages left is its too): the
 * decisions of a long run could otherwise spend everything before the scenario gets smaller, and
 * a smaller scenario is what makes every later candidate cheap.
 */
function* stage<A>(sh: Shrinker, share: number, run: Steps<A>): Steps<A> {
  sh.share = share
  return yield* run
}

/** Runs scenario `s` with seed `seed` under `st`, guided by `guide`; the candidate when it breaks the invariant. */
function* attempt(
  sh: Shrinker,
  s: Scenario,
  seed: number,
  st: Strategy.SearchStrategy,
  guide?: ReadonlyArray<number>
): Steps<Candidate | undefined> {
  yield sh.tried++
  const r = Run.runSync(program(s), { seed, strategy: st, digest: canonical(s), ...boundsOf(s, st), ...(guide !== undefined ? { guide } : {}) })
  sh.stepsRun += r.steps
  if (r.violation?.invariant !== sh.invariant) return undefined
  return { s, seed, strategy: st, decisions: r.decisions, steps: r.steps, preemptions: preemptionsOf(r.decisions), message: r.violation.message, token: r.token }
}

/**
 * A shrink's work, as a generator that yields before each candidate run (the number of runs made
 * so far): a caller can give its event loop a turn between runs; `drive` runs it through.
 */
export type Steps<A> = Generator<number, A, void>

const drive = <A>(g: Steps<A>): A => {
  for (;;) {
    const r = g.next()
    if (r.done === true) return r.value
  }
}

/** Whether `a` is strictly smaller than `b`: fewer steps, or as many with fewer preemptions. */
const smaller = (a: Candidate, b: Candidate) => a.steps < b.steps || (a.steps === b.steps && a.preemptions < b.preemptions)

/** The token's own run, replayed strictly: the candidate to shrink, and the invariant it breaks. */
const originalOf = (s0: Scenario, data: ReplayToken.ReplayTokenData): { readonly first: Candidate; readonly invariant: string } => {
  const original = Run.runSync(program(s0), { seed: 0, strategy: { _tag: "replay", token: tokenOf(data) }, digest: canonical(s0) })
  if (original.violation === undefined) throw new ShrinkError("the token's run breaks no invariant: nothing to shrink")
  const first: Candidate = {
    s: s0,
    seed: data.seed,
    strategy: data.strategy,
    decisions: original.decisions,
    steps: original.steps,
    preemptions: preemptionsOf(original.decisions),
    message: original.violation.message,
    token: original.token
  }
  return { first, invariant: original.violation.invariant }
}

/** Delta debugging over the decisions of `c`, repeated while it finds something smaller. */
function* shrinkDecisions(sh: Shrinker, c: Candidate): Steps<Candidate> {
  let best = c
  for (;;) {
    const next = yield* decisionPass(sh, best)
    if (next === best || spent(sh)) return next
    best = next
  }
}

/** One pass over the decisions: drop chunks, then turn preemptions into "go on". */
function* decisionPass(sh: Shrinker, c: Candidate): Steps<Candidate> {
  return yield* goOnInsteadOfPreempting(sh, yield* dropChunks(sh, c))
}

/** Drop chunks of decisions, from half the list down to single ones. */
function* dropChunks(sh: Shrinker, c: Candidate): Steps<Candidate> {
  let best = c
  for (let chunk = Math.max(1, best.decisions.length >> 1); chunk >= 1 && !spent(sh); chunk >>= 1) {
    for (let at = 0; at < best.decisions.length && !spent(sh);) {
      const guide = [...best.decisions.slice(0, at), ...best.decisions.slice(at + chunk)]
      const next = yield* attempt(sh, best.s, best.seed, best.strategy, guide)
      if (next !== undefined && smaller(next, best)) best = next
      else at += chunk
    }
  }
  return best
}

/** Each remaining preemption becomes "go on with the actor that ran last". */
function* goOnInsteadOfPreempting(sh: Shrinker, c: Candidate): Steps<Candidate> {
  let best = c
  for (let i = best.decisions.length - 1; i >= 1 && !spent(sh); i--) {
    if (i >= best.decisions.length || best.decisions[i] === best.decisions[i - 1]) continue
    const guide = best.decisions.slice()
    guide[i] = -1
    const next = yield* attempt(sh, best.s, best.seed, best.strategy, guide)
    if (next !== undefined && smaller(next, best)) best = next
  }
  return best
}

/** The scenario's size, lowered one setting at a time. */
function* shrinkScenario(sh: Shrinker, c: Candidate): Steps<Candidate> {
  let best = c
  let progress = true
  while (progress && !spent(sh)) {
    progress = false
    for (const [path, value] of sizes(best.s)) {
      for (const lower of lowerValues(value)) {
        const s = withSize(best.s, path, lower)
        if (s === undefined || spent(sh)) continue
        let next = yield* reproduce(sh, best, s)
        if (next !== undefined) {
          next = yield* shrinkDecisions(sh, next)
          // A smaller scenario is progress even at the same length.
          if (next.steps <= best.steps && next.preemptions <= best.preemptions) {
            best = next
            progress = true
            break
          }
        }
      }
    }
  }
  return best
}

/**
 * The violation of `best` in the smaller scenario `s`: guided by the decisions of `best`, or
 * failing that, searched with a quarter of the search seeds under its strategy.
 */
function* reproduce(sh: Shrinker, best: Candidate, s: Scenario): Steps<Candidate | undefined> {
  let next = yield* attempt(sh, s, best.seed, best.strategy, best.decisions)
  for (let k = 0; next === undefined && k < Math.ceil(sh.searchSeeds / 4) && !spent(sh); k++) {
    next = yield* attempt(sh, s, (best.seed + 1 + k) >>> 0, best.strategy)
  }
  return next
}

/**
 * In the smallest scenario found, the shortest violating run among a few hundred seeds (under
 * the token's strategy and under swarm), shrunk again: a small scenario often has a far
 * shorter counterexample than the one the original run led to.
 */
function* shortestOfSeeds(sh: Shrinker, c: Candidate): Steps<Candidate> {
  let best = c
  for (const st of [sh.strategy, { _tag: "swarm" } as const]) {
    for (let k = 0; k < sh.searchSeeds && !spent(sh); k++) {
      const next = yield* attempt(sh, c.s, (c.seed + 1000 + k) >>> 0, st)
      if (next !== undefined && smaller(next, best)) best = next
    }
  }
  return best === c ? c : yield* shrinkDecisions(sh, best)
}

/** The result must replay strictly, to the same violation. */
const checkReplays = (best: Candidate, invariant: string): void => {
  const check = Run.runSync(program(best.s), { seed: 0, strategy: { _tag: "replay", token: best.token }, digest: canonical(best.s) })
  if (check.violation?.invariant !== invariant) throw new ShrinkError("internal: the shrunk token does not replay to the same invariant")
}

/** The shrink: the decisions, then the scenario's size, then the shortest run of many seeds; throws `ShrinkError`. */
function* shrinkSteps(s0: Scenario, data: ReplayToken.ReplayTokenData, o: ShrinkOptions): Steps<ShrinkResult> {
  const { first, invariant } = originalOf(s0, data)
  const sh: Shrinker = {
    invariant,
    strategy: data.strategy,
    budget: o.budget ?? 10_000,
    stepBudget: o.stepBudget ?? 20_000_000,
    searchSeeds: o.searchSeeds ?? 200,
    tried: 0,
    stepsRun: 0,
    share: 1
  }
  const decided = yield* stage(sh, 1 / 3, shrinkDecisions(sh, first))
  const smallest = yield* stage(sh, 2 / 3, shrinkScenario(sh, decided))
  const best = yield* stage(sh, 1, shortestOfSeeds(sh, smallest))
  checkReplays(best, invariant)
  return {
    invariant,
    message: best.message,
    token: best.token,
    stepsBefore: first.steps,
    stepsAfter: best.steps,
    preemptionsBefore: first.preemptions,
    preemptionsAfter: best.preemptions,
    changes: changesBetween(s0, best.s),
    candidates: sh.tried
  }
}

const tokenOf = (d: ReplayToken.ReplayTokenData): string => ReplayToken.encode(d)

type Path = readonly [string] | readonly ["workload", string]

/** The sizes a scenario can be shrunk along: the shape and every workload count. */
const sizes = (s: Scenario): ReadonlyArray<readonly [Path, number]> => {
  const out: Array<readonly [Path, number]> = []
  for (const [k, v] of Object.entries(s.workload)) if (typeof v === "number") out.push([["workload", k], v])
  out.push([["vcpusPerVm"], s.vcpusPerVm], [["vms"], s.vms], [["pcpus"], s.pcpus])
  return out
}

/** Lower values worth trying, smallest first: 0 and 1, half, one less. */
const lowerValues = (v: number): ReadonlyArray<number> => [...new Set([0, 1, Math.floor(v / 2), v - 1])].filter((x) => x >= 0 && x < v)

/** The scenario with one size changed, when it is still valid. */
const withSize = (s: Scenario, path: Path, value: number): Scenario | undefined => {
  const e = encode(s) as Record<string, unknown> & { workload: Record<string, unknown> }
  const next = path.length === 1 ? { ...e, [path[0]]: value } : { ...e, workload: { ...e.workload, [path[1]]: value } }
  return Either.getOrUndefined(Either.flatMap(decode(next, "shrink"), (x) => validate(x, "shrink")))
}

const changesBetween = (a: Scenario, b: Scenario): ReadonlyArray<string> => {
  const out: Array<string> = []
  for (const [path, v] of sizes(a)) {
    const w = path.length === 1 ? (b as unknown as Record<string, number>)[path[0]] : (b.workload as unknown as Record<string, number>)[path[1]]
    if (w !== v) out.push(`${path.join(".")}=${v}->${w}`)
  }
  return out
}
