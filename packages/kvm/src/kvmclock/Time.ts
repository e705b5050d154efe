/**
 * Host time for mechanism D (spec §4, §10.3): each physical CPU's TSC, the host's clocks, and the
 * fixed-point arithmetic both sides of kvmclock use.
 *
 * Real time is the simulation's virtual ns. CPU `c`'s TSC reads `floor(now * tsc_khz * (1 +
 * ratePpm[c]/10^6) / 10^6) + skew[c]` (`skew` and the rates from the scenario; equal rates are a
 * constant, synchronised TSC). The host's base
 * clock for kvmclock depends on the era:
 * - `v5.5` (since 53fafdbb8b21): CLOCK_MONOTONIC_RAW plus the boot offset — the TSC's own line,
 *   never adjusted: `now + bootNs`;
 * - `2015`: CLOCK_BOOTTIME, which NTP slews (`HostClockAdjust`): piecewise linear in `now`, its
 *   rate `1 + ppm/10^6` since the last adjustment, plus steps.
 * Reading a clock or a TSC is not a memory operation; its cost is charged by the caller.
 */
import { NSEC_PER_SEC } from "./Protocol.js"

/** Which host clock the master clock's `master_kernel_ns` comes from (spec §10.3). */
export type Era = "2015" | "v5.5"

export class HostTime {
  /** `tsc_khz`. */
  readonly tsc_khz: number
  /** Each physical CPU's TSC offset from the common line, in cycles. */
  readonly skew: ReadonlyArray<number>
  /** `gtod_is_based_on_tsc()`: the host's clocksource is the TSC (or the Hyper-V TSC page). */
  clocksourceTsc = true
  // The NTP-adjusted clock (era 2015): its value at `ntpSince`, and its rate since then.
  private ntpBase = 0
  private ntpSince = 0
  private ntpPpm = 0

  /**
   * Each physical CPU's TSC rate, in ppm off `tsc_khz` (0: `X86_FEATURE_CONSTANT_TSC` and synchronised;
   * rates that differ are an unstable TSC, which the host's clocksource does not use).
   */
  readonly ratePpm: ReadonlyArray<number>

  constructor(readonly era: Era, tsc_khz: number, skew: ReadonlyArray<number>, readonly bootNs = 0, ratePpm: ReadonlyArray<number> = []) {
    this.tsc_khz = tsc_khz
    this.skew = skew
    this.ratePpm = ratePpm
  }

  /** `rdtsc()` on physical CPU `cpu` at virtual time `now`. */
  rdtsc(cpu: number, now: number): number {
    const ppm = this.ratePpm.length === 0 ? 0 : (this.ratePpm[cpu % this.ratePpm.length] ?? 0)
    const cycles = Math.floor((now * this.tsc_khz) / 1_000_000)
    return cycles + (ppm === 0 ? 0 : Math.floor((cycles * ppm) / 1_000_000)) + (this.skew[cpu % this.skew.length] ?? 0)
  }

  /** The NTP-adjusted boot-time clock at `now` (era 2015). */
  boottime(now: number): number {
    return this.ntpBase + Math.floor(((now - this.ntpSince) * (1_000_000 + this.ntpPpm)) / 1_000_000)
  }

  /** `get_kvmclock_base_ns()`: the era's base clock at `now`. */
  kvmclockBaseNs(now: number): number {
    return this.era === "v5.5" ? now + this.bootNs : this.boottime(now)
  }

  /** `HostClockAdjust`: a new NTP rate from `now`, and/or a step. */
  adjust(now: number, ratePpm: number | undefined, stepNs: number | undefined): void {
    this.ntpBase = this.boottime(now) + (stepNs ?? 0)
    this.ntpSince = now
    if (ratePpm !== undefined) this.ntpPpm = ratePpm
  }
}

/** The largest TSC skew between two physical CPUs, in ns (CLK-3's bound). */
export const skewBoundNs = (t: HostTime): number => {
  const cycles = Math.max(...t.skew) - Math.min(...t.skew)
  return Math.ceil((cycles * 1_000_000) / t.tsc_khz)
}

const TWO_32 = 2 ** 32

/**
 * `(a * mul) >> 32` for a non-negative integer `a` below 2^53 and a u32 `mul`, exactly (the
 * `mulq; shrd $32` of `pvclock_scale_delta`), without BigInt: split `a` at 2^32 and `mul` at 2^16.
 */
const mulFrac = (a: number, mul: number): number => {
  const hi = Math.floor(a / TWO_32)
  const lo = a - hi * TWO_32
  const mh = Math.floor(mul / 65536)
  const ml = mul - mh * 65536
  const p = lo * mh // < 2^48
  const q = lo * ml // < 2^48
  const pHi = Math.floor(p / 65536)
  return hi * mul + pHi + Math.floor(((p - pHi * 65536) * 65536 + q) / TWO_32)
}

/** `pvclock_scale_delta(delta, mul_frac, shift)`: shift, then the 32.32 fixed-point multiply. */
export const pvclock_scale_delta = (delta: number, mul: number, shift: number): number => {
  const d = shift < 0 ? Math.floor(delta / 2 ** -shift) : delta * 2 ** shift
  return mulFrac(d, mul)
}

/**
 * `kvm_get_time_scale(scaled_hz, base_hz)`: the shift and the 32.32 multiplier that turn
 * `base_hz` ticks into `scaled_hz` ones (for kvmclock: TSC cycles into ns).
 */
export const kvm_get_time_scale = (scaled_hz: number, base_hz: number): { readonly shift: number; readonly mul: number } => {
  let scaled64 = BigInt(scaled_hz)
  let tps64 = BigInt(base_hz)
  let shift = 0
  const HIGH = 0xffffffff00000000n
  while (tps64 > scaled64 * 2n || (tps64 & HIGH) !== 0n) {
    tps64 >>= 1n
    shift--
  }
  let tps32 = tps64 & 0xffffffffn
  while (tps32 <= scaled64 || (scaled64 & HIGH) !== 0n) {
    if ((scaled64 & HIGH) !== 0n || (tps32 & 0x80000000n) !== 0n) scaled64 >>= 1n
    else tps32 <<= 1n
    shift++
  }
  // div_frac: (dividend << 32) / divisor
  return { shift, mul: Number((scaled64 << 32n) / tps32) }
}

/** The ns-per-cycle scale of a `tsc_khz` clock. */
export const tscScale = (tsc_khz: number) => kvm_get_time_scale(NSEC_PER_SEC, tsc_khz * 1000)
