/**
 * The bad inputs a new user tries, as a table, in-process through `runCli`: scenario files that
 * are malformed, truncated, binary, empty, huge, of the wrong shape or with unknown fields,
 * directories and missing paths; replay tokens empty, truncated, altered, edited, from another
 * scenario or build; every numeric option of run, explore and compare with negative, huge,
 * fractional and empty values; unknown strategies, engines, scenarios, bug switches and variant
 * settings; empty and repeated --vary. Each must exit 2 (1 only where a violation is really
 * found) with exactly one line on stderr that names what was wrong, and no stack. A defect is
 * an internal error: a short report and exit 3.
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Runner, Scenario } from "@kvmlab/scenarios"
import { ReplayToken } from "@kvmlab/sim"
import { Effect, Either, Layer } from "effect"
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Progress, runCli, Workers } from "../src/index.js"
import { captureConsole, kvmlab, root } from "./fixtures/kvmlab.js"

const tmp = mkdtempSync(join(tmpdir(), "kvmlab-cli-badinput-"))

// ------------------------------------------------------------------ scenario files

const base = Scenario.encode(Runner.builtin("request-race")!) as unknown as Record<string, unknown>
const text = JSON.stringify(base, null, 2)

/** Writes `content` to a file named `name` in the temporary folder and gives its path. */
const file = (name: string, content: string | Uint8Array): string => {
  const p = join(tmp, name)
  writeFileSync(p, content)
  return p
}

/** The built-in request-race scenario with `patch` merged in, as a file. */
const patched = (name: string, patch: Record<string, unknown>): string => file(name, JSON.stringify({ ...base, ...patch }))

/** Bytes from a fixed linear congruential sequence: "random" bytes that are the same on every run. */
const bytes = (n: number, seed: number): Uint8Array => {
  const out = new Uint8Array(n)
  let x = seed >>> 0
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    out[i] = x >>> 24
  }
  return out
}

const directory = join(tmp, "a-directory")
mkdirSync(directory)

// ------------------------------------------------------------------ tokens

const scenarioWith = (name: string, bugs: ReadonlyArray<string>) =>
  Either.getOrThrow(Scenario.withOverrides(Runner.builtin(name)!, { bugs }))

/** A token of a run that breaks REQ-2 (timed, seed 1), made by this build. */
const token = Effect.runSync(Runner.run(scenarioWith("request-race", ["A.exitingSkipsIpiForWait"]), { seed: 1 })).violations[0]!.replay
/** A token of a run that breaks nothing. */
const clean = Effect.runSync(Runner.run(Runner.builtin("request-race")!, { seed: 1, strategy: { _tag: "random" } })).token
const data = ReplayToken.decode(token) as ReplayToken.ReplayTokenData
/** The token with some of its fields changed, encoded again: a token edited, or made by another build. */
const edited = (change: Partial<ReplayToken.ReplayTokenData>) => ReplayToken.encode({ ...data, ...change })
/** The token with decision `i` changed to another actor. */
const decisionChanged = (i: number) => data.decisions.map((d, k) => (k === i ? (d === 0 ? 1 : 0) : d))
const middle = Math.floor(token.length / 2)
const lockless = Scenario.canonical(Runner.builtin("lockless-walk")!)
const digestObject = JSON.parse(data.digest) as Record<string, unknown>
const reordered = JSON.stringify(Object.fromEntries(Object.entries(digestObject).reverse()))

// ------------------------------------------------------------------ the table

interface Case {
  /** The command line after `kvmlab`. */
  readonly args: ReadonlyArray<string>
  /** What the one line on stderr must name. */
  readonly names: RegExp
  /** 2 (bad input) unless a violation is really found. */
  readonly exit?: 1 | 2
}

const R = "request-race"
const vary = ["--vary", "flush=native,pv"] as const

const L = join(root, "examples/litmus")

