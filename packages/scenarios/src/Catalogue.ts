/**
 * The built-in scenarios and where each bug switch is found, gathered from the mechanisms'
 * records (`Mechanisms.ts`): each mechanism's record holds its own. Each built-in is an ordinary
 * scenario file (see `kvmlab show`); the defaults are sized so that one run takes about a
 * millisecond and `explore` covers thousands of interleavings in seconds.
 */
import type { CleanCase, Mechanism, SwitchCase } from "./Mechanism.js"
import { mechanisms } from "./Mechanisms.js"
import type { ScenarioEncoded } from "./Scenario.js"

export type { CleanCase, SwitchCase } from "./Mechanism.js"

export const builtins: ReadonlyArray<ScenarioEncoded> = mechanisms.flatMap<ScenarioEncoded>((m) => m.builtins)

/** Every switch in every built-in scenario where it applies (tests, the bench and the README's tables use this list). */
export const switchCases: ReadonlyArray<SwitchCase> = mechanisms.flatMap<SwitchCase>((m) => m.switchCases)

/** Every switch the model finds no violation for, where it is explored (`Switch.clean`). */
export const cleanCases: ReadonlyArray<CleanCase> = (mechanisms as ReadonlyArray<Mechanism>).flatMap<CleanCase>((m) => m.cleanCases ?? [])
