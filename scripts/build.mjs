#!/usr/bin/env node
/**
 * Builds what runs as JavaScript, bundled with esbuild: the command (apps/cli/dist/main.mjs: a
 * start loads one file instead of transpiling the TypeScript sources through tsx) and the worker
 * thread of `explore` and `compare` (apps/cli/dist/worker.mjs: Node 20's worker_threads cannot
 * load TypeScript, and tsx's loader is not inherited by workers). Runs at `npm ci` (the root
 * `prepare` script) and `npm run build`; the bin and the CLI rebuild a bundle when a source is
 * newer. With `--bench` it also bundles the bench (bench/dist/run.mjs).
 */
import { build } from "esbuild"
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../", import.meta.url))

/**
 * Bundles `entry` into `outfile`, written under a temporary name and renamed into place, so that a
 * command starting while another rebuilds never loads half a file.
 */
/** What every bundle is: one ES module for Node 20. */
const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  logLevel: "warning",
  // Bundled CommonJS dependencies (cli-progress and friends) may call require().
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" }
}

const bundle = async (entry, outfile) => {
  const tmp = `${root}${outfile}.${process.pid}.tmp`
  await build({ ...common, entryPoints: [`${root}${entry}`], outfile: tmp })
  renameSync(tmp, `${root}${outfile}`)
}

/**
 * Bundles `entry` into `dir/name.mjs` with code splitting: what it imports dynamically goes to
 * `dir/chunks/` and is loaded only when used. Built in a temporary folder; the chunks (named by
 * their content, so a new build never overwrites one in use) move into place first and the entry
 * last, then the chunks no longer used are removed.
 */
const bundleSplit = async (entry, dir, name) => {
  const out = `${root}${dir}`
  const tmp = `${out}/.build-${process.pid}`
  await build({
    entryPoints: { [name]: `${root}${entry}` },
    outdir: tmp,
    splitting: true,
    entryNames: "[name]",
    chunkNames: "chunks/[name]-[hash]",
    outExtension: { ".js": ".mjs" },
    ...common
  })
  mkdirSync(`${out}/chunks`, { recursive: true })
  const chunks = existsSync(`${tmp}/chunks`) ? readdirSync(`${tmp}/chunks`) : []
  for (const f of chunks) renameSync(`${tmp}/chunks/${f}`, `${out}/chunks/${f}`)
  renameSync(`${tmp}/${name}.mjs`, `${out}/${name}.mjs`)
  rmSync(tmp, { recursive: true, force: true })
  for (const f of readdirSync(`${out}/chunks`)) if (!chunks.includes(f)) rmSync(`${out}/chunks/${f}`, { force: true })
}

/** The worker thread of `explore` and `compare`. */
export const buildWorker = () => bundle("apps/cli/src/worker.ts", "apps/cli/dist/worker.mjs")

/**
 * The command itself, so that a start loads JavaScript instead of transpiling the sources
 * (bin/kvmlab.mjs); the service's client (`--server`) is a chunk loaded only when asked for.
 */
export const buildCli = () => bundleSplit("apps/cli/src/main.ts", "apps/cli/dist", "main")

/** The bench, bundled like the worker so that both run the same kind of code (`npm run bench`). */
export const buildBench = () => bundle("bench/run.ts", "bench/dist/run.mjs")

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await Promise.all([buildWorker(), buildCli()])
  if (process.argv.includes("--bench")) await buildBench()
}
