#!/usr/bin/env node
/**
 * Builds what must be JavaScript: the worker thread of `explore` and `compare` (Node 20's
 * worker_threads cannot load TypeScript, and tsx's loader is not inherited by workers), bundled
 * with esbuild into apps/cli/dist/worker.mjs. Runs at `npm ci` (the root `prepare` script) and
 * `npm run build`; the CLI rebuilds it when a source is newer than the bundle. With `--bench`
 * it also bundles the bench (bench/dist/run.mjs).
 */
import { build } from "esbuild"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../", import.meta.url))

const bundle = (entry, outfile) =>
  build({
    entryPoints: [`${root}${entry}`],
    outfile: `${root}${outfile}`,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "warning",
    // Bundled CommonJS dependencies (cli-progress and friends) may call require().
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" }
  })

/** The worker thread of `explore` and `compare`. */
export const buildWorker = () => bundle("apps/cli/src/worker.ts", "apps/cli/dist/worker.mjs")

/** The bench, bundled like the worker so that both run the same kind of code (`npm run bench`). */
export const buildBench = () => bundle("bench/run.ts", "bench/dist/run.mjs")

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildWorker()
  if (process.argv.includes("--bench")) await buildBench()
}
