/**
 * Replay tokens: one printable string that reproduces a run exactly. It carries the format
 * version, the seed, the strategy the run was made with (and its timing mode), the bounds, a
 * digest of the program or scenario, the `effect` version, the recorded decisions (the actor
 * chosen at every point where more than one could run) and the expected step count and trace
 * hash, so a replay that diverges is caught at the first wrong decision or at the end.
 *
 * Layout: `kvl1.` + base64url(deflate(varint fields)); deflate (fflate) keeps tokens of
 * thousands of decisions short enough to paste.
 */
import { Schema } from "effect"
import { deflateSync, inflateSync } from "fflate"
import type { SearchStrategy } from "./Strategy.js"

/** Raised when a string is not a replay token this version understands. */
export class InvalidReplayToken extends Schema.TaggedError<InvalidReplayToken>()("InvalidReplayToken", {
  message: Schema.String
}) {}

/** Everything a token holds. */
export interface ReplayTokenData {
  readonly seed: number
  readonly strategy: SearchStrategy
  readonly maxSteps: number
  readonly maxTimeNs: number
  readonly digest: string
  readonly effectVersion: string
  readonly steps: number
  readonly traceHash: string
  readonly decisions: ReadonlyArray<number>
}

const PREFIX = "kvl1."
const FORMAT = 1
const TAGS = ["random", "pct", "timed", "swarm"] as const

/** Encodes a run as a token. */
export const encode = (d: ReplayTokenData): string => {
  const w = new Writer()
  w.uint(FORMAT)
  w.uint(d.seed)
  w.uint(TAGS.indexOf(d.strategy._tag))
  w.uint(d.strategy._tag === "pct" ? d.strategy.depth : 0)
  w.uint(d.strategy._tag === "pct" ? d.strategy.steps ?? 0 : 0)
  w.uint(d.maxSteps)
  w.uint(d.maxTimeNs)
  w.str(d.digest)
  w.str(d.effectVersion)
  w.uint(d.steps)
  w.str(d.traceHash)
  w.uint(d.decisions.length)
  for (const x of d.decisions) w.uint(x)
  return PREFIX + toBase64Url(deflateSync(w.bytes(), { level: 9 }))
}

/** Decodes a token, or explains what is wrong with it. */
export const decode = (token: string): ReplayTokenData | InvalidReplayToken => {
  const fail = (message: string) => new InvalidReplayToken({ message })
  const t = token.trim()
  if (t === "") return fail(`the token is empty; a replay token starts with "${PREFIX}"`)
  if (!t.startsWith(PREFIX)) return fail(`a replay token starts with "${PREFIX}"`)
  if (t.length === PREFIX.length) return fail(`the token has nothing after "${PREFIX}"`)
  let bytes: Uint8Array
  try {
    bytes = inflateSync(fromBase64Url(t.slice(PREFIX.length)))
  } catch {
    return fail("the token is damaged (its payload does not decompress)")
  }
  const r = new Reader(bytes)
  try {
    const format = r.uint()
    if (format !== FORMAT) return fail(`token format ${format} is not supported (this build reads ${FORMAT})`)
    const seed = r.uint()
    const tag = TAGS[r.uint()]
    const depth = r.uint()
    const pctSteps = r.uint()
    if (tag === undefined) return fail("the token names an unknown strategy")
    const strategy: SearchStrategy = tag === "pct"
      ? (pctSteps > 0 ? { _tag: "pct", depth, steps: pctSteps } : { _tag: "pct", depth })
      : { _tag: tag }
    const maxSteps = r.uint()
    const maxTimeNs = r.uint()
    const digest = r.str()
    const effectVersion = r.str()
    const steps = r.uint()
    const traceHash = r.str()
    const n = r.uint()
    const decisions: Array<number> = new Array(n)
    for (let i = 0; i < n; i++) decisions[i] = r.uint()
    if (!r.done()) return fail("the token has trailing bytes")
    return { seed, strategy, maxSteps, maxTimeNs, digest, effectVersion, steps, traceHash, decisions }
  } catch {
    return fail("the token is truncated")
  }
}

class Writer {
  private buf = new Uint8Array(64)
  private n = 0
  private push(b: number) {
    if (this.n === this.buf.length) {
      const next = new Uint8Array(this.buf.length * 2)
      next.set(this.buf)
      this.buf = next
    }
    this.buf[this.n++] = b
  }
  uint(x: number) {
    if (!Number.isSafeInteger(x) || x < 0) throw new RangeError(`replay token field out of range: ${x}`)
    while (x >= 0x80) {
      this.push((x % 0x80) | 0x80)
      x = Math.floor(x / 0x80)
    }
    this.push(x)
  }
  str(s: string) {
    const b = new TextEncoder().encode(s)
    this.uint(b.length)
    for (const x of b) this.push(x)
  }
  bytes() {
    return this.buf.subarray(0, this.n)
  }
}

class Reader {
  private i = 0
  constructor(private readonly b: Uint8Array) {}
  uint(): number {
    let x = 0
    let scale = 1
    for (;;) {
      if (this.i >= this.b.length) throw new RangeError("truncated")
      const byte = this.b[this.i++]!
      x += (byte & 0x7f) * scale
      if (byte < 0x80) return x
      scale *= 0x80
      if (scale > 2 ** 56) throw new RangeError("varint too long")
    }
  }
  str(): string {
    const n = this.uint()
    if (this.i + n > this.b.length) throw new RangeError("truncated")
    const s = new TextDecoder().decode(this.b.subarray(this.i, this.i + n))
    this.i += n
    return s
  }
  done() {
    return this.i === this.b.length
  }
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
const LOOKUP = new Map([...ALPHABET].map((c, i) => [c, i]))

const toBase64Url = (b: Uint8Array): string => {
  let out = ""
  for (let i = 0; i < b.length; i += 3) {
    const x = (b[i]! << 16) | ((b[i + 1] ?? 0) << 8) | (b[i + 2] ?? 0)
    out += ALPHABET[(x >>> 18) & 63]! + ALPHABET[(x >>> 12) & 63]!
    if (i + 1 < b.length) out += ALPHABET[(x >>> 6) & 63]!
    if (i + 2 < b.length) out += ALPHABET[x & 63]!
  }
  return out
}

const fromBase64Url = (s: string): Uint8Array => {
  const out = new Uint8Array(Math.floor((s.length * 3) / 4))
  let n = 0
  for (let i = 0; i < s.length; i += 4) {
    const v = [0, 1, 2, 3].map((k) => (i + k < s.length ? LOOKUP.get(s[i + k]!) : 0))
    if (v.some((x) => x === undefined)) throw new RangeError("not base64url")
    const x = (v[0]! << 18) | (v[1]! << 12) | (v[2]! << 6) | v[3]!
    out[n++] = (x >>> 16) & 255
    if (i + 2 < s.length) out[n++] = (x >>> 8) & 255
    if (i + 3 < s.length) out[n++] = x & 255
  }
  return out.subarray(0, n)
}
