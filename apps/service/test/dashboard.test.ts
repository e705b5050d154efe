/**
 * The web dashboard in a real browser: the service on a real port (a SQLite file in a temporary
 * folder, real worker threads), Debian's Chromium driven headless by playwright-core. A user
 * without the token is told so; with it, an exploration of a bug switch shows its progress to
 * 100% and then the counterexample with its invariant, its replay token (the API's, copied to the
 * clipboard by the Copy button) and a trace that downloads as Perfetto JSON. A broken copy of a
 * scenario is refused naming the field; a comparison shows Observable Plot charts. The page's
 * Content-Security-Policy refuses nothing it uses, and no script fails.
 *
 * No fixed sleeps: every step waits for what the page shows, with a generous bound for a busy machine.
 */
import { HttpServer } from "@effect/platform"
import { NodeContext, NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { mkdtempSync, readFileSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Browser, chromium, type Page } from "playwright-core"
import * as Service from "../src/Service.js"

const TOKEN = "dashboard-test-token"
/** The most any one step waits for the page. */
const WAIT = 60_000

/** The service on a free port of this machine. */
const server = () =>
  Service.layer({ data: mkdtempSync(join(tmpdir(), "kvmlab-dashboard-")), workers: 2, token: TOKEN, version: "test" }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
    Layer.provide(NodeContext.layer)
  )

const baseUrl = HttpServer.addressWith((address) =>
  address._tag === "TcpAddress" ? Effect.succeed(`http://${address.hostname}:${address.port}`) : Effect.dieMessage("expected a TCP address"))

/** Chromium, headless, closed with the scope. Root (as in a container) needs --no-sandbox. */
const launch = Effect.acquireRelease(
  Effect.promise(() =>
    chromium.launch({
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: process.getuid?.() === 0 ? ["--no-sandbox", "--disable-dev-shm-usage"] : ["--disable-dev-shm-usage"]
    })
  ),
  (browser) => Effect.promise(() => browser.close())
)

/** Waits for something the page shows; a timeout says what the status line said. */
const shown = async (page: Page, selector: string, options?: { readonly hasText?: RegExp | string; readonly state?: "attached" | "visible" }) => {
  try {
    await page.locator(selector, options?.hasText === undefined ? {} : { hasText: options.hasText }).first().waitFor({ timeout: WAIT, state: options?.state ?? "visible" })
  } catch (e) {
    const status = await page.locator("[data-testid=status]").textContent().catch(() => null)
    throw new Error(`${selector} ${options?.hasText ?? ""} not shown (status line: ${JSON.stringify(status)}): ${(e as Error).message}`)
  }
}

/** A new page on the dashboard, recording what the browser refused (CSP) and uncaught script errors. */
const open = async (browser: Browser, base: string) => {
  const context = await browser.newContext({ acceptDownloads: true })
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base })
  const page = await context.newPage()
  const problems: Array<string> = []
  page.on("pageerror", (e) => problems.push(`script error: ${e.message}`))
  page.on("console", (m) => {
    if (m.type() === "error" && /Content.Security.Policy/i.test(m.text())) problems.push(`refused: ${m.text()}`)
  })
  const response = await page.goto(`${base}/`)
  expect(response?.status()).toBe(200)
  expect(response?.headers()["content-security-policy"]).toContain("default-src 'self'")
  await shown(page, "[data-testid=scenario-item][data-name=request-race]")
  return { page, problems }
}

/** Waits until an element's text matches. */
const text = (page: Page, testid: string, pattern: RegExp) => shown(page, `[data-testid=${testid}]`, { hasText: pattern })

/** Waits for the selected job's progress bar to show it done, at 100%, from the job's progress events. */
const done = async (page: Page) => {
  await shown(page, "[data-testid=progress][data-percent='100'][data-state=done][data-events]")
  expect(Number(await page.locator("[data-testid=progress]").getAttribute("data-events"))).toBeGreaterThan(0)
  expect(await page.locator("[data-testid=progress]").getAttribute("value")).toBe("100")
  await text(page, "progress-text", /^100% done/)
}

/**
 * Runs `f` on a new page of the dashboard, in a browser for the test, against the service of the
 * test; the page must end without a refusal or a script error.
 */
const onPage = (f: (page: Page, base: string) => Promise<void>) =>
  Effect.gen(function*() {
    const base = yield* baseUrl
    yield* Effect.scoped(Effect.gen(function*() {
      const browser = yield* launch
      yield* Effect.promise(async () => {
        const { page, problems } = await open(browser, base)
        await f(page, base)
        expect(problems).toEqual([])
      })
    }))
  }).pipe(Effect.provide(server()))

