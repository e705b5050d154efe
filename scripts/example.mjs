#!/usr/bin/env node
/**
 * CI's check that the packages work as a user gets them: packs @kvmlab/sim, memory and kvm
 * (scripts/pack.mjs), copies examples/peterson into a fresh temporary directory outside the
 * workspace, installs the tarballs there with npm (no workspace links, no lockfile: exactly the
 * packed packages plus the example's declared dependencies), type-checks and compiles it with
 * tsc (module NodeNext, so the sealed `exports` and the declarations are what resolves), checks
 * the declarations of all three packages with skipLibCheck off, runs the example (it explores
 * the lock, finds the missing smp_mb() and replays it on both engines), and checks that a deep
 * import of a package is refused. Prints each step and its time; on failure, one
 * line naming the step, and the temporary directory is kept for a look.
 *
 * Usage: node scripts/example.mjs
 */
import { spawnSync } from "node:child_process"
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { basename, join } from "node:path"
import { fileURLToPath } from "node:url"
import { pack } from "./pack.mjs"

const root = fileURLToPath(new URL("../", import.meta.url))
const example = join(root, "examples", "peterson")
const npm = process.platform === "win32" ? "npm.cmd" : "npm"
const npx = process.platform === "win32" ? "npx.cmd" : "npx"

let dir
const failed = (step, why) => {
  console.error(`example: FAILED at "${step}": ${why}${dir === undefined ? "" : ` (kept ${dir})`}`)
  process.exit(1)
}

/** Runs one named step, printing its time; `f` returns nothing or throws. */
const step = (name, f) => {
  const t0 = performance.now()
  console.log(`== ${name}`)
  try {
    f()
  } catch (e) {
    failed(name, e instanceof Error ? e.message : String(e))
  }
  console.log(`== ${name}: ${Math.round(performance.now() - t0)} ms`)
}

/** Runs a command in the example's directory with its output shown; throws unless it exits 0. */
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: dir, stdio: "inherit" })
  if (r.error !== undefined) throw r.error
  if (r.status !== 0) throw new Error(`${basename(cmd)} ${args.join(" ")} exited ${r.status ?? r.signal}`)
}

const t0 = performance.now()
let tarballs = []
step("pack @kvmlab/sim, @kvmlab/memory, @kvmlab/kvm", () => {
  tarballs = pack({ log: (line) => console.log(line) })
  for (const t of tarballs) console.log(`  ${t}`)
})

step("copy examples/peterson to a temporary directory", () => {
  dir = mkdtempSync(join(tmpdir(), "kvmlab-example-"))
  cpSync(example, dir, {
    recursive: true,
    filter: (src) => !["node_modules", "dist", "package-lock.json"].includes(basename(src))
  })
  console.log(`  ${dir}`)
})

// The example depends on @kvmlab/sim and @kvmlab/memory; @kvmlab/kvm is installed too, so that
// its tarball is checked to install and resolve as well (npm records all three in package.json).
step("npm install the tarballs", () => run(npm, ["install", "--no-audit", "--no-fund", "--prefer-offline", ...tarballs]))

step("tsc -p . (type-check against the packed declarations, emit)", () => run(npx, ["--no-install", "tsc", "-p", "."]))

// The example's tsconfig skips library checks, as most projects do; this checks the packed
// declarations themselves (skipLibCheck off, NodeNext, the strictest options the example uses),
// all three packages from a one-line file (effect's declarations are checked once, here).
step("tsc: the packed declarations (skipLibCheck off)", () => {
  writeFileSync(join(dir, "declarations.ts"), `export * as Kvm from "@kvmlab/kvm"\nexport * as Memory from "@kvmlab/memory"\nexport * as Sim from "@kvmlab/sim"\n`)
  const strict = ["--strict", "--exactOptionalPropertyTypes", "--noUncheckedIndexedAccess", "--skipLibCheck", "false"]
  run(npx, ["--no-install", "tsc", "--noEmit", ...strict, "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--types", "node", "declarations.ts"])
})

step("node dist/main.js", () => run(process.execPath, ["dist/main.js"]))

step("deep imports are sealed", () => {
  for (const deep of ["@kvmlab/sim/dist/Run.js", "@kvmlab/memory/dist/Cpu.js", "@kvmlab/kvm/dist/index.js"]) {
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", `await import(${JSON.stringify(deep)})`], { cwd: dir, encoding: "utf8" })
    if (r.status === 0) throw new Error(`import("${deep}") succeeded`)
    if (!r.stderr.includes("ERR_PACKAGE_PATH_NOT_EXPORTED")) throw new Error(`import("${deep}") failed otherwise: ${r.stderr.trim().split("\n").pop()}`)
    console.log(`  import("${deep}"): ERR_PACKAGE_PATH_NOT_EXPORTED`)
  }
  const ok = spawnSync(
    process.execPath,
    ["--input-type=module", "-e", `for (const p of ["sim", "memory", "kvm"]) console.log("  import(\\"@kvmlab/" + p + "\\"):", Object.keys(await import("@kvmlab/" + p)).length, "modules")`],
    { cwd: dir, encoding: "utf8" }
  )
  if (ok.status !== 0) throw new Error(`importing the entry points failed: ${ok.stderr.trim()}`)
  process.stdout.write(ok.stdout)
})

rmSync(dir, { recursive: true, force: true })
console.log(`example: ok in ${Math.round(performance.now() - t0)} ms`)