const cases: ReadonlyArray<Case> = [
  // An empty argument after a flag is the positional argument, not the flag's value.
  { args: ["show", "--costs", ""], names: /scenario: no file and no built-in scenario named ""/ },
  { args: ["explore", "--quiet", ""], names: /scenario: no file and no built-in scenario named ""/ },
  // litmus's options and paths.
  { args: ["litmus", L, "--runs", "abc"], names: /--runs: must be a positive integer/ },
  { args: ["litmus", L, "--runs", "0"], names: /--runs: must be a positive integer/ },
  { args: ["litmus", L, "--seed", "-1"], names: /--seed: must be a non-negative integer/ },
  { args: ["litmus", L, "--seed", "1.5"], names: /--seed: must be a non-negative integer/ },
  { args: ["litmus", L, "--max-states", "0"], names: /--max-states: must be a positive integer/ },
  { args: ["litmus", L, "--max-states", "99999999999"], names: /--max-states: must be a positive integer, at most 16000000/ },
  { args: ["litmus", L, "--engine", "turbo"], names: /--engine: unknown engine "turbo"/ },
  { args: ["litmus", L, "--model", "arm"], names: /--model: unknown memory model "arm"/ },
  { args: ["litmus", join(root, "no/such/dir")], names: /no\/such\/dir/ },
  // Scenario files: the file is named, and the field when there is one.
  { args: ["run", file("malformed.json", '{"name": "x", "vms": ')], names: /malformed\.json: not JSON/ },
  { args: ["run", file("truncated.json", text.slice(0, text.length >> 1))], names: /truncated\.json: not JSON: .* at line \d+, column \d+/ },
  { args: ["run", file("random.bin", bytes(4096, 7))], names: /random\.bin: not JSON/ },
  { args: ["run", file("random-2.bin", bytes(64, 99))], names: /random-2\.bin: not JSON/ },
  { args: ["run", file("empty.json", "")], names: /empty\.json: is empty/ },
  { args: ["run", file("blank.json", "  \n\t\n")], names: /blank\.json: is empty/ },
  { args: ["run", file("huge.json", new Uint8Array(5 << 20).fill(0x20))], names: /huge\.json: is 5\.0 MB/ },
  { args: ["run", file("array.json", "[]")], names: /array\.json: expected a JSON object .*got an array/ },
  { args: ["run", file("string.json", '"request-race"')], names: /string\.json: expected a JSON object .*got a string/ },
  { args: ["run", file("number.json", "42")], names: /number\.json: expected a JSON object .*got a number/ },
  { args: ["run", file("null.json", "null")], names: /null\.json: expected a JSON object .*got null/ },
  { args: ["run", file("object.json", "{}")], names: /object\.json: missing fields name, vms, vcpusPerVm/ },
  { args: ["run", patched("colour.json", { colour: "red" })], names: /colour\.json: colour: is unexpected/ },
  { args: ["run", patched("costs-unknown.json", { costs: { ipiNs: 5 } })], names: /costs-unknown\.json: costs\.ipiNs: is unexpected/ },
  { args: ["run", patched("costs-1e300.json", { costs: { ipiSendNs: 1e300 } })], names: /costs-1e300\.json: costs\.ipiSendNs: expected whole nanoseconds from 0 to 1000000000 .*got 1e\+300/ },
  { args: ["run", patched("costs-negative.json", { costs: { vmExitNs: -1 } })], names: /costs\.vmExitNs: expected whole nanoseconds/ },
  { args: ["run", patched("costs-fraction.json", { costs: { tlbFlushNs: 0.5 } })], names: /costs\.tlbFlushNs: expected whole nanoseconds/ },
  { args: ["run", patched("costs-ple.json", { costs: { pleWindowMaxNs: 2e10 } })], names: /costs\.pleWindowMaxNs: expected whole nanoseconds from 0 to 10000000000/ },
  { args: ["run", patched("costs-string.json", { costs: { atomicNs: "fast" } })], names: /costs\.atomicNs: expected whole nanoseconds/ },
  { args: ["run", patched("costs-array.json", { costs: [] })], names: /costs-array\.json: costs: / },
  { args: ["run", patched("vms-string.json", { vms: "two" })], names: /vms-string\.json: vms: Expected number/ },
  { args: ["run", patched("vms-zero.json", { vms: 0 })], names: /vms-zero\.json: vms: .*greater than or equal to 1/ },
  { args: ["run", patched("vms-many.json", { vms: 1000 })], names: /vms-many\.json: vms: .*less than or equal to 64/ },
  { args: ["run", patched("kind.json", { workload: { kind: "nope" } })], names: /kind\.json: workload\.kind: / },
  { args: ["run", patched("workload-array.json", { workload: [] })], names: /workload-array\.json: workload/ },
  { args: ["run", patched("flush.json", { variant: { ...(base.variant as object), flush: "fast" } })], names: /flush\.json: variant\.flush: expected one of/ },
  { args: ["run", patched("bug-unknown.json", { bugs: ["Z.nope"] })], names: /bug-unknown\.json: bugs\.0: expected one of/ },
  { args: ["run", patched("bug-string.json", { bugs: "A.noEntryBarrier" })], names: /bug-string\.json: bugs: / },
  { args: ["run", patched("bug-elsewhere.json", { bugs: ["B.readCopyWriteback"] })], names: /bug-elsewhere\.json: bugs\.0: B\.readCopyWriteback is a switch of mechanism B/ },
  { args: ["run", patched("name.json", { name: "" })], names: /name\.json: name: / },
  { args: ["run", patched("duration.json", { durationNs: -1 })], names: /duration\.json: durationNs: / },
  { args: ["run", patched("steps.json", { maxSteps: 1e12 })], names: /steps\.json: maxSteps: Expected a number less than or equal to 100000000/ },
  { args: ["run", patched("rounds.json", { workload: { ...(base.workload as object), rounds: -1 } })], names: /rounds\.json: workload\.rounds: / },
  { args: ["run", directory], names: /a-directory: is a directory/ },
  { args: ["run", join(tmp, "no-such-file.json")], names: /scenario: no file and no built-in scenario named ".*no-such-file\.json"/ },
  { args: ["run", join(root, "examples/litmus/SB.litmus")], names: /SB\.litmus: not JSON/ },
  { args: ["show", file("show-empty.json", "")], names: /show-empty\.json: is empty/ },
  { args: ["explore", file("explore-broken.json", "{")], names: /explore-broken\.json: not JSON/ },
  { args: ["compare", file("compare-broken.json", "[1, 2"), ...vary], names: /compare-broken\.json: not JSON/ },

  // Scenario names.
  { args: ["run", "nosuch"], names: /scenario: no file and no built-in scenario named "nosuch"/ },
  { args: ["show", "Request-Race"], names: /scenario: no file and no built-in scenario named "Request-Race"/ },
  { args: ["explore", ""], names: /scenario: no file and no built-in scenario named ""/ },
  { args: ["compare", "nosuch", ...vary], names: /scenario: no file and no built-in scenario named "nosuch"/ },
  { args: ["run"], names: /Missing argument <scenario>/ },

  // Tokens: replay.
  { args: ["replay", ""], names: /token: the token is empty/ },
  { args: ["replay", "   "], names: /token: the token is empty/ },
  { args: ["replay", "kvl1."], names: /token: the token has nothing after "kvl1\."/ },
  { args: ["replay", token.slice(0, middle)], names: /token: the token is (damaged|truncated)/ },
  { args: ["replay", token.slice(0, -3)], names: /token: the token is (damaged|truncated)/ },
  { args: ["replay", token.slice(0, middle) + (token[middle] === "A" ? "B" : "A") + token.slice(middle + 1)], names: /token: (the token is (damaged|truncated)|replay diverged|its scenario does not decode)/ },
  { args: ["replay", "kvl1.!!!@@@###"], names: /token: the token is damaged/ },
  { args: ["replay", "kvl1.QUJDREVGR0hJSktMTU5PUA"], names: /token: the token is damaged/ },
  { args: ["replay", "kvl2." + token.slice(5)], names: /token: a replay token starts with "kvl1\."/ },
  { args: ["replay", token.slice(5)], names: /token: a replay token starts with "kvl1\."/ },
  { args: ["replay", "kvl1." + new TextDecoder().decode(bytes(300, 3))], names: /token: the token is damaged/ },
  { args: ["replay", "kvl1." + "A".repeat(5_000_000)], names: /token: the token is (damaged|truncated)/ },
  { args: ["replay", edited({ decisions: decisionChanged(5) })], names: /token: replay diverged at step \d+: the token chooses actor \d+, runnable are \[.*\]; a token diverges when it was made by another kvmlab or Effect version, or edited/ },
  { args: ["replay", edited({ decisions: data.decisions.map((d, i) => (i === 5 ? 99 : d)) })], names: /token: replay diverged at step \d+: the token chooses actor 99/ },
  { args: ["replay", edited({ decisions: data.decisions.slice(0, 3) })], names: /token: replay diverged at step \d+: the token has no decision left/ },
  { args: ["replay", edited({ decisions: [...data.decisions, 0, 1, 0] })], names: /token: replay diverged: 3 recorded decisions were not used/ },
  { args: ["replay", edited({ decisions: decisionChanged(5), effectVersion: "3.10.0" })], names: /token: replay diverged at step \d+: .*\(the token was made with effect 3\.10\.0, this is 3\.\d+\.\d+\); a token diverges when it was made by another kvmlab or Effect version/ },
  { args: ["replay", edited({ steps: data.steps + 1 })], names: /token: replay diverged: expected \d+ steps and trace [0-9a-f]+, got \d+ steps/ },
  { args: ["replay", edited({ traceHash: "0000000000000000" })], names: /token: replay diverged: expected \d+ steps and trace 0000000000000000, got/ },
  { args: ["replay", edited({ digest: lockless })], names: /token: replay diverged/ },
  { args: ["replay", edited({ digest: reordered })], names: /token: the token was made for another program or scenario .*its digest differs from this one's at character 3: the token has 'workload":/ },
  { args: ["replay", edited({ digest: "{nope" })], names: /token: its scenario does not decode: not JSON/ },
  { args: ["replay", edited({ digest: "" })], names: /token: its scenario does not decode: is empty/ },
  { args: ["replay", edited({ digest: JSON.stringify({ ...digestObject, vms: 0 }) })], names: /token: its scenario does not decode: vms: / },
  { args: ["replay", token, "extra"], names: /Received unknown argument: 'extra'/ },
  { args: ["replay"], names: /^kvmlab: token: missing: give a replay token, or --token-file FILE$/ },
  { args: ["shrink"], names: /^kvmlab: token: missing: give a replay token, or --token-file FILE$/ },
  { args: ["replay", token, "--token-file", file("both.token", token)], names: /--token-file: give a token or --token-file, not both/ },
  { args: ["replay", "--token-file", file("empty.token", "\n\n")], names: /--token-file \S*empty\.token: is empty; it should hold one replay token/ },
  { args: ["replay", "--token-file", file("two.token", `${token}\n${clean}\n`)], names: /--token-file \S*two\.token: holds more than one word/ },
  { args: ["replay", "--token-file", directory], names: /--token-file \S*a-directory: is a directory, not a token file/ },
  { args: ["replay", "--token-file", join(tmp, "missing.token")], names: /--token-file \S*missing\.token: .*ENOENT/ },
  { args: ["shrink", "--token-file", file("binary.token", bytes(500, 3))], names: /^kvmlab: (--token-file \S*binary\.token: holds more than one word|token: )/ },
  { args: ["shrink", "--token-file", file("truncated.token", token.slice(0, middle))], names: /^kvmlab: token: / },
  { args: ["run", R, "--token-file", directory], names: /--token-file \S*a-directory: .*EISDIR/ },
  { args: ["replay", token, "--engine", "turbo"], names: /--engine: unknown engine "turbo"; expected fast, effect/ },
  { args: ["replay", token, "--trace-out", directory], names: /--trace-out .*a-directory: .*EISDIR/ },
  { args: ["replay", token, "--trace-out", join(tmp, "no/such/dir/trace.json")], names: /--trace-out .*trace\.json: .*ENOENT/ },
  { args: ["replay", token, "--seed", "5"], names: /--seed/ },

  // Tokens: shrink.
  { args: ["shrink", ""], names: /token: the token is empty/ },
  { args: ["shrink", token.slice(0, middle)], names: /token: the token is (damaged|truncated)/ },
  { args: ["shrink", edited({ decisions: decisionChanged(5) })], names: /token: replay diverged at step \d+: .*; a token diverges when it was made by another kvmlab or Effect version, or edited/ },
  { args: ["shrink", edited({ digest: JSON.stringify({ ...digestObject, vms: 0 }) })], names: /token: its scenario does not decode: vms: / },
  { args: ["shrink", clean], names: /token: the token's run breaks no invariant/ },
  { args: ["shrink", token, "--runs", "5"], names: /--runs/ },

  // Numeric options of run.
  { args: ["run", R, "--seed", "-1"], names: /--seed: must be a non-negative integer, at most 4294967295, got "-1"/ },
  { args: ["run", R, "--seed", "4294967296"], names: /--seed: must be a non-negative integer, at most 4294967295, got "4294967296"/ },
  { args: ["run", R, "--seed", "1.5"], names: /--seed: .*got "1\.5"/ },
  { args: ["run", R, "--seed", "abc"], names: /--seed: .*got "abc"/ },
  { args: ["run", R, "--seed", "1e3"], names: /--seed: .*got "1e3"/ },
  { args: ["run", R, "--seed", "99999999999999999999999"], names: /--seed: .*got "99999999999999999999999"/ },
  { args: ["run", R, "--seed", ""], names: /--seed: empty value/ },
  { args: ["run", R, "--seed"], names: /Received unknown argument: '--seed': not an option here, or an option missing its value/ },
  { args: ["run", R, "--strategy", "pct", "--depth", "0"], names: /--depth: must be a positive integer, at most 64, got "0"/ },
  { args: ["run", R, "--strategy", "pct", "--depth", "65"], names: /--depth: .*got "65"/ },
  { args: ["run", R, "--strategy", "pct", "--depth", "x"], names: /--depth: .*got "x"/ },
  { args: ["run", R, "--depth", "5"], names: /--depth: --strategy timed ignores it; only pct takes a depth/ },
  { args: ["run", R, "--strategy", "random", "--depth", "5"], names: /--depth: --strategy random ignores it/ },
  { args: ["run", R, "--runs", "5"], names: /--runs/ },

  // Numeric options of explore.
  { args: ["explore", R, "--runs", "0"], names: /--runs: must be a positive integer, at most 1000000000, got "0"/ },
  { args: ["explore", R, "--runs", "-5"], names: /--runs: .*got "-5"/ },
  { args: ["explore", R, "--runs", "1.5"], names: /--runs: .*got "1\.5"/ },
  { args: ["explore", R, "--runs", "abc"], names: /--runs: .*got "abc"/ },
  { args: ["explore", R, "--runs", "10000000000"], names: /--runs: .*got "10000000000"/ },
  { args: ["explore", R, "--runs", "0x10"], names: /--runs: .*got "0x10"/ },
  { args: ["explore", R, "--runs", ""], names: /--runs: empty value/ },
  { args: ["explore", R, "--workers", "0"], names: /--workers: must be a positive integer, at most 256, got "0"/ },
  { args: ["explore", R, "--workers", "-1"], names: /--workers: .*got "-1"/ },
  { args: ["explore", R, "--workers", "257"], names: /--workers: .*got "257"/ },
  { args: ["explore", R, "--workers", "two"], names: /--workers: .*got "two"/ },
  { args: ["explore", R, "--seed", "-7"], names: /--seed: .*got "-7"/ },
  { args: ["explore", R, "--strategy", "pct", "--depth", "-3"], names: /--depth: .*got "-3"/ },
  { args: ["explore", R, "--depth", "3"], names: /--depth: --strategy random ignores it/ },
  { args: ["explore", R, "--strategy", "swarm", "--depth", "3"], names: /--depth: --strategy swarm ignores it/ },

  // Numeric options of compare.
  { args: ["compare", R, ...vary, "--seeds", "0"], names: /--seeds: must be a positive integer, at most 1000000, got "0"/ },
  { args: ["compare", R, ...vary, "--seeds", "-1"], names: /--seeds: .*got "-1"/ },
  { args: ["compare", R, ...vary, "--seeds", "2.5"], names: /--seeds: .*got "2\.5"/ },
  { args: ["compare", R, ...vary, "--seeds", "2000000"], names: /--seeds: .*got "2000000"/ },
  { args: ["compare", R, ...vary, "--seeds", ""], names: /--seeds: empty value/ },
  { args: ["compare", R, ...vary, "--workers", "0"], names: /--workers: .*got "0"/ },
  { args: ["compare", R, ...vary, "--seed", "x"], names: /--seed: .*got "x"/ },
  { args: ["compare", R, ...vary, "--depth", "2"], names: /--depth: --strategy random ignores it/ },
  { args: ["compare", "tlb-shootdown", ...vary, "--depth", "2"], names: /--depth: --strategy timed ignores it/ },

  // Strategies and engines.
  { args: ["run", R, "--strategy", "dfs"], names: /--strategy: unknown strategy "dfs"; expected timed, random, pct, swarm/ },
  { args: ["explore", R, "--strategy", "timed"], names: /--strategy: unknown strategy "timed"; expected random, pct, swarm/ },
  { args: ["compare", R, ...vary, "--strategy", "PCT"], names: /--strategy: unknown strategy "PCT"/ },
  { args: ["run", R, "--strategy", ""], names: /--strategy: empty value/ },
  { args: ["run", R, "--engine", "turbo"], names: /--engine: unknown engine "turbo"; expected fast, effect/ },
  { args: ["explore", R, "--engine", "Fast"], names: /--engine: unknown engine "Fast"/ },
  { args: ["compare", R, ...vary, "--engine", "stm"], names: /--engine: unknown engine "stm"/ },

  // Bug switches.
  { args: ["run", R, "--bug", "X"], names: /--bug: unknown bug switch "X"; known: A\.noEntryBarrier/ },
  { args: ["run", R, "--bug", "a.noentrybarrier"], names: /--bug: unknown bug switch "a\.noentrybarrier"/ },
  { args: ["run", R, "--bug", ""], names: /--bug: empty value/ },
  { args: ["explore", "lockless-walk", "--bug", "B.readCopyWriteback"], names: /--bug: B\.readCopyWriteback is a switch of mechanism B .*not lockless-walk/ },
  { args: ["run", R, "--bug", "P.invertedMaskClear"], names: /--bug: P\.invertedMaskClear is a switch of mechanism B/ },
  { args: ["run", "pv-flush-race", "--bug", "B.readCopyWriteback", "--variant", "flush=native"], names: /--bug: B\.readCopyWriteback needs --variant flush=/ },
  { args: ["run", R, "--bug", "A.exitingSkipsIpiForWait", "--bug", "A.exitingSkipsIpiForWait"], names: /VIOLATION REQ-2/, exit: 1 },
  { args: ["run", R, "--bug", "A.exitingSkipsIpiForWait"], names: /VIOLATION REQ-2/, exit: 1 },

  // Variant settings.
  { args: ["run", R, "--variant", "flush"], names: /--variant: expected key=value, got "flush"/ },
  { args: ["run", R, "--variant", "=pv"], names: /--variant: expected key=value, got "=pv"/ },
  { args: ["run", R, "--variant", ""], names: /--variant: empty value/ },
  { args: ["run", R, "--variant", "flush=fast"], names: /--variant: variant\.flush: expected one of "native", "pv", "pv-ipi-pending", got "fast"/ },
  { args: ["run", R, "--variant", "flush="], names: /--variant: variant\.flush: expected one of/ },
  { args: ["run", R, "--variant", "colour=red"], names: /--variant: colour: unknown setting; expected one of flush/ },
  { args: ["run", R, "--variant", "vms=0"], names: /--variant: vms: / },
  { args: ["run", R, "--variant", "vms=abc"], names: /--variant: vms: Expected number/ },
  { args: ["run", R, "--variant", "workload.rounds=1e9"], names: /--variant: workload\.rounds: / },
  { args: ["run", R, "--variant", "workload.nope=1"], names: /--variant: workload\.nope: is unexpected/ },
  { args: ["run", R, "--variant", "durationNs=-1"], names: /--variant: durationNs: / },

  // --vary.
  { args: ["compare", R], names: /--vary: give at least one --vary key=v1,v2/ },
  { args: ["compare", R, "--vary", "flush="], names: /--vary flush: give at least one value/ },
  { args: ["compare", R, "--vary", "flush=,"], names: /--vary flush: give at least one value/ },
  { args: ["compare", R, "--vary", "flush"], names: /--vary: expected key=value, got "flush"/ },
  { args: ["compare", R, "--vary", "=native,pv"], names: /--vary: expected key=value/ },
  { args: ["compare", R, "--vary", ""], names: /--vary: empty value/ },
  { args: ["compare", R, "--vary", "colour=red,blue"], names: /--vary colour: unknown setting/ },
  { args: ["compare", R, "--vary", "flush=native,nope"], names: /--vary variant\.flush: expected one of/ },
  { args: ["compare", R, ...vary, "--vary", "flush=pv"], names: /--vary flush: given twice/ },
  { args: ["compare", R, "--vary", "flush=native,native"], names: /--vary flush: value "native" given twice/ },
  { args: ["compare", R, "--vary", `vms=${Array.from({ length: 64 }, (_, i) => i + 1).join(",")}`, "--vary", `pcpus=${Array.from({ length: 1024 }, (_, i) => i + 1).join(",")}`, "--seeds", "100"], names: /--vary: 6553600 runs .* is more than 1000000/ },

  // The service's client options.
  { args: ["explore", R, "--detach"], names: /^kvmlab: --detach: only with --server/ },
  { args: ["explore", R, "--token", "t"], names: /^kvmlab: --token: only with --server/ },
  { args: ["compare", R, ...vary, "--detach"], names: /^kvmlab: --detach: only with --server/ },
  { args: ["explore", R, "--server", "nope"], names: /^kvmlab: --server: not a URL: "nope"/ },
  { args: ["explore", R, "--server", "ftp://127.0.0.1:8420"], names: /^kvmlab: --server: expected an http or https URL, got ftp:/ },
  { args: ["explore", R, "--server", "http://127.0.0.1:8420", "--engine", "effect"], names: /^kvmlab: --engine: the service runs the fast engine/ },
  { args: ["jobs"], names: /--server/ },
  { args: ["jobs", "--server", "::"], names: /^kvmlab: --server: not a URL/ },

  // The command line itself.
  { args: ["frob"], names: /Invalid subcommand for kvmlab/ },
  { args: ["run", R, "--frob"], names: /Received unknown argument: '--frob': not an option here/ },
  { args: ["run", R, "--frob=1"], names: /Received unknown argument: '--frob=1'/ }
]

// eslint-disable-next-line no-control-regex
const controlCharacters = /[\u0000-\u0008\u000b-\u001f\u007f]/

const shown = (args: ReadonlyArray<string>) => args.map((a) => (a.length > 40 ? `${a.slice(0, 40)}…(${a.length})` : JSON.stringify(a))).join(" ")

describe("bad input: exit 2 and one line naming what was wrong", () => {
  it("has at least 80 cases", () => expect(cases.length).toBeGreaterThanOrEqual(80))

  for (const c of cases) {
    it.live(shown(c.args), () =>
      Effect.gen(function*() {
        const r = yield* kvmlab(...c.args)
        const lines = r.stderr.split("\n").filter((l) => l.trim() !== "")
        expect(r.status, r.stderr).toBe(c.exit ?? 2)
        expect(r.stderr).not.toMatch(/^\s+at /m)
        expect(r.stderr).not.toMatch(controlCharacters)
        if (c.exit === 1) {
          expect(lines).toEqual([])
          expect(r.stdout).toMatch(c.names)
        } else {
          expect(lines, r.stderr).toHaveLength(1)
          expect(lines[0]).toMatch(/^kvmlab: \S/)
          expect(lines[0]).toMatch(c.names)
          expect(r.stdout).toBe("")
        }
      }))
  }
})

// ------------------------------------------------------------------ litmus files

/** Litmus files a user may give by mistake: each is reported on one `error: <file>...` line, the summary says it did not parse, exit 2. */
const litmusFiles: ReadonlyArray<{ readonly path: string; readonly names: RegExp }> = [
  { path: file("binary.litmus", bytes(3000, 7)), names: /^error: \S*binary\.litmus:1: expected a first line "X86_64 <name>"/ },
  { path: file("huge.litmus", new Uint8Array(5 << 20).fill(0x61)), names: /^error: \S*huge\.litmus: is 5\.0 MB; a litmus test is a small text file \(at most 1 MB\)$/ },
  { path: file("truncated.litmus", "X86_64 T\n{ x=0; }\n P0 ;\n MOV [x],$1 ;\n"), names: /^error: \S*truncated\.litmus:\d+: / },
  { path: file("empty.litmus", ""), names: /^error: \S*empty\.litmus:1: expected a first line "X86_64 <name>", found end of file$/ },
  { path: file("nul.litmus", new Uint8Array(64)), names: /^error: \S*nul\.litmus:1: expected a first line/ }
]

describe("bad litmus files: exit 2, one line naming the file", () => {
  for (const c of litmusFiles) {
    it.live(c.path.slice(tmp.length + 1), () =>
      Effect.gen(function*() {
        const r = yield* kvmlab("litmus", c.path)
        const lines = r.stderr.split("\n").filter((l) => l.trim() !== "")
        expect(r.status, r.stderr).toBe(2)
        expect(lines, r.stderr).toHaveLength(1)
        expect(lines[0]).toMatch(c.names)
        expect(lines[0]).not.toMatch(controlCharacters)
        expect(r.stdout).toMatch(/^1 tests \(exhaustive, tso\) in [\d.]+ s: 0 Never, 0 Sometimes, 0 Always; condition holds in 0; 1 did not parse\n$/)
      }))
  }
})

// ------------------------------------------------------------------ defects

/** kvmlab in-process with worker threads that die: a defect, as a crashed worker would be. */
const withBrokenWorkers = (defect: unknown, ...args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const { console, out } = captureConsole()
    const { exitCode } = yield* Effect.withConsole(runCli(["node", "kvmlab", ...args]), console)
    return { status: exitCode, ...out }
  }).pipe(Effect.provide(Layer.mergeAll(
    NodeContext.layer,
    Progress.layerLines,
    Layer.succeed(Workers.Workers, { dealer: () => Effect.die(defect) })
  )))

describe("an internal error: exit 3 and a short report", () => {
  it.live("a thrown Error: the message, a request to report it, and at most two stack frames", () =>
    Effect.gen(function*() {
      const r = yield* withBrokenWorkers(new Error("the worker pool is on fire"), "explore", R, "--runs", "10")
      expect(r.status).toBe(3)
      const lines = r.stderr.split("\n").filter((l) => l.trim() !== "")
      expect(lines[0]).toBe("kvmlab: internal error: the worker pool is on fire — please report it with the command line")
      expect(lines.length).toBeGreaterThanOrEqual(2)
      expect(lines.length).toBeLessThanOrEqual(3)
      for (const l of lines.slice(1)) expect(l).toMatch(/^ {4}at /)
    }))

  it.live("a thrown value that is not an Error: still one line naming it", () =>
    Effect.gen(function*() {
      const r = yield* withBrokenWorkers({ reason: "odd" }, "compare", R, ...vary, "--seeds", "1")
      expect(r.status).toBe(3)
      expect(r.stderr).toBe(`kvmlab: internal error: {"reason":"odd"} — please report it with the command line\n`)
    }))
})
