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
import { setPriority } from "node:os"

/**
 * The runs yield the CPU to the thread that coordinates them: on Linux a thread's nice value is
 * its own, and `setPriority(n)` (pid 0) sets the calling thread's. With as many workers as cores,
 * the coordinator (the command's progress and signals, the service's HTTP requests) is otherwise
 * left to the kernel's time slices: the service's read latency under a campaign went from a p99
 * of 119 ms to the figure in README's Performance. Throughput does not change: the coordinator is
 * mostly idle, and a nice value only orders threads that compete.
 */
const WORKER_NICE = 10
try {
  setPriority(WORKER_NICE)
} catch {
  // Not permitted (some containers): the runs keep the default priority.
}

WorkerRunner.layerSerialized(WorkerProtocol.Request, {
  ExploreBlock: Dealer.exploreBlock,
  CompareRun: Dealer.compareRun
}).pipe(Layer.provide(NodeWorkerRunner.layer), WorkerRunner.launch, NodeRuntime.runMain)