describe("the dashboard", () => {
  it.live("an exploration of a bug switch: 401 without the token, progress to 100%, the counterexample with its token and trace", () =>
    onPage(async (page, base) => {
      // Only the fixed paths are served.
      expect((await page.request.get(`${base}/dashboard/%2e%2e/package.json`)).status()).toBe(404)
      expect((await page.request.get(`${base}/dashboard/nope.js`)).status()).toBe(404)
      await shown(page, "#bug-names option[value='A.noEntryBarrier']", { state: "attached" })

      // A copy of a scenario: valid as it is, refused naming the field once broken.
      await page.locator("[data-testid=scenario-item][data-name=request-race]").click()
      await expect.poll(() => page.locator("[data-testid=scenario-json]").inputValue(), { timeout: WAIT }).toContain(`"name": "request-race"`)
      const copy = JSON.parse(await page.locator("[data-testid=scenario-json]").inputValue()) as Record<string, unknown>
      await page.locator("[data-testid=validate]").click()
      await text(page, "validate-result", /^OK/)
      await page.locator("[data-testid=scenario-json]").fill(JSON.stringify({ ...copy, vms: 0 }, null, 2))
      await page.locator("[data-testid=validate]").click()
      await text(page, "validate-result", /^vms: .*greater than or equal to 1/)

      // The exploration's form; without the token the service says what is missing.
      await page.locator("[data-testid=scenario]").fill("request-race")
      await page.locator("[data-testid=bugs]").fill("A.noEntryBarrier")
      await page.locator("[data-testid=runs]").fill("2000")
      await page.locator("[data-testid=seed]").fill("1")
      await page.locator("[data-testid=submit]").click()
      await text(page, "status", /401 missing bearer token/)

      await page.locator("[data-testid=token]").fill(TOKEN)
      expect(await page.evaluate("localStorage.getItem('kvmlab.token')")).toBe(TOKEN)
      await page.locator("[data-testid=submit]").click()
      await done(page)

      // The counterexample: REQ-1, with the API's replay token, and its trace.
      await shown(page, "[data-testid=violation][data-invariant=REQ-1]")
      const row = page.locator("[data-testid=violation][data-invariant=REQ-1]").first()
      const token = await row.locator("[data-testid=replay]").inputValue()
      expect(token).toMatch(/^kvl1\./)
      const id = (await page.locator("[data-testid=job-id]").textContent()) ?? ""
      const result = await (await page.request.get(`${base}/api/jobs/${id}/result`)).json() as { violations: Array<{ invariant: string; replay: string }> }
      expect(result.violations.find((v) => v.invariant === "REQ-1")?.replay).toBe(token)
      await shown(page, `[data-testid=job-item][data-id='${id}'][data-state=done]`)

      await row.locator("[data-testid=copy]").click()
      await expect.poll(() => page.evaluate("navigator.clipboard.readText()"), { timeout: WAIT }).toBe(token)

      const [download] = await Promise.all([page.waitForEvent("download", { timeout: WAIT }), row.locator("[data-testid=trace]").click()])
      expect(download.suggestedFilename()).toMatch(/\.json$/)
      const trace = JSON.parse(readFileSync(await download.path(), "utf8")) as { traceEvents: Array<{ name: string }> }
      expect(trace.traceEvents.length).toBeGreaterThan(0)
      expect(trace.traceEvents.some((e) => e.name === "VIOLATION REQ-1")).toBe(true)

    }), 240_000)

  it.live("a comparison shows an Observable Plot bar chart per metric, the unit on the y axis", () =>
    onPage(async (page) => {
      await page.locator("[data-testid=token]").fill(TOKEN)
      await page.locator("[data-testid=kind-compare]").check()
      await page.locator("[data-testid=scenario]").fill("tlb-shootdown")
      await page.locator("[data-testid=variant]").fill("durationNs=20000000")
      await page.locator("[data-testid=vary]").fill("vms=1,2")
      await page.locator("[data-testid=seeds]").fill("2")
      await page.locator("[data-testid=submit]").click()
      await done(page)

      await shown(page, "[data-testid=chart][data-metric=ipis_per_shootdown] svg")
      const chart = page.locator("[data-testid=chart][data-metric=ipis_per_shootdown]")
      expect(await chart.locator("svg g[aria-label=bar] rect").count()).toBe(2)
      expect(await chart.locator("svg").textContent()).toContain("per shootdown, mean over the run's shootdowns")
      expect(await chart.locator("svg").textContent()).toContain("vms=2")
      expect(await page.locator("[data-testid=chart] svg").count()).toBeGreaterThan(5)
      await shown(page, "[data-testid=compare-table] th", { hasText: "vms=1" })

    }), 240_000)
})
