/**
 * The built-in scenarios and where each bug switch is found, gathered from the mechanisms'
 * records (`Mechanisms.ts`): each mechanism's record holds its own. Each built-in is an ordinary
 * scenario file (see `kvmlab show`); the defaults are sized so that one run takes about a
 * millisecond and `explore` covers thousands of interleavings in seconds.
 */
import type { SwitchCase } from "./Mechanism.js"
import { mechanisms } from "./Mechanisms.js"
import type { ScenarioEncoded } from "./Scenario.js"

export type { SwitchCase } from "./Mechanism.js"

export const builtins: ReadonlyArray<ScenarioEncoded> = mechanisms.flatMap<ScenarioEncoded>((m) => m.builtins)

/** Every switch in every built-in scenario where it applies (tests, the bench and the README's tables use this list). */
export const switchCases: ReadonlyArray<SwitchCase> = mechanisms.flatMap<SwitchCase>((m) => m.switchCases)
