// The kvmlab dashboard: plain browser JavaScript over the service's HTTP API (no build step, no
// framework). Every piece of text from the server goes into the page through textContent or a
// form value, never as HTML. Charts are Observable Plot's (the global `Plot`, from /dashboard/plot.js).
"use strict"

const $ = (selector) => document.querySelector(selector)

/** An element with attributes (`on*` functions become listeners) and children (strings become text). */
const h = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue
    if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v)
    else if (k === "dataset") Object.assign(e.dataset, v)
    else if (k in e && typeof v !== "string") e[k] = v
    else e.setAttribute(k, v === true ? "" : String(v))
  }
  e.append(...children.flat().filter((c) => c !== undefined && c !== null && c !== false).map((c) => (typeof c === "object" ? c : String(c))))
  return e
}

const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 3 })
const fmt = (x) => (typeof x === "number" ? number.format(x) : String(x))
const count = (n, noun) => `${fmt(n)} ${noun}${n === 1 ? "" : "s"}`

// ---------------------------------------------------------------------------------------------
// The status line and the API

const statusLine = $("#status")
const status = (text, kind = "info") => {
  statusLine.textContent = text
  statusLine.dataset.kind = kind
}

/** An API error's text: the field and message of a 400, the message of a 401 or 404. */
const describeError = (code, body) => {
  if (body !== null && typeof body === "object") {
    if (body._tag === "BadRequest") return `${body.field}: ${body.message}`
    if (body._tag === "HttpApiDecodeError" && Array.isArray(body.issues) && body.issues.length > 0) {
      return body.issues.map((i) => `${(i.path ?? []).join(".") || "body"}: ${i.message}`).join("; ")
    }
    if (typeof body.message === "string" && body.message !== "") return body.message
  }
  return typeof body === "string" && body !== "" ? body : `HTTP ${code}`
}

class ApiError extends Error {
  constructor(code, body) {
    super(describeError(code, body))
    this.status = code
    this.body = body
  }
}

const tokenInput = $("#token")
tokenInput.value = localStorage.getItem("kvmlab.token") ?? ""
tokenInput.addEventListener("input", () => localStorage.setItem("kvmlab.token", tokenInput.value.trim()))

/** A request to the API; mutating ones carry the bearer token. Rejects with an `ApiError`. */
const api = async (method, path, body) => {
  const headers = { accept: "application/json" }
  if (body !== undefined) headers["content-type"] = "application/json"
  const token = tokenInput.value.trim()
  if (method !== "GET" && token !== "") headers.authorization = `Bearer ${token}`
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  let data = text
  try {
    data = text === "" ? undefined : JSON.parse(text)
  } catch {
    // not JSON: keep the text
  }
  if (!res.ok) throw new ApiError(res.status, data)
  return data
}

