/**
 * Worker threads for `explore` and `compare`: a pool of `@effect/platform` serialized workers
 * (Schema-typed requests, `WorkerProtocol`), wrapped as the scenario package's `Dealer`. One
 * worker is a pool of one thread too, so `--workers 1` and `--workers N` run the same bundled
 * code and their speeds compare. The worker is the bundle scripts/build.mjs makes;
 * it is rebuilt here first when a source file is newer than it (a developer's checkout).
 */
import { Worker } from "@effect/platform"
import { NodeWorker } from "@effect/platform-node"
import type { Dealer, WorkerProtocol } from "@kvmlab/scenarios"
import { Context, Effect, Layer, type Scope } from "effect"
import { existsSync, readdirSync, statSync } from "node:fs"
import { availableParallelism } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Worker as NodeThread } from "node:worker_threads"

/** The number of cores: the default of `--workers`. */
export const cores = (): number => availableParallelism()

/** Makes a dealer with `workers` threads for the scope's lifetime. */
export class Workers extends Context.Tag("@kvmlab/cli/Workers")<Workers, {
  readonly dealer: (workers: number) => Effect.Effect<Dealer.Dealer, never, Scope.Scope>
}>() {}

/** The repository: the first folder above this module (or the bundle it was built into) with scripts/build.mjs. */
const root = (() => {
  let dir = fileURLToPath(new URL(".", import.meta.url))
  while (!existsSync(join(dir, "scripts/build.mjs"))) {
    const up = join(dir, "..")
    if (up === dir) throw new Error(`kvmlab: cannot find the repository above ${fileURLToPath(import.meta.url)} (scripts/build.mjs)`)
    dir = up
  }
  return dir
})()
const bundle = join(root, "apps/cli/dist/worker.mjs")

const newest = (dir: string): number =>
  readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
    const p = join(dir, e.name)
    return Math.max(m, e.isDirectory() ? newest(p) : e.name.endsWith(".ts") ? statSync(p).mtimeMs : 0)
  }, 0)

/** The worker bundle, built or rebuilt when missing or older than the sources. */
const ensureBundle = Effect.promise(async () => {
  const sources = [join(root, "apps/cli/src"), ...readdirSync(join(root, "packages")).map((p) => join(root, "packages", p, "src"))]
  if (existsSync(bundle) && statSync(bundle).mtimeMs >= Math.max(...sources.filter(existsSync).map(newest))) return bundle
  const { buildWorker } = (await import(join(root, "scripts/build.mjs"))) as { buildWorker: () => Promise<unknown> }
  await buildWorker()
  return bundle
})

const pooled = (workers: number): Effect.Effect<Dealer.Dealer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const file = yield* ensureBundle
    const pool = yield* Worker.makePoolSerialized<WorkerProtocol.Request>({ size: workers }).pipe(
      Effect.provide(NodeWorker.layer(() => new NodeThread(file))),
      Effect.orDie
    )
    return {
      workers,
      // A worker that crashes or a message that does not decode is a defect of kvmlab, not bad input.
      exploreBlock: (req) => Effect.catchTags(pool.executeEffect(req), { WorkerError: Effect.die, ParseError: Effect.die }),
      compareRun: (req) => Effect.catchTags(pool.executeEffect(req), { WorkerError: Effect.die, ParseError: Effect.die })
    }
  })

/** Real worker threads (the bin, and tests that check parallel runs). */
export const layerThreads: Layer.Layer<Workers> = Layer.succeed(Workers, {
  dealer: pooled
})
