#!/usr/bin/env node
// The kvmlab command. It runs the bundle apps/cli/dist/main.mjs, which `npm ci` makes
// (scripts/build.mjs, the root `prepare` script), so a start loads one JavaScript file instead of
// transpiling the TypeScript sources. In a working tree being edited, a source newer than the
// bundle makes it rebuild first (about a second); without esbuild (an install without dev
// dependencies) the sources run through tsx.
import { existsSync, readdirSync, statSync } from "node:fs"
import { fileURLToPath, pathToFileURL } from "node:url"

const root = fileURLToPath(new URL("../../../", import.meta.url))
const bundle = fileURLToPath(new URL("../dist/main.mjs", import.meta.url))

/** The newest modification time of a TypeScript source under `dir`. */
const newest = (dir) =>
  readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
    const p = `${dir}/${e.name}`
    return Math.max(m, e.isDirectory() ? newest(p) : e.name.endsWith(".ts") ? statSync(p).mtimeMs : 0)
  }, 0)

const sources = [`${root}apps/cli/src`, ...readdirSync(`${root}packages`).map((p) => `${root}packages/${p}/src`)].filter(existsSync)
const fresh = existsSync(bundle) && statSync(bundle).mtimeMs >= Math.max(...sources.map(newest))

let built = fresh
if (!fresh) {
  try {
    const { buildCli } = await import(pathToFileURL(`${root}scripts/build.mjs`).href)
    await buildCli()
    built = true
  } catch {
    built = false
  }
}
if (built) await import(pathToFileURL(bundle).href)
else {
  const { register } = await import("tsx/esm/api")
  register()
  await import("../src/main.ts")
}