/** Runs an action, showing its failure in the status line. */
const guarded = (what, f) => async (...args) => {
  try {
    return await f(...args)
  } catch (e) {
    status(e instanceof ApiError ? `${what}: ${e.status} ${e.message}` : `${what}: ${e.message ?? e}`, "error")
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios: browse, edit a copy, validate

const scenarioJson = $("#scenario-json")
const validateResult = $("#validate-result")
const form = $("#submit-form")

const loadScenarios = guarded("scenarios", async () => {
  const list = await api("GET", "/api/scenarios")
  $("#scenario-names").replaceChildren(...list.map((s) => h("option", { value: s.name })))
  $("#scenario-list").replaceChildren(...list.map((s) =>
    h("li", {},
      h("button", { type: "button", title: s.description, dataset: { testid: "scenario-item", name: s.name }, onclick: () => showScenario(s.name) },
        h("strong", {}, s.name), " ", h("small", {}, `${s.kind}, ${s.vms} VM × ${s.vcpusPerVm} vCPU, ${s.pcpus} CPUs`)))))
})

const showScenario = guarded("scenario", async (name) => {
  const s = await api("GET", `/api/scenarios/${encodeURIComponent(name)}`)
  scenarioJson.value = JSON.stringify(s, null, 2)
  validateResult.textContent = ""
  form.elements.scenario.value = name
  for (const b of document.querySelectorAll("#scenario-list button")) b.setAttribute("aria-pressed", String(b.dataset.name === name))
})

/** The edited copy as an object, or an error naming what is wrong with its JSON. */
const scenarioCopy = () => {
  let value
  try {
    value = JSON.parse(scenarioJson.value)
  } catch (e) {
    throw new Error(`the scenario copy is not JSON: ${e.message}`)
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("the scenario copy is not a JSON object")
  return value
}

$("#validate").addEventListener("click", async () => {
  validateResult.dataset.ok = "false"
  try {
    await api("POST", "/api/scenarios/validate", scenarioCopy())
    validateResult.textContent = "OK: the scenario is valid"
    validateResult.dataset.ok = "true"
  } catch (e) {
    validateResult.textContent = e instanceof ApiError && e.status !== 400 ? `${e.status} ${e.message}` : e.message
  }
})

// ---------------------------------------------------------------------------------------------
// Submitting a campaign

const kindOf = () => form.elements.kind.value
const showKind = () => {
  for (const part of form.querySelectorAll("[data-kind]")) part.hidden = part.dataset.kind !== kindOf()
}
for (const radio of form.elements.kind) radio.addEventListener("change", showKind)

/** `key=value` lines as an object; `split` turns each value into a list (`key=v1,v2`). */
const lines = (field, text, split) => {
  const out = {}
  text.split("\n").map((l) => l.trim()).filter((l) => l !== "").forEach((line, i) => {
    const eq = line.indexOf("=")
    if (eq <= 0) throw new Error(`${field}, line ${i + 1}: expected key=${split ? "v1,v2" : "value"}`)
    const key = line.slice(0, eq).trim()
    const value = line.slice(eq + 1).trim()
    out[key] = split ? value.split(",").map((v) => v.trim()).filter((v) => v !== "") : value
  })
  return out
}

const optionalNumber = (input) => (input.value.trim() === "" ? undefined : Number(input.value))

/** The job the form describes, as `POST /api/jobs` takes it. */
const specOf = () => {
  const f = form.elements
  const spec = {
    _tag: kindOf(),
    scenario: f.useCopy.checked ? scenarioCopy() : f.scenario.value.trim(),
    bugs: f.bugs.value.split(",").map((b) => b.trim()).filter((b) => b !== ""),
    variant: lines("settings", f.variant.value, false)
  }
  const seed = optionalNumber(f.seed)
  if (seed !== undefined) spec.seed = seed
  if (spec._tag === "explore") {
    const runs = optionalNumber(f.runs)
    if (runs !== undefined) spec.runs = runs
    spec.strategy = f.strategy.value
    spec.all = f.all.checked
  } else {
    spec.vary = lines("vary", f.vary.value, true)
    const seeds = optionalNumber(f.seeds)
    if (seeds !== undefined) spec.seeds = seeds
    if (f.compareStrategy.value !== "") spec.strategy = f.compareStrategy.value
  }
  return spec
}

form.addEventListener("submit", guarded("submit", async (event) => {
  event.preventDefault()
  const job = await api("POST", "/api/jobs", specOf())
  status(`submitted ${job.kind} job ${job.id} (${job.runsTotal} runs)`, "ok")
  await loadJobs()
  selectJob(job.id)
}))

// Bug switches: suggestions for the name after the last comma.
let bugNames = []
const bugsInput = form.elements.bugs
const suggestBugs = () => {
  const cut = bugsInput.value.lastIndexOf(",")
  const prefix = cut < 0 ? "" : `${bugsInput.value.slice(0, cut + 1).trimEnd()} `
  $("#bug-names").replaceChildren(...bugNames.map((b) => h("option", { value: `${prefix}${b}` })))
}
bugsInput.addEventListener("input", suggestBugs)
const loadBugs = guarded("bug switches", async () => {
  bugNames = await api("GET", "/dashboard/bugs.json")
  suggestBugs()
})

// ---------------------------------------------------------------------------------------------
// Jobs: the list, and the selected job's progress and result

const ENDED = new Set(["done", "failed", "cancelled"])
let current = { id: undefined, events: undefined }

const loadJobs = guarded("jobs", async () => {
  const page = await api("GET", "/api/jobs?limit=50")
  $("#job-list").replaceChildren(...page.jobs.map((j) =>
    h("li", {},
      h("button", { type: "button", dataset: { testid: "job-item", id: j.id, state: j.state }, "aria-pressed": String(j.id === current.id), onclick: () => selectJob(j.id) },
        h("strong", {}, `${j.kind} ${j.scenario}`), " ", h("span", { class: `state ${j.state}` }, j.state), " ",
        h("small", {}, `${fmt(j.runsDone)}/${fmt(j.runsTotal)} runs, ${count(j.violations, "violation")}, ${new Date(j.createdAt).toLocaleString()}`)))))
})
$("#refresh-jobs").addEventListener("click", loadJobs)

const progressBar = $("#progress")
const showProgress = (p) => {
  progressBar.value = p.percent
  progressBar.dataset.percent = String(p.percent)
  progressBar.dataset.state = p.state
  const eta = p.etaSeconds === undefined ? "" : `, about ${fmt(p.etaSeconds)} s left`
  const rate = p.runsPerSecond > 0 ? `, ${fmt(p.runsPerSecond)} runs/s` : ""
  $("#progress-text").textContent = `${p.percent}% ${p.state}: ${fmt(p.runsDone)}/${fmt(p.runsTotal)} runs, ${count(p.violations, "violation")}${rate}${eta}`
  $("#cancel").disabled = ENDED.has(p.state)
}

const selectJob = guarded("job", async (id) => {
  current.events?.close()
  current = { id, events: undefined }
  history.replaceState(null, "", `#job=${encodeURIComponent(id)}`)
  for (const b of document.querySelectorAll("#job-list button")) b.setAttribute("aria-pressed", String(b.dataset.id === id))
  $("#job").hidden = false
  $("#job-id").textContent = id
  $("#result").replaceChildren()
  delete progressBar.dataset.events
  const job = await api("GET", `/api/jobs/${encodeURIComponent(id)}`)
  if (current.id !== id) return
  $("#job-summary").textContent = `${job.kind} of ${job.scenario}, submitted ${new Date(job.createdAt).toLocaleString()}: ${JSON.stringify(job.spec)}`
  showProgress({ ...job, percent: job.state === "done" ? 100 : Math.min(99, Math.floor((100 * job.runsDone) / Math.max(1, job.runsTotal))), runsPerSecond: 0 })
  // Server-Sent Events until the job ends; the server closes the stream then, and closing our side
  // keeps EventSource from reconnecting (it would resume after the last event id, if it did).
  const events = new EventSource(`/api/jobs/${encodeURIComponent(id)}/events`)
  current.events = events
  events.addEventListener("progress", (message) => {
    if (current.id !== id) return events.close()
    const p = JSON.parse(message.data)
    progressBar.dataset.events = String(Number(progressBar.dataset.events ?? 0) + 1)
    showProgress(p)
    if (ENDED.has(p.state)) {
      events.close()
      ended(id, p.state)
    }
  })
  events.addEventListener("error", () => {
    if (events.readyState === EventSource.CLOSED && current.id === id) status(`job ${id}: the progress stream closed`, "error")
  })
})

const ended = guarded("result", async (id, state) => {
  loadJobs()
  if (state === "done") {
    const result = await api("GET", `/api/jobs/${encodeURIComponent(id)}/result`)
    if (current.id !== id) return
    $("#result").replaceChildren(result._tag === "compare" ? compared(result) : explored(id, result))
    status(`job ${id} done`, "ok")
  } else {
    const job = await api("GET", `/api/jobs/${encodeURIComponent(id)}`)
    if (current.id !== id) return
    $("#result").replaceChildren(h("p", { class: "error" }, `The job ${state}${job.error ? `: ${job.error}` : "."}`))
  }
})

$("#cancel").addEventListener("click", guarded("cancel", async () => {
  if (current.id === undefined) return
  const job = await api("POST", `/api/jobs/${encodeURIComponent(current.id)}/cancel`)
  status(`job ${job.id}: ${job.state}`, "ok")
}))

// ---------------------------------------------------------------------------------------------
// Results

const copyButton = (input) =>
  h("button", {
    type: "button",
    dataset: { testid: "copy" },
    onclick: async (event) => {
      const button = event.currentTarget
      try {
        await navigator.clipboard.writeText(input.value)
      } catch {
        // No clipboard API (a page not served from a secure origin): select the text and copy that.
        input.select()
        document.execCommand("copy")
      }
      button.textContent = "Copied"
      setTimeout(() => (button.textContent = "Copy"), 1500)
    }
  }, "Copy")

/** An exploration: its counterexamples, each with its replay token and its trace. */
const explored = (id, r) => {
  const summary = h("p", { dataset: { testid: "result-summary" } },
    `${fmt(r.runs)} runs of ${r.scenario} (${r.strategy}, seed ${r.seed}), ${fmt(r.distinctTraces)} distinct traces, ${count(r.violations.length, "counterexample")}.`)
  if (r.violations.length === 0) return h("div", {}, summary, h("p", { dataset: { testid: "no-violations" } }, "No invariant broke."))
  const rows = r.violations.map((v, n) => {
    const token = h("input", { type: "text", readonly: true, value: v.replay, spellcheck: "false", "aria-label": `Replay token of ${v.invariant}`, dataset: { testid: "replay" } })
    return h("tr", { dataset: { testid: "violation", invariant: v.invariant } },
      h("td", { dataset: { testid: "invariant" } }, v.invariant),
      h("td", {}, v.message),
      h("td", { class: "num" }, fmt(v.run)),
      h("td", { class: "num" }, String(v.seed)),
      h("td", { class: "num" }, fmt(v.count)),
      h("td", { class: "token" }, token, copyButton(token)),
      h("td", {},
        h("a", { href: `/api/jobs/${encodeURIComponent(id)}/violations/${n}/trace`, download: `kvmlab-${v.invariant}-run${v.run}.trace.json`, dataset: { testid: "trace" } }, "Download trace"),
        h("br"), h("small", {}, "open in ", h("a", { href: "https://ui.perfetto.dev", target: "_blank", rel: "noopener noreferrer" }, "ui.perfetto.dev"))))
  })
  return h("div", {}, summary,
    h("table", { dataset: { testid: "violations" } },
      h("caption", {}, "Counterexamples"),
      h("thead", {}, h("tr", {}, ["Invariant", "Message", "Run", "Seed", "Count", "Replay token", "Trace"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows)))
}

const rowLabel = (variant) => Object.entries(variant).map(([k, v]) => `${k}=${v}`).join(" ") || "(base)"

/** One bar chart of a metric over the rows, the unit in the y axis's label. */
const chart = (metric, unit, labels, rows) => {
  const data = rows.flatMap((r) => (typeof r.metrics[metric] === "number" ? [{ label: r.label, value: r.metrics[metric] }] : []))
  const rotate = labels.length > 3 || labels.some((l) => l.length > 14)
  const svg = Plot.plot({
    className: "kvl-plot",
    width: 480,
    height: rotate ? 280 : 220,
    marginLeft: 60,
    marginBottom: rotate ? 90 : 30,
    x: { domain: labels, label: null, tickRotate: rotate ? -30 : 0 },
    y: { label: unit ? `${metric} (${unit})` : metric, grid: true },
    marks: [
      Plot.barY(data, { x: "label", y: "value", fill: "steelblue", title: (d) => `${d.label}: ${fmt(d.value)}` }),
      Plot.ruleY([0])
    ]
  })
  // Plot adds an inline <style>, which the page's Content-Security-Policy refuses; style.css has its rules.
  for (const s of svg.querySelectorAll("style")) s.remove()
  return h("figure", { dataset: { testid: "chart", metric } }, h("figcaption", {}, metric), svg)
}

/** A comparison: a chart per metric, and the table of rows. */
const compared = (r) => {
  const rows = r.rows.map((row) => ({ ...row, label: rowLabel(row.variant) }))
  const labels = rows.map((row) => row.label)
  const metrics = [...new Set([...Object.keys(r.metricUnits), ...rows.flatMap((row) => Object.keys(row.metrics))])]
  const table = h("table", { dataset: { testid: "compare-table" } },
    h("caption", {}, `Means over ${count(r.seeds, "seed")} per row`),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Metric"), h("th", { scope: "col" }, "Unit"), labels.map((l) => h("th", { scope: "col" }, l)))),
    h("tbody", {},
      h("tr", {}, h("th", { scope: "row" }, "violations"), h("td", {}, "runs"), rows.map((row) => h("td", { class: "num" }, fmt(row.violations)))),
      metrics.map((m) =>
        h("tr", {}, h("th", { scope: "row" }, m), h("td", {}, r.metricUnits[m] ?? ""),
          rows.map((row) => h("td", { class: "num" }, row.metrics[m] === undefined ? "–" : fmt(row.metrics[m])))))))
  const charts = typeof Plot === "undefined"
    ? h("p", { class: "error" }, "Observable Plot did not load: no charts.")
    : h("div", { class: "charts", dataset: { testid: "charts" } }, metrics.map((m) => chart(m, r.metricUnits[m], labels, rows)))
  return h("div", {},
    h("p", { dataset: { testid: "result-summary" } }, `${rows.length} rows of ${r.scenario} (${r.strategy}), ${r.seeds} seeds each.`),
    charts,
    h("div", { class: "scroll" }, table))
}

// ---------------------------------------------------------------------------------------------

showKind()
loadScenarios()
loadBugs()
loadJobs().then(() => {
  const m = /^#job=(.+)$/.exec(location.hash)
  if (m) selectJob(decodeURIComponent(m[1]))
})
