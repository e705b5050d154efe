import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
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

  it("rejects a missing condition, a bad operand, and a non-x86 test", () => {
    expect(err(header + " movq $1,(x) | movq (x),%rax ;\n").expected).toContain("condition")
    expect(err(header + " movq $1,x | movq (x),%rax ;\nexists (1:rax=0)\n").expected).toContain("operand")
    expect(err("AArch64 T\n{}\n P0 ;\n").expected).toContain("X86_64")
    expect(err(header + " cmpxchgq (x),%rcx | ;\nexists (0:rax=0)\n").expected).toContain("lock cmpxchg")
    expect(err(header + " movq $1,(x) | ;\nexists (0:rax=0 /\\ )\n").line).toBe(5)
    expect(err(header + " movq $1,(x) | ;\nexists (0:rax=0\n").expected).toBe(`")"`)
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

  it("prints conditions as herd7 does (right-nested conjunctions unparenthesised)", () => {
    const c = Litmus.parseCondition("exists (x=2 /\\ (1:rbx=2 /\\ (0:rax=2 \\/ 0:rax=1)))", 1)
    expect(Litmus.formatCondition(c)).toBe("exists ([x]=2 /\\ 1:rbx=2 /\\ (0:rax=2 \\/ 0:rax=1))")
    const d = Litmus.parseCondition("~exists ((x=1 /\\ y=1) /\\ z=1)", 1)
    expect(Litmus.formatCondition(d)).toBe("~exists (([x]=1 /\\ [y]=1) /\\ [z]=1)")
  })
})
