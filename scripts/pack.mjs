#!/usr/bin/env node
/**
 * Builds the importable packages, @kvmlab/sim, @kvmlab/memory and @kvmlab/kvm, as a user installs
 * them: JavaScript and declarations compiled by tsc (packages/<p>/tsconfig.build.json) into a
 * staging folder, dist/pack/<p>/, with a package.json made for publishing (sealed `exports`: only
 * "." and "./package.json"; dependencies pinned as in the workspace), then `npm pack`ed into
 * dist/packs/. The workspace's own package.json files keep pointing at src: vitest, tsx and
 * esbuild run the sources in development, and publishing is from the prepared folder.
 *
 * Built in dependency order (sim, memory, kvm): a package's tsconfig.build.json maps the bare
 * specifier of a sibling to that sibling's staged declarations, so the emitted code and
 * declarations keep `@kvmlab/sim` and friends as bare specifiers.
 *
 * Usage: node scripts/pack.mjs  (prints the tarball paths, one a line, last)
 * Import: `const { pack } = await import("./pack.mjs")`: returns the absolute tarball paths.
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { dirname, join, relative, resolve, sep } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../", import.meta.url))
/** Where each package is staged for publishing (dist/ is ignored by git). */
export const stageDir = join(root, "dist", "pack")
/** Where the tarballs go. */
export const packsDir = join(root, "dist", "packs")
/** In dependency order. */
export const PACKAGES = ["sim", "memory", "kvm"]
const EFFECT = "3.22.4"
const VERSION = "0.1.0"

const tsc = join(root, "node_modules", ".bin", process.platform === "win32" ? "tsc.cmd" : "tsc")
const npm = process.platform === "win32" ? "npm.cmd" : "npm"

const readJson = (p) => JSON.parse(readFileSync(p, "utf8"))
const ms = (t0) => `${Math.round(performance.now() - t0)} ms`

const walk = (dir) =>
  readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? walk(p) : [p]
  })

/** The package.json to publish, from the workspace's (which points at src and is private). */
const publishedManifest = (p) => {
  const ws = readJson(join(root, "packages", p, "package.json"))
  const dependencies = { ...ws.dependencies }
  if (ws.version !== VERSION) throw new Error(`${ws.name}: version ${ws.version}, expected ${VERSION}`)
  if (dependencies.effect !== EFFECT) throw new Error(`${ws.name}: effect must be pinned to ${EFFECT}, found ${dependencies.effect}`)
  for (const [name, range] of Object.entries(dependencies)) {
    if (name.startsWith("@kvmlab/") && range !== VERSION) throw new Error(`${ws.name}: ${name} must be ${VERSION}, found ${range}`)
  }
  return {
    name: ws.name,
    version: ws.version,
    description: ws.description,
    type: "module",
    engines: { node: ">=20" },
    // For resolvers that predate `exports` only; `exports` is what Node and TypeScript (node16,
    // nodenext, bundler) read, and it seals the package: nothing but the entry point is importable.
    main: "./dist/index.js",
    types: "./dist/index.d.ts",
    exports: {
      ".": { types: "./dist/index.d.ts", default: "./dist/index.js" },
      "./package.json": "./package.json"
    },
    files: ["dist"],
    dependencies
  }
}

/**
 * Checks that the declarations of `p` resolve once installed. Where tsc has to name a type of a
 * sibling package that the code never imports by name, it writes `import("<path of the sibling's
 * staged file>")`, relative to the source file: wrong once installed (with skipLibCheck the type
 * silently becomes `any`). The fix is a type annotation at the source (as on memory's
 * `Actors.program`); this check fails the build on any specifier that leaves the package.
 */
const checkPortable = (p) => {
  const dist = join(stageDir, p, "dist")
  const problems = []
  for (const file of walk(dist).filter((f) => f.endsWith(".d.ts"))) {
    const rel = relative(dist, file)
    for (const m of readFileSync(file, "utf8").matchAll(/(?:import\(|from )"(\.{1,2}\/[^"]+)"/g)) {
      const target = resolve(dirname(file), m[1])
      const inside = target.startsWith(dist + sep) && existsSync(target.replace(/\.js$/, ".d.ts"))
      if (!inside) problems.push(`${rel}: "${m[1]}" leaves the package: annotate the type at the source`)
    }
  }
  if (problems.length > 0) throw new Error(`@kvmlab/${p}: declarations that will not resolve once installed:\n  ${problems.join("\n  ")}`)
}

/** Compiles, stages and packs one package; returns the tarball's absolute path. */
const packOne = (p, log) => {
  const out = join(stageDir, p)
  rmSync(out, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })

  let t0 = performance.now()
  execFileSync(tsc, ["-p", join(root, "packages", p, "tsconfig.build.json")], { cwd: root, stdio: "inherit" })
  log(`  tsc @kvmlab/${p}: ${ms(t0)}`)

  checkPortable(p)
  const manifest = publishedManifest(p)
  writeFileSync(join(out, "package.json"), JSON.stringify(manifest, null, 2) + "\n")
  writeFileSync(
    join(out, "README.md"),
    `# ${manifest.name}\n\n${manifest.description}.\n\nPart of kvmlab: deterministic simulation of KVM protocols on the Effect 3 runtime.\nImport everything from \`${manifest.name}\`; see the kvmlab README, "Model your own protocol".\n`
  )

  t0 = performance.now()
  const json = execFileSync(npm, ["pack", "--json", "--ignore-scripts", "--pack-destination", packsDir], {
    cwd: out,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"]
  })
  const [info] = JSON.parse(json)
  log(`  npm pack @kvmlab/${p}: ${ms(t0)} (${info.entryCount} files, ${Math.round(info.size / 1024)} kB)`)
  return join(packsDir, info.filename)
}

/** Builds and packs every package in dependency order; returns the tarball paths. */
export const pack = ({ log = (line) => console.error(line) } = {}) => {
  const t0 = performance.now()
  rmSync(packsDir, { recursive: true, force: true })
  mkdirSync(packsDir, { recursive: true })
  const tarballs = PACKAGES.map((p) => packOne(p, log))
  log(`  pack: ${ms(t0)} in all`)
  return tarballs
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    for (const t of pack()) console.log(t)
  } catch (e) {
    console.error(`pack failed: ${e instanceof Error ? e.message : String(e)}`)
    process.exit(1)
  }
}
