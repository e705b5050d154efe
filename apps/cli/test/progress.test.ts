/**
 * Progress on stderr: a bar on a terminal, cleared before the results print; lines off a
 * terminal; nothing with --quiet.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { PassThrough } from "node:stream"
import { Progress } from "../src/index.js"
import { kvmlab } from "./fixtures/kvmlab.js"

/** A stream that says it is a terminal 80 columns wide and keeps what is written to it. */
const fakeTerminal = () => {
  const s = Object.assign(new PassThrough(), { isTTY: true, columns: 80, rows: 24 })
  let out = ""
  s.on("data", (d) => (out += String(d)))
  return { stream: s as unknown as NodeJS.WritableStream, output: () => out }
}

describe("progress", () => {
  it.effect("a bar on a terminal is cleared by done: the line is erased, the cursor at the left margin", () =>
    Effect.gen(function*() {
      const t = fakeTerminal()
      yield* Effect.scoped(Effect.gen(function*() {
        const p = yield* Progress.bar("explore x", 100, t.stream)
        yield* p.tick(50)
        yield* p.done
        const afterDone = t.output().length
        yield* p.tick(60) // a tick after done draws nothing
        expect(t.output().length).toBe(afterDone)
      }))
      const out = t.output()
      expect(out).toContain("explore x [")
      // readline.cursorTo(0) then clearLine(0): ESC[1G ESC[2K, and nothing after it.
      expect(out.endsWith("\x1b[1G\x1b[2K")).toBe(true)
    }))

  it.live("off a terminal, explore, compare and litmus print progress lines on stderr; --quiet prints none", () =>
    Effect.gen(function*() {
      for (const args of [["explore", "request-race", "--runs", "400"], ["compare", "request-race", "--vary", "extraBarriers=on,off", "--seeds", "2"], ["litmus", "examples/litmus", "--engine", "fast", "--runs", "20"]]) {
        const loud = yield* kvmlab(...args)
        expect(loud.stderr).toMatch(/: \d+\/\d+/)
        const quiet = yield* kvmlab(...args, "--quiet")
        expect(quiet.status).toBe(loud.status)
        expect(quiet.stderr).not.toMatch(/: \d+\/\d+/)
        // The same results, but for the speeds measured.
        const results = (out: string) => out.replace(/\d+ runs\/s, \d+ steps\/s|in \d+\.\d+ s/g, "")
        expect(results(quiet.stdout)).toBe(results(loud.stdout))
      }
    }))
})
