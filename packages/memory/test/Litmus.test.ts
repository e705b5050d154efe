import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Actors, Exhaustive, Litmus } from "../src/index.js"

const examples = fileURLToPath(new URL("../../../examples/litmus/", import.meta.url))
const load = (name: string): Litmus.LitmusTest => {
  const t = Litmus.parse(readFileSync(examples + name, "utf8"), name)
  if (t instanceof Litmus.LitmusParseError) throw new Error(t.message)
  return t
}

/**
 * Our own tests for what the public suite lacks (xchg, lock, cmpxchg, xadd, forall, ~exists).
 * Each file states its reasoning from the x86-TSO rules; here are the outcomes it derives.
 */
const OWN: ReadonlyArray<{ file: string; tso: { observation: string; holds: boolean; states: Array<string> }; sc?: { observation: string; states: Array<string> } }> = [
  {
    file: "SB.litmus",
    tso: { observation: "Sometimes", holds: true, states: ["0:rax=0; 1:rax=0;", "0:rax=0; 1:rax=1;", "0:rax=1; 1:rax=0;", "0:rax=1; 1:rax=1;"] },
    sc: { observation: "Never", states: ["0:rax=0; 1:rax=1;", "0:rax=1; 1:rax=0;", "0:rax=1; 1:rax=1;"] }
  },
  { file: "SB+mfences.litmus", tso: { observation: "Never", holds: false, states: ["0:rax=0; 1:rax=1;", "0:rax=1; 1:rax=0;", "0:rax=1; 1:rax=1;"] } },
  { file: "SB+xchgs.litmus", tso: { observation: "Never", holds: true, states: ["0:rax=0; 1:rax=1;", "0:rax=1; 1:rax=0;", "0:rax=1; 1:rax=1;"] } },
  { file: "SB+lock-adds.litmus", tso: { observation: "Never", holds: false, states: ["0:rax=0; 1:rax=1;", "0:rax=1; 1:rax=0;", "0:rax=1; 1:rax=1;"] } },
  { file: "MP.litmus", tso: { observation: "Never", holds: false, states: ["1:rax=0; 1:rbx=0;", "1:rax=0; 1:rbx=1;", "1:rax=1; 1:rbx=1;"] } },
  { file: "CAS-race.litmus", tso: { observation: "Always", holds: true, states: ["0:rax=0; 1:rax=1; [x]=1;", "0:rax=2; 1:rax=0; [x]=2;"] } },
  { file: "INC+locks.litmus", tso: { observation: "Always", holds: true, states: ["[x]=2;"] } },
  { file: "INC.litmus", tso: { observation: "Sometimes", holds: true, states: ["[x]=1;", "[x]=2;"] } },
  { file: "XADD.litmus", tso: { observation: "Never", holds: true, states: ["0:rax=0; 1:rax=1;", "0:rax=1; 1:rax=0;"] } },
  { file: "RFI-forward.litmus", tso: { observation: "Always", holds: true, states: ["0:rax=1; 1:rax=1;"] } }
]

describe("litmus: our tests of locked instructions, forall and ~exists", () => {
  for (const c of OWN) {
    it(`${c.file}: exhaustive TSO outcome is the one reasoned in the file, and the actor engine agrees`, () => {
      const t = load(c.file)
      const ex = Exhaustive.check(t, "tso")
      expect({ observation: ex.observation, holds: ex.holds, states: ex.states }).toEqual(c.tso)
      const act = Actors.check(t, { model: "tso", runs: 2000, seed: 1, stopAtStates: ex.states.length })
      expect(act.states).toEqual(ex.states)
      if (c.sc) {
        const sc = Exhaustive.check(t, "sc")
        expect({ observation: sc.observation, states: sc.states }).toEqual(c.sc)
        expect(Actors.check(t, { model: "sc", runs: 2000, seed: 1, stopAtStates: sc.states.length }).states).toEqual(sc.states)
      }
    })
  }

  it("XADD: the register ends with the ticket (old value)", () => {
    const t = load("XADD.litmus")
    expect(t.threads[0]).toEqual([{ op: "xadd", reg: "rax", loc: "x" }])
    expect(t.initRegs.get("0:rax")).toBe(1)
  })
})

