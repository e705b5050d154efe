/**
 * The one source of randomness in a simulation run: a small seeded PRNG with an integer-only API
 * (xoshiro128**, seeded through splitmix32), after TigerBeetle's `stdx/prng.zig`. Every draw the
 * kernel makes comes from here, so a seed fixes the whole run.
 */

/** splitmix32: spreads a 32-bit seed into well-mixed words; used only to seed and to split. */
export const splitmix32 = (x: number): number => {
  let z = (x + 0x9e3779b9) | 0
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return (z ^ (z >>> 16)) >>> 0
}

/** Checks that a seed is an integer in [0, 2^32); the message names the problem. */
export const seedProblem = (seed: unknown): string | undefined =>
  typeof seed !== "number" || !Number.isInteger(seed)
    ? `seed must be an integer, got ${String(seed)}`
    : seed < 0 || seed > 0xffffffff
    ? `seed must be in [0, 4294967295], got ${seed}`
    : undefined

/** A seeded generator of 32-bit words; `int(n)` is unbiased. */
export class Prng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: number) {
    let s = seed >>> 0
    this.a = s = splitmix32(s)
    this.b = s = splitmix32(s)
    this.c = s = splitmix32(s)
    this.d = splitmix32(s)
    if ((this.a | this.b | this.c | this.d) === 0) this.d = 1 // the all-zero state is a fixed point
  }

  /** The next 32-bit unsigned word. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0
    const t = this.b << 9
    this.c ^= this.a
    this.d ^= this.b
    this.b ^= this.c
    this.a ^= this.d
    this.c ^= t
    this.d = rotl(this.d, 11)
    return result
  }

  /** A uniform integer in [0, bound), 1 <= bound <= 2^32 (rejection sampling, so no modulo bias). */
  int(bound: number): number {
    if (!(bound >= 1 && bound <= 0x100000000)) throw new RangeError(`Prng.int: bound ${bound} out of range`)
    if (bound === 1) return 0
    if ((bound & (bound - 1)) === 0 && bound <= 0x40000000) return this.nextU32() & (bound - 1) // a power of two: no bias, no division
    const limit = 0x100000000 - (0x100000000 % bound)
    for (;;) {
      const x = this.nextU32()
      if (x < limit) return x % bound
    }
  }

  /** true with probability numerator/denominator. */
  chance(numerator: number, denominator: number): boolean {
    return this.int(denominator) < numerator
  }

  /** A new generator derived from this one's seed stream and a key; does not disturb other keys. */
  static derive(seed: number, key: number): number {
    return splitmix32((splitmix32(seed >>> 0) ^ Math.imul(key + 1, 0x27d4eb2d)) >>> 0)
  }
}

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k))
