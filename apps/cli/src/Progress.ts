/**
 * Progress on stderr for long work: a bar (cli-progress) when stderr is a terminal, otherwise a
 * line at every tenth of the way, so CI logs stay short. Where it goes is the `Reporter` service:
 * the bin provides `layerTerminal`, which may draw on the real terminal; tests and embedders
 * provide `layerLines`, whose lines go through the Console like every other output. Scoped: the
 * bar is stopped on exit.
 */
import { Presets, SingleBar } from "cli-progress"
import { Console, Context, Effect, Layer, Scope } from "effect"

/** One piece of long work in progress: report how many of its units are done. */
export interface Progress {
  readonly tick: (done: number) => Effect.Effect<void>
  /** The work is over: a bar is cleared from the terminal, so the results print on a clean line. */
  readonly done: Effect.Effect<void>
}

/** Makes the progress display for `total` units of `what`; silent when `total` is below `minTotal`. */
export class Reporter extends Context.Tag("@kvmlab/cli/Progress/Reporter")<Reporter, {
  readonly make: (what: string, total: number, minTotal: number) => Effect.Effect<Progress, never, Scope.Scope>
}>() {}

/** A progress reporter for `total` units of `what`; silent when `total` is below `minTotal`. */
export const make = (what: string, total: number, minTotal = 50): Effect.Effect<Progress, never, Reporter | Scope.Scope> =>
  Effect.flatMap(Reporter, (r) => r.make(what, total, minTotal))

/** No progress at all (`--quiet`, or work too small to report). */
export const silent: Progress = { tick: () => Effect.void, done: Effect.void }

/** The progress of `what`, or none with `--quiet`. */
export const unlessQuiet = (quiet: boolean, what: string, total: number, minTotal: number): Effect.Effect<Progress, never, Reporter | Scope.Scope> =>
  quiet ? Effect.succeed(silent) : make(what, total, minTotal)

/**
 * Progress made at its first tick: work that ends before its first report (most runs) draws
 * nothing, long work shows its bar or lines from then on.
 */
export const onFirstTick = (make: Effect.Effect<Progress, never, Scope.Scope>): Effect.Effect<Progress, never, Scope.Scope> =>
  Effect.map(Effect.scope, (scope): Progress => {
    let made: Progress | undefined
    return {
      tick: (done) =>
        Effect.suspend(() =>
          made !== undefined ? made.tick(done) : Effect.flatMap(Scope.extend(make, scope), (p) => {
            made = p
            return p.tick(done)
          })
        ),
      done: Effect.suspend(() => made?.done ?? Effect.void)
    }
  })

/**
 * A turn of the event loop. Work that runs on this thread (a long run, a litmus search) takes
 * one between chunks, so a signal (Ctrl-C, SIGTERM) is handled within a chunk: Effect's own
 * yield runs other fibers but may not let the event loop run for a long time.
 */
export const eventLoopTurn: Effect.Effect<void> = Effect.async<void>((resume) => {
  const t = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(t))
})

/**
 * Runs work that pauses now and then (a generator yielding at each pause, returning its result)
 * to its end, with a turn of the event loop at each pause, so Ctrl-C stops it within a pause.
 */
export const stepwise = <A>(chunks: Generator<unknown, A, void>): Effect.Effect<A> =>
  Effect.suspend(function next(): Effect.Effect<A> {
    const r = chunks.next()
    return r.done === true ? Effect.succeed(r.value) : Effect.zipRight(eventLoopTurn, Effect.suspend(next))
  })

/** A line on stderr at every tenth of the way, and at the end. */
const lines = (what: string, total: number): Progress => {
  let next = Math.ceil(total / 10)
  return {
    tick: (done) =>
      Effect.suspend(() => {
        if (done < next && done !== total) return Effect.void
        next = done + Math.ceil(total / 10)
        return Console.error(`${what}: ${done}/${total}`)
      }),
    done: Effect.void
  }
}

/**
 * A cli-progress bar on `stream` (the process's stderr), redrawn up to 10 times a second. `done`
 * (or the end of the scope, whichever comes first) stops it and clears its line, so whatever
 * prints next starts at the left margin of an empty line.
 */
export const bar = (what: string, total: number, stream: NodeJS.WritableStream = process.stderr): Effect.Effect<Progress, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const b = new SingleBar({ stream, format: `${what} [{bar}] {value}/{total} {eta}s left`, clearOnComplete: true, fps: 10, hideCursor: false }, Presets.shades_classic)
      b.start(total, 0)
      return b
    }),
    (b) => Effect.sync(() => b.stop()) // stop() after stop() does nothing
  ).pipe(Effect.map((b): Progress => ({ tick: (done) => Effect.sync(() => b.update(done)), done: Effect.sync(() => b.stop()) })))

/** Progress as lines through the Console, never a bar: for tests and embedders, which capture it. */
export const layerLines: Layer.Layer<Reporter> = Layer.succeed(Reporter, {
  make: (what, total, minTotal) => Effect.sync(() => (total < minTotal ? silent : lines(what, total)))
})

/** The bin's progress: a bar when the process's stderr is a terminal, lines through the Console otherwise. */
export const layerTerminal: Layer.Layer<Reporter> = Layer.succeed(Reporter, {
  make: (what, total, minTotal) =>
    Effect.suspend(() => (total < minTotal ? Effect.succeed(silent) : process.stderr.isTTY ? bar(what, total) : Effect.succeed(lines(what, total))))
})