describe("litmus parser", () => {
  const header = "X86_64 T\n{ x=0; }\n P0 | P1 ;\n"
  const err = (text: string) => {
    const r = Litmus.parse(text, "t.litmus")
    if (!(r instanceof Litmus.LitmusParseError)) throw new Error("expected a parse error")
    return r
  }

  it("reports the file, the line and what was expected", () => {
    const e = err(header + " movq $1,(x) | frob %rax ;\nexists (0:rax=0)\n")
    expect(e.line).toBe(4)
    expect(e.message).toBe(`t.litmus:4: expected an instruction (mov, mfence, lfence, sfence, xchg, lock add/sub/or/and/xor/inc/dec/xadd/cmpxchg, add/sub/or/and/xor/inc/dec), found "frob"`)
  })

  it("refuses a test far beyond litmus size at its line: too many threads, or too many instructions in one", () => {
    const wide = `X86_64 W\n{ x=0; }\n ${Array.from({ length: 17 }, (_, t) => `P${t}`).join(" | ")} ;\n`
    const w = err(wide + ` ${Array.from({ length: 17 }, () => "movq $1,(x)").join(" | ")} ;\nexists (0:rax=0)\n`)
    expect(w.line).toBe(3)
    expect(w.problem).toBe(`17 threads: at most ${Litmus.MAX_THREADS} (a litmus test is a handful of threads)`)
    const long = header + " movq $1,(x) | movq (x),%rax ;\n".repeat(Litmus.MAX_INSTRUCTIONS_PER_THREAD + 1) + "exists (1:rax=1)\n"
    const l = err(long)
    expect(l.line).toBe(4 + Litmus.MAX_INSTRUCTIONS_PER_THREAD)
    expect(l.problem).toContain(`thread 0 has more than ${Litmus.MAX_INSTRUCTIONS_PER_THREAD} instructions`)
    // At the limit, it parses.
    expect(Litmus.parse(header + " movq $1,(x) | movq (x),%rax ;\n".repeat(Litmus.MAX_INSTRUCTIONS_PER_THREAD) + "exists (1:rax=1)\n", "t.litmus")).not.toBeInstanceOf(Litmus.LitmusParseError)
  })

  it("rejects a missing condition, a bad operand, and a non-x86 test", () => {
    expect(err(header + " movq $1,(x) | movq (x),%rax ;\n").problem).toContain("expected a condition")
    expect(err(header + " movq $1,x | movq (x),%rax ;\nexists (1:rax=0)\n").problem).toContain("expected an operand")
    expect(err("AArch64 T\n{}\n P0 ;\n").problem).toContain("X86_64")
    expect(err(header + " cmpxchgq (x),%rcx | ;\nexists (0:rax=0)\n").problem).toContain("lock cmpxchg")
    const dangling = err(header + " movq (x),%rax | ;\nexists (0:rax=0 /\\ )\n")
    expect(dangling.line).toBe(5)
    expect(dangling.problem).toBe(`expected a register "0:rax" or a location "x"/"[x]", found ")"`)
    expect(err(header + " movq (x),%rax | ;\nexists (0:rax=0\n").problem).toBe(`expected ")", found end of file`)
  })

  it("parses both cmpxchg operand orders, xchg orders, lock inc and the condition forms", () => {
    const t = Litmus.parse(
      "X86_64 T\n{ x=1; 0:rax=1; }\n P0 | P1 ;\n lock cmpxchgq (x),%rcx | xchgq (x),%rbx ;\n lock cmpxchgq %rcx,(x) | xchgq %rbx,(x) ;\n lock incq (x) | lock decq (x) ;\n" +
        "forall\n(0:rax=1 => not [x]=2 \\/ ~ x=3)\n",
      "t"
    )
    if (t instanceof Litmus.LitmusParseError) throw new Error(t.message)
    expect(t.threads[0]).toEqual([
      { op: "cmpxchg", reg: "rcx", loc: "x" },
      { op: "cmpxchg", reg: "rcx", loc: "x" },
      { op: "locked", alu: "add", loc: "x", src: { kind: "imm", value: 1 } }
    ])
    expect(t.threads[1]![0]).toEqual({ op: "xchg", reg: "rbx", loc: "x" })
    expect(t.condition.quantifier).toBe("forall")
    expect(Litmus.formatCondition(t.condition)).toBe("forall (0:rax=1 => not ([x]=2) \\/ not ([x]=3))")
    expect(t.initLocs.get("x")).toBe(1)
  })

  it("reports an initial value that does not parse at its own line of the init block", () => {
    const e = err("X86_64 T\n{ x=0;\n  y=zz;\n}\n P0 ;\n movq $1,(x) ;\nexists (x=1)\n")
    expect(e.line).toBe(3)
    expect(e.problem).toBe(`expected an initial value like "x=1", "0:rax=0" or "uint64_t x", found "y=zz"`)
  })

  it("prints conditions as herd7 does (right-nested conjunctions unparenthesised)", () => {
    const c = Litmus.parseCondition("exists (x=2 /\\ (1:rbx=2 /\\ (0:rax=2 \\/ 0:rax=1)))", 1)
    expect(Litmus.formatCondition(c)).toBe("exists ([x]=2 /\\ 1:rbx=2 /\\ (0:rax=2 \\/ 0:rax=1))")
    const d = Litmus.parseCondition("~exists ((x=1 /\\ y=1) /\\ z=1)", 1)
    expect(Litmus.formatCondition(d)).toBe("~exists (([x]=1 /\\ [y]=1) /\\ [z]=1)")
  })
})

