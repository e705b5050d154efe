#!/usr/bin/env node
// The kvmlab service (apps/service/src/main.ts), run through tsx: a service starts once, so the
// second of transpiling matters less than for the command, and the SQLite driver is native.
import { register } from "tsx/esm/api"

register()
await import("../src/main.ts")
