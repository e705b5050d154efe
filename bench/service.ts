/**
 * The service's figures for `npm run bench`, measured through the real bins over loopback HTTP:
 *
 * - throughput: one exploration submitted to kvmlab-service (2 workers) against `kvmlab explore`
 *   of the same runs with 2 workers in one process (runs per second, and the ratio);
 * - scaling: the service with 1 worker against 2;
 * - read latency: GET /api/jobs/{id} at 200 requests per second for 10 s while a campaign runs on
 *   every core (p50 and p99; target p99 < 50 ms).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const TOKEN = "bench-token"
const now = () => Number(process.hrtime.bigint()) / 1e6
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
const round = (x: number, digits = 2) => Number(x.toFixed(digits))
const percentile = (xs: ReadonlyArray<number>, p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!

interface Running {
  readonly p: ChildProcess
  readonly url: string
  readonly data: string
}

/** Starts kvmlab-service on a free port with `workers` worker threads. */
const startService = (root: string, workers: number) =>
  new Promise<Running>((resolve, reject) => {
    const data = mkdtempSync(join(tmpdir(), "kvmlab-bench-service-"))
    const p = spawn(process.execPath, [join(root, "apps/service/bin/kvmlab-service.mjs"), "--port", "0", "--data", data, "--workers", String(workers)], {
      env: { ...process.env, KVMLAB_TOKEN: TOKEN }
    })
    let out = ""
    p.stdout.on("data", (d) => {
      out += d
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
      if (m !== null) resolve({ p, url: m[1]!, data })
    })
    p.on("exit", (code) => reject(new Error(`kvmlab-service exited ${code} before listening`)))
  })

const stopService = (s: Running) => {
  s.p.kill("SIGKILL")
  rmSync(s.data, { recursive: true, force: true })
}

const submit = async (s: Running, runs: number) => {
  const r = await fetch(`${s.url}/api/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ _tag: "explore", scenario: "request-race", runs, all: true })
  })
  if (r.status !== 201) throw new Error(`bench: submit gave ${r.status}: ${await r.text()}`)
  return ((await r.json()) as { id: string }).id
}

const job = async (s: Running, id: string) => (await (await fetch(`${s.url}/api/jobs/${id}`)).json()) as { state: string; runsDone: number }

/** Submits an exploration of `runs` runs and waits for it: runs per second from submission to the end. */
const campaign = async (s: Running, runs: number) => {
  const t = now()
  const id = await submit(s, runs)
  for (;;) {
    const j = await job(s, id)
    if (j.state === "done") break
    if (j.state === "failed" || j.state === "cancelled") throw new Error(`bench: job ${id} ended ${j.state}`)
    await sleep(50)
  }
  return Math.round((runs * 1000) / (now() - t))
}

/** `kvmlab explore` of the same campaign in one process, 2 workers: runs per second. */
const local = (root: string, runs: number) => {
  const out = JSON.parse(execFileSync(process.execPath, [join(root, "apps/cli/bin/kvmlab.mjs"), "explore", "request-race", "--runs", String(runs), "--all", "--workers", "2", "--json", "--quiet"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"]
  })) as { runsPerSecond: number }
  return out.runsPerSecond
}

/** GET /api/jobs/{id} at `rate` per second for `seconds`, while the job runs: latencies in ms. */
const readLatency = async (s: Running, id: string, rate: number, seconds: number) => {
  const latencies: Array<number> = []
  const pending: Array<Promise<void>> = []
  const start = now()
  for (let i = 0; i < rate * seconds; i++) {
    const due = start + (i * 1000) / rate
    const wait = due - now()
    if (wait > 0) await sleep(wait)
    pending.push((async () => {
      const t = now()
      const r = await fetch(`${s.url}/api/jobs/${id}`)
      await r.arrayBuffer()
      latencies.push(now() - t)
    })())
  }
  await Promise.all(pending)
  return latencies
}

export const service = async (root: string, log: (s: string) => void) => {
  const runs = 60_000
  log(`service: kvmlab explore request-race --runs ${runs} --all --workers 2 (one process)`)
  local(root, 2_000) // warm the bundle
  const oneProcess = local(root, runs)
  const byWorkers: Record<number, number> = {}
  for (const workers of [1, 2]) {
    log(`service: the same exploration submitted to kvmlab-service --workers ${workers}`)
    const s = await startService(root, workers)
    try {
      await campaign(s, 2_000) // warm the workers
      byWorkers[workers] = await campaign(s, runs)
    } finally {
      stopService(s)
    }
  }
  log("service: GET /api/jobs/{id} at 200 requests/s for 10 s while a campaign runs on both cores")
  const s = await startService(root, 2)
  let latencies: Array<number>
  try {
    const id = await submit(s, 2_000_000)
    await sleep(1000)
    latencies = await readLatency(s, id, 200, 10)
    const still = await job(s, id)
    if (still.state !== "running") throw new Error(`bench: the campaign was ${still.state} before the reads ended; make it longer`)
  } finally {
    stopService(s)
  }
  return {
    runs,
    throughput: { oneProcessRunsPerSecond: oneProcess, serviceRunsPerSecond: byWorkers[2]!, serviceOverOneProcess: round(byWorkers[2]! / oneProcess) },
    scaling: { oneWorkerRunsPerSecond: byWorkers[1]!, twoWorkersRunsPerSecond: byWorkers[2]!, twoOverOne: round(byWorkers[2]! / byWorkers[1]!) },
    readLatencyUnderLoad: {
      requests: latencies.length,
      ratePerSecond: 200,
      p50Ms: round(percentile(latencies, 50), 1),
      p99Ms: round(percentile(latencies, 99), 1),
      maxMs: round(Math.max(...latencies), 1),
      target: "p99 < 50 ms"
    }
  }
}
