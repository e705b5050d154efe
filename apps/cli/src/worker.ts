/**
 * The worker thread of `explore --workers N` and `compare --workers N`: serves the Schema-tagged
 * requests of `WorkerProtocol` (a block of exploration runs, one comparison run) with the same
 * handlers the coordinator would run on its own thread. Bundled to dist/worker.mjs by
 * scripts/build.mjs, because worker threads cannot load TypeScript.
 */
import { WorkerRunner } from "@effect/platform"
import { NodeRuntime, NodeWorkerRunner } from "@effect/platform-node"
import { Dealer, WorkerProtocol } from "@kvmlab/scenarios"
import { Layer } from "effect"

WorkerRunner.layerSerialized(WorkerProtocol.Request, {
  ExploreBlock: Dealer.exploreBlock,
  CompareRun: Dealer.compareRun
}).pipe(Layer.provide(NodeWorkerRunner.layer), WorkerRunner.launch, NodeRuntime.runMain)
