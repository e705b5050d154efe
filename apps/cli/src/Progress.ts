/**
 * Progress on stderr for long work: a bar (cli-progress) when stderr is a terminal, otherwise a
 * line at every tenth of the way, so CI logs stay short. Scoped: the bar is stopped on exit.
 */
import { Presets, SingleBar } from "cli-progress"
import { Effect } from "effect"

export interface Progress {
  readonly tick: (done: number) => Effect.Effect<void>
}

/** A progress reporter for `total` units of `what`; silent when `total` is below `minTotal`. */
export const make = (what: string, total: number, minTotal = 50) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      if (total < minTotal) return { bar: undefined, tick: (_: number) => Effect.void }
      if (process.stderr.isTTY) {
        const bar = new SingleBar({ stream: process.stderr, format: `${what} [{bar}] {value}/{total} {eta}s left` }, Presets.shades_classic)
        bar.start(total, 0)
        return { bar, tick: (done: number) => Effect.sync(() => bar.update(done)) }
      }
      let next = Math.ceil(total / 10)
      return {
        bar: undefined,
        tick: (done: number) =>
          Effect.sync(() => {
            if (done >= next || done === total) {
              process.stderr.write(`${what}: ${done}/${total}\n`)
              next = done + Math.ceil(total / 10)
            }
          })
      }
    }),
    (p) => Effect.sync(() => p.bar?.stop())
  ).pipe(Effect.map((p): Progress => ({ tick: p.tick })))
