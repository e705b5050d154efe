/**
 * The house rule, enforced: nothing in packages/* /src reads ambient time or randomness. The
 * simulation's time is the kernel's Clock and its randomness the seeded Prng.
 */
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const packagesDir = fileURLToPath(new URL("../../", import.meta.url))

const FORBIDDEN: ReadonlyArray<[RegExp, string]> = [
  [/\bMath\.random\s*\(/, "Math.random"],
  [/\bDate\.now\s*\(/, "Date.now"],
  [/\bnew\s+Date\s*\(/, "new Date"],
  [/\bperformance\.now\s*\(/, "performance.now"],
  [/\bprocess\.hrtime\b/, "process.hrtime"],
  [/\b(setTimeout|setInterval|setImmediate)\s*\(/, "a timer"],
  [/\bcrypto\.(random\w*|getRandomValues)\b/, "crypto randomness"],
  [/\bClock\.currentTimeMillis\b.*\bnew Date\b/, "wall clock"]
]

const sourceFiles = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? sourceFiles(p) : /\.(ts|js|mjs|cjs)$/.test(name) ? [p] : []
  })

/** Removes comments so that prose about the rule does not trip it. */
const stripComments = (src: string): string => src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1")

export const scan = (files: ReadonlyArray<string>): Array<string> =>
  files.flatMap((f) => {
    const lines = stripComments(readFileSync(f, "utf8")).split("\n")
    return lines.flatMap((line, i) =>
      FORBIDDEN.filter(([re]) => re.test(line)).map(([, what]) => `${f}:${i + 1}: ${what}: ${line.trim()}`)
    )
  })

describe("determinism", () => {
  it("no package source uses ambient time or randomness", () => {
    const srcDirs = readdirSync(packagesDir).map((p) => join(packagesDir, p, "src")).filter((d) => {
      try {
        return statSync(d).isDirectory()
      } catch {
        return false
      }
    })
    expect(srcDirs.length).toBeGreaterThanOrEqual(2)
    const files = srcDirs.flatMap(sourceFiles)
    expect(files.length).toBeGreaterThan(5)
    expect(scan(files)).toEqual([])
  })

  it("the scan catches each forbidden form (so the test above can fail)", () => {
    const dir = fileURLToPath(new URL("./fixtures/ambient", import.meta.url))
    const hits = scan(sourceFiles(dir))
    expect(hits.map((h) => h.split(": ")[1])).toEqual(["Math.random", "Date.now", "new Date", "performance.now", "a timer", "crypto randomness"])
  })
})
