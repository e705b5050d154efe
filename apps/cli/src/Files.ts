/**
 * Text files through the platform `FileSystem` service (the bin provides Node's, tests may
 * provide any), read and reported the way `node:fs` did before, so the commands' output did not
 * change when they moved off `node:fs`.
 */
import { FileSystem } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Effect } from "effect"

// readFileSync(f, "utf8") keeps a leading byte order mark; TextDecoder drops it unless told not to.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true })

/** A file's text as UTF-8, byte order mark kept. */
export const readText = (path: string): Effect.Effect<string, PlatformError, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => Effect.map(fs.readFile(path), (bytes) => utf8.decode(bytes)))

/** A file error as the user sees it: Node's own message ("Error: ENOENT: ...") when there is one. */
export const describe = (e: PlatformError): string => String(e.cause ?? e)
