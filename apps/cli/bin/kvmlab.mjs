#!/usr/bin/env node
// The kvmlab command. Sources are TypeScript, loaded through tsx, so `npm ci` is the only set-up.
import { register } from "tsx/esm/api"

register()
await import("../src/main.ts")
