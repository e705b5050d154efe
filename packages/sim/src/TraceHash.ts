/**
 * The trace hash: a 64-bit digest (two 32-bit lanes) of everything a run did, fed integer by
 * integer on the hot path. Two runs with the same hash took the same decisions and saw the same
 * values; it is the cheap half of "the same seed gives the same trace".
 */

/** An incremental 64-bit hash over integers and strings. */
export class TraceHash {
  private h1 = 0x811c9dc5
  private h2 = 0x2545f491

  /** Mixes one integer (any safe integer; the high part is folded in). */
  int(x: number): void {
    const lo = x | 0
    // The high part is 0 for every |x| < 2^32 (the common case): skip the division.
    const hi = x < 0x100000000 && x > -0x100000000 ? 0 : (x / 0x100000000) | 0
    this.h1 = Math.imul(this.h1 ^ lo, 0x01000193) ^ hi
    this.h1 = (this.h1 << 13) | (this.h1 >>> 19)
    this.h2 = Math.imul(this.h2 ^ lo ^ 0x5bd1e995, 0x9e3779b1) + hi
    this.h2 = (this.h2 << 17) | (this.h2 >>> 15)
  }

  /** Mixes a string, length first so that concatenations cannot collide trivially. */
  str(s: string): void {
    this.int(s.length)
    for (let i = 0; i < s.length; i++) this.int(s.charCodeAt(i))
  }

  /** The digest as 16 lower-case hex digits. */
  digest(): string {
    let a = this.h1 ^ (this.h2 >>> 7)
    a = Math.imul(a ^ (a >>> 16), 0x85ebca6b)
    a = Math.imul(a ^ (a >>> 13), 0xc2b2ae35)
    a ^= a >>> 16
    let b = this.h2 ^ (this.h1 >>> 5)
    b = Math.imul(b ^ (b >>> 15), 0x2c1b3c6d)
    b = Math.imul(b ^ (b >>> 12), 0x297a2d39)
    b ^= b >>> 15
    return hex8(a) + hex8(b)
  }
}

const hex8 = (x: number): string => (x >>> 0).toString(16).padStart(8, "0")

/** The hash of a string on its own, as 16 hex digits (used for scenario digests). */
export const digestString = (s: string): string => {
  const h = new TraceHash()
  h.str(s)
  return h.digest()
}
