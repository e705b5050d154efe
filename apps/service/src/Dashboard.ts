/**
 * The web dashboard: a page at `/` (plain browser JavaScript in `apps/service/web`, no build step)
 * over the same HTTP API as every other client. Its routes are added to the `HttpApi` server's
 * router beside the API's; only these fixed paths are served (nothing is looked up from the
 * request's path, so there is nothing to traverse):
 *
 * - `/` the page, `/dashboard/app.js` and `/dashboard/style.css` its script and style;
 * - `/dashboard/d3.js` and `/dashboard/plot.js`: d3 and Observable Plot from `node_modules`
 *   (the comparison charts), so the page needs no CDN;
 * - `/dashboard/bugs.json`: the bug switches' names, for the bug field's suggestions.
 *
 * Every response carries a Content-Security-Policy that allows the page's own origin only. The
 * files are read per request, so an edit to the page shows on reload.
 */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { Variants } from "@kvmlab/kvm"
import { Effect, Layer } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/** The page's own files. */
const web = join(dirname(fileURLToPath(import.meta.url)), "..", "web")

/**
 * A package's folder. Neither d3's nor Plot's `exports` lets `dist/...` or `package.json` be
 * resolved, so resolve the package's entry and go up to the folder whose package.json names it.
 */
const packageDir = (name: string): string => {
  const require = createRequire(import.meta.url)
  let dir = dirname(require.resolve(name))
  for (;;) {
    const manifest = join(dir, "package.json")
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: unknown }).name === name) return dir
    const up = dirname(dir)
    if (up === dir) throw new Error(`cannot find the folder of ${name}`)
    dir = up
  }
}

/** Only the page's origin: no inline script or style, no other host, no plugins, no framing. */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const headers = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache"
}

/** The routes of the dashboard, added to the API's router. */
export const DashboardLive: Layer.Layer<never> = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const d3 = packageDir("d3")
    const plot = packageDir("@observablehq/plot")
    const files: ReadonlyArray<readonly [`/${string}`, string, string]> = [
      ["/", join(web, "index.html"), "text/html; charset=utf-8"],
      ["/dashboard/app.js", join(web, "app.js"), "text/javascript; charset=utf-8"],
      ["/dashboard/style.css", join(web, "style.css"), "text/css; charset=utf-8"],
      ["/dashboard/d3.js", join(d3, "dist", "d3.min.js"), "text/javascript; charset=utf-8"],
      ["/dashboard/plot.js", join(plot, "dist", "plot.umd.min.js"), "text/javascript; charset=utf-8"]
    ]
    for (const [path, file, contentType] of files) {
      // (`file` takes the content type from the headers, not from a `contentType` option)
      yield* router.get(path, Effect.orDie(HttpServerResponse.file(file, { headers: { ...headers, "content-type": contentType } })))
    }
    const bugs = yield* HttpServerResponse.json(Variants.bugNames, { headers }).pipe(Effect.orDie)
    yield* router.get("/dashboard/bugs.json", Effect.succeed(bugs))
  }))
