/**
 * The result of checking one litmus test, in herd7's terms: every reachable final state over the
 * observed variables (those of the condition, plus any `locations`), and the verdict on the
 * condition's proposition: `Never` (no state satisfies it), `Always` (every state does) or
 * `Sometimes`. Both engines report through here, so their outputs compare directly.
 */
import { type LitmusTest, type Var, evaluate, formatCondition, varName, varsOf } from "./Litmus.js"

/** herd7's verdict. */
export type Observation = "Never" | "Sometimes" | "Always"

/** One test's outcome. */
export interface LitmusOutcome {
  readonly test: string
  readonly file: string
  readonly condition: string
  readonly observation: Observation
  /** Final states in herd notation (`0:rax=0; [x]=1;`), sorted. */
  readonly states: ReadonlyArray<string>
  /** Whether the quantified condition holds (exists: some state; ~exists: none; forall: all). */
  readonly holds: boolean
}

/** The observed variables of a test, in herd's order: registers by thread, then locations. */
export const observedVars = (test: LitmusTest): Array<Var> => {
  const seen = new Map<string, Var>()
  for (const v of [...varsOf(test.condition.prop), ...test.observed]) seen.set(varName(v), v)
  return [...seen.values()].sort((a, b) => {
    if (a.kind !== b.kind) return a.kind === "reg" ? -1 : 1
    if (a.kind === "reg" && b.kind === "reg") return a.thread - b.thread || (a.reg < b.reg ? -1 : a.reg > b.reg ? 1 : 0)
    const [x, y] = [varName(a), varName(b)]
    return x < y ? -1 : x > y ? 1 : 0
  })
}

/** Collects final states of one test and turns them into an outcome. */
export class OutcomeBuilder {
  private readonly vars: Array<Var>
  private readonly states = new Map<string, boolean>()
  constructor(readonly test: LitmusTest) {
    this.vars = observedVars(test)
  }

  /** Adds a final state, given each observed variable's value. */
  add(value: (v: Var) => number): void {
    const key = this.vars.map((v) => `${varName(v)}=${value(v)};`).join(" ")
    if (!this.states.has(key)) this.states.set(key, evaluate(this.test.condition.prop, value))
  }

  /** Distinct final states so far. */
  get size(): number {
    return this.states.size
  }

  build(): LitmusOutcome {
    const sat = [...this.states.values()].filter((b) => b).length
    const total = this.states.size
    const observation: Observation = sat === 0 ? "Never" : sat === total ? "Always" : "Sometimes"
    const q = this.test.condition.quantifier
    const holds = q === "exists" ? sat > 0 : q === "~exists" ? sat === 0 : sat === total
    return {
      test: this.test.name,
      file: this.test.file,
      condition: formatCondition(this.test.condition),
      observation,
      states: [...this.states.keys()].sort(),
      holds
    }
  }
}

/** Canonical form of a herd state string, for set comparison (assignment order is irrelevant). */
export const canonicalState = (s: string): string =>
  s.split(";").map((x) => x.trim()).filter((x) => x !== "").sort().join("; ") + ";"