/**
 * A condition that names what the test does not have is an error at its line, not a variable
 * that reads 0 and makes the verdict a silent "Never". herd7 rejects a missing thread too ("Bad
 * process P5"); it would let a register or location read 0.
 */
describe("litmus parser: the condition names only what the test has", () => {
  // Two threads, two locations; thread 1 writes rax and rbx, thread 0 no register. Line 5 is the first row.
  const test = (tail: string, init = "x=0; y=0;") =>
    Litmus.parse(`X86_64 T\n"doc"\n{ ${init} }\n P0          | P1             ;\n movq $1,(x) | movq (x),%rax  ;\n movq $1,(y) | movq (y),%rbx  ;\n${tail}`, "test.litmus")
  const problem = (tail: string, init?: string) => {
    const r = test(tail, init)
    if (!(r instanceof Litmus.LitmusParseError)) throw new Error(`expected a parse error for ${JSON.stringify(tail)}`)
    return r.message
  }

  it("a thread the test does not have", () => {
    expect(problem("exists (1:rax=1 /\\ 5:rax=1)\n")).toBe("test.litmus:7: exists: thread 5 does not exist (the test has threads 0-1)")
    expect(problem("forall (2:rax=0)\n")).toBe("test.litmus:7: forall: thread 2 does not exist (the test has threads 0-1)")
  })

  it("a register that appears nowhere in the thread's code or init, at its own line of a condition over several lines", () => {
    expect(problem("exists\n(1:rax=1 /\\\n 1:rzz=1)\n")).toBe(
      "test.litmus:9: exists: register 1:rzz appears nowhere in thread 1's code or the init block (thread 1 has rax, rbx)"
    )
    // rax is thread 1's, not thread 0's: registers belong to a thread.
    expect(problem("~exists (0:rax=1)\n")).toBe(
      "test.litmus:7: ~exists: register 0:rax appears nowhere in thread 0's code or the init block (thread 0 has no registers)"
    )
  })

  it("a location that appears nowhere in the code or the init block, in any form", () => {
    const msg = "exists: location z appears nowhere in the code or the init block (the test has x, y)"
    expect(problem("exists (z=1)\n")).toBe(`test.litmus:7: ${msg}`)
    expect(problem("exists (x=1 /\\ [z]=1)\n")).toBe(`test.litmus:7: ${msg}`)
  })

  it("the same in a locations line, and a thread the init block names", () => {
    expect(problem("locations [1:rax; z;]\nexists (1:rax=1)\n")).toBe(
      "test.litmus:7: locations: location z appears nowhere in the code or the init block (the test has x, y)"
    )
    expect(problem("\nlocations [3:rax;]\nexists (1:rax=1)\n")).toBe("test.litmus:8: locations: thread 3 does not exist (the test has threads 0-1)")
    // With a locations line, the condition's line numbers still count from the file's start.
    expect(problem("locations [1:rax;]\n\nexists (1:rax=1 /\\ 1:rcx=0)\n")).toContain("test.litmus:9: exists: register 1:rcx")
    expect(problem("exists (1:rax=1)\n", "x=0;\n 2:rax=1;")).toBe("test.litmus:4: init: thread 2 does not exist (the test has threads 0-1)")
  })

  it("still parses a register only the init block names, and a location only the init block names; both read their initial value", () => {
    const t = test("exists (1:rax=1 /\\ 1:rcx=7 /\\ 0:rdx=0 /\\ [w]=3)\n", "x=0; y=0; w=3; 1:rcx=7; 0:rdx=0;")
    if (t instanceof Litmus.LitmusParseError) throw new Error(t.message)
    const ex = Exhaustive.check(t, "tso")
    expect(ex.states).toEqual(["0:rdx=0; 1:rax=0; 1:rcx=7; [w]=3;", "0:rdx=0; 1:rax=1; 1:rcx=7; [w]=3;"])
    expect(ex.observation).toBe("Sometimes")
  })

  it("still parses a condition on %rax of a thread whose only use of it is a cmpxchg's implicit one", () => {
    const t = Litmus.parse("X86_64 T\n{ x=0; 0:rcx=1; }\n P0 ;\n lock cmpxchgq (x),%rcx ;\nexists (0:rax=0 /\\ x=1)\n", "t")
    if (t instanceof Litmus.LitmusParseError) throw new Error(t.message)
    expect(Exhaustive.check(t, "tso").observation).toBe("Always")
  })
})

