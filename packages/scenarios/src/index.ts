/**
 * @kvmlab/scenarios — scenario files (Schema-validated JSON), the built-in catalogue, and
 * running them: one run, a replay, an exploration and a comparison of variants (on this thread
 * or dealt to worker threads, with the same results), and the export of a run's trace to the
 * Chrome/Perfetto trace-event format.
 */
export * as Campaign from "./Campaign.js"
export * as Catalogue from "./Catalogue.js"
export * as History from "./History.js"
export * as Metrics from "./Metrics.js"
export * as Dealer from "./Dealer.js"
export * as Perfetto from "./Perfetto.js"
export * as Runner from "./Runner.js"
export * as Scenario from "./Scenario.js"
export * as WorkerProtocol from "./WorkerProtocol.js"
export * as Shrink from "./Shrink.js"
