/**
 * @kvmlab/scenarios — scenario files (Schema-validated JSON), the built-in catalogue, and
 * running them: one run, an exploration, a replay, a comparison of variants, and the export of
 * a run's trace to the Chrome/Perfetto trace-event format.
 */
export * as Catalogue from "./Catalogue.js"
export * as Perfetto from "./Perfetto.js"
export * as Runner from "./Runner.js"
export * as Scenario from "./Scenario.js"