/** A store-buffering ring of `threads` threads: thread t stores x<t>, then loads x<t+1>. */
const ring = (threads: number): Litmus.LitmusTest => {
  const t = Array.from({ length: threads }, (_, i) => i)
  const row = (cell: (i: number) => string) => t.map(cell).join(" | ") + " ;"
  const text = [
    "X86_64 Ring",
    `{ ${t.map((i) => `x${i}=0;`).join(" ")} }`,
    row((i) => `P${i}`),
    row((i) => `movq $1,(x${i})`),
    row((i) => `movq (x${(i + 1) % threads}),%rax`),
    `exists (${t.map((i) => `${i}:rax=0`).join(" /\\ ")})`
  ].join("\n")
  const parsed = Litmus.parse(text, "ring.litmus")
  if (parsed instanceof Litmus.LitmusParseError) throw new Error(parsed.message)
  return parsed
}

describe("exhaustive engine: the bound on states", () => {
  it("stops a 10-thread test with the bound, its size, and how far it got", () => {
    const r = Exhaustive.search(ring(10), "tso", { maxStates: 20_000 })
    if (!(r instanceof Exhaustive.StateBoundExceeded)) throw new Error(`expected the bound to stop the search, got ${r.statesVisited} states`)
    expect(r.message).toBe("ring.litmus: more than 20000 states explored (bound 20000): test Ring has 10 threads and 20 instructions")
    // One expansion adds at most two states per thread.
    expect(r.statesVisited).toBeGreaterThan(20_000)
    expect(r.statesVisited).toBeLessThanOrEqual(20_000 + 2 * 10)
  })

  it("is exact: a test of n states completes within a bound of n and stops at n - 1 (each example, TSO and SC)", () => {
    const files = readdirSync(examples).filter((f) => f.endsWith(".litmus"))
    expect(files.length).toBe(10)
    for (const f of files) {
      for (const model of ["tso", "sc"] as const) {
        const t = load(f)
        const n = Exhaustive.check(t, model).statesVisited
        const within = Exhaustive.search(t, model, { maxStates: n })
        expect(within instanceof Exhaustive.StateBoundExceeded, `${f} ${model} within ${n}`).toBe(false)
        expect(Exhaustive.search(t, model, { maxStates: n - 1 }) instanceof Exhaustive.StateBoundExceeded, `${f} ${model} within ${n - 1}`).toBe(true)
      }
    }
  })

  it("does not fire on the examples under the default bound, which is far above every one of them", () => {
    for (const f of readdirSync(examples).filter((f) => f.endsWith(".litmus"))) {
      const r = Exhaustive.search(load(f), "tso")
      if (r instanceof Exhaustive.StateBoundExceeded) throw new Error(r.message)
      expect(r.statesVisited * 1000, f).toBeLessThan(Exhaustive.MAX_STATES_DEFAULT)
    }
  })

  it("rejects a bound that is not a positive integer within the limit of a Set", () => {
    const t = load("SB.litmus")
    for (const maxStates of [0, -1, 1.5, Exhaustive.MAX_STATES_LIMIT + 1]) {
      expect(() => Exhaustive.search(t, "tso", { maxStates }), String(maxStates)).toThrow(RangeError)
    }
  })
})
