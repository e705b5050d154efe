/**
 * What each metric a run reports means, and its unit: every workload counts with `vm.count` and
 * derives rates and percentiles, so the unit follows from the name's suffix. `compare` shows means
 * over its seeds of these.
 */

/** The unit and meaning of the metric `name`. */
export const unitOf = (name: string): string => {
  if (name === "timeNs") return "virtual ns: the run's length"
  if (name === "steps") return "scheduling steps of the run"
  if (name.endsWith("_per_second")) return "per virtual second, summed over the VMs"
  if (name.endsWith("_per_shootdown")) return "per shootdown, mean over the run's shootdowns"
  const pct = /_(p50|p99|max)_ns$/.exec(name)
  if (pct !== null) return `virtual ns, ${pct[1] === "max" ? "the longest" : pct[1] === "p50" ? "the median" : "the 99th percentile"} over the run's shootdowns`
  if (name.endsWith("_ns")) return "virtual ns, summed over the run (all vCPUs and VMs)"
  const refresh = /^refreshLatency(P50|P99|Max)Ns$/.exec(name)
  if (refresh !== null) return `virtual ns, ${refresh[1] === "Max" ? "the longest" : refresh[1] === "P50" ? "the median" : "the 99th percentile"} over the run's gfn_to_pfn_cache refreshes`
  if (name === "benchmarkNs" || name === "workloadNs") return "virtual ns: when the last vCPU finished its work"
  if (name === "readCostNs") return "virtual ns: the mean cost of one clock reading"
  if (name === "pvclockUpdateMeanNs" || name === "pvclockUpdateMaxNs") return `virtual ns, the ${name.includes("Mean") ? "mean" : "longest"} over the run's VM-wide kvmclock updates: from the pair's change until every vCPU with kvmclock on has published from it`
  if (name.endsWith("Ns")) return "virtual ns, summed over the run (all vCPUs and VMs)"
  return "count, summed over the run (all vCPUs and VMs)"
}

/** The units of every metric in `metrics`, by name. */
export const unitsOf = (metrics: Readonly<Record<string, number>>): Record<string, string> =>
  Object.fromEntries(Object.keys(metrics).map((name) => [name, unitOf(name)]))

/** Percentile `p` (0-100) of `xs` by nearest rank, 0 for none (the latency metrics' p50, p99, max). */
export const percentile = (xs: ReadonlyArray<number>, p: number): number => {
  if (xs.length === 0) return 0
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}
