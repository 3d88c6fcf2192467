import { describe, expect, it } from "vitest";
import { compile } from "../../src/compiler/index.ts";
import { alignedBlocks } from "../../src/compiler/classes.ts";
import { decide } from "../../src/plan/evaluate.ts";
import type { RuntimeEvent } from "../../src/events/event.ts";
import { makePolicy } from "../support/policies.ts";

// The worked example of docs/compiler.md.
const example = makePolicy({
  name: "no-shells",
  rules: [
    { name: "shells", hook: "process.exec", match: 'process.binary in ["/bin/sh", "/bin/bash"] && !process.parent.binary.startsWith("/usr/lib/")', action: "kill", severity: "high" },
    { name: "tmp-exec", hook: "process.exec", match: 'process.binary.startsWith("/tmp/")', action: "deny", severity: "critical" },
    { name: "users", hook: "process.exec", match: "process.uid >= 1000 && process.uid < 1024", action: "audit", severity: "low" },
  ],
});

const exec = (binary: string, parent = "/usr/bin/node", uid = 0): RuntimeEvent => ({ hook: "process.exec", process: { pid: 1, uid, binary }, parent: { pid: 1, binary: parent } });

describe("the kernel plan of the worked example", () => {
  const plan = compile([example]).plan!;
  const hook = plan.hooks[0]!;

  it("orders rules by precedence: kill before deny, then severity", () => {
    expect(hook.slots.map((s) => [s.rule, s.verdict, s.dimensions, s.bit])).toEqual([
      ["shells", "killed", ["process.binary", "process.parent.binary"], 0],
      ["tmp-exec", "denied", ["process.binary"], undefined],
      ["users", "audited", ["process.uid"], undefined],
    ]);
    expect(hook.bitRanks).toEqual([0]);
    expect(hook.alwaysRank).toBeNull();
  });

  it("has one LPM entry per registered value, with classes carrying the single best rank and mask bits", () => {
    const binary = hook.dimensions.find((d) => d.name === "process.binary")!;
    const classOf = (id: number) => binary.classes.find((c) => c.id === id)!;
    expect(binary.entries.map((e) => [("text" in e && e.text), ("exact" in e && e.exact), classOf(e.class)])).toEqual([
      ["/bin/bash", true, { id: expect.any(Number), singles: [], bits: [0] }],
      ["/bin/sh", true, { id: expect.any(Number), singles: [], bits: [0] }],
      ["/tmp/", false, { id: expect.any(Number), singles: [1], bits: [] }],
    ]);
    expect(classOf(binary.defaultClass)).toMatchObject({ singles: [], bits: [] });
    // Fail closed: a binary the kernel cannot resolve counts as matching every enforcing rule on it.
    expect(classOf(binary.unknownClass)).toMatchObject({ singles: [1], bits: [0] });
  });

  it("keeps negation exact: the default class of the parent holds the rule, the /usr/lib/ prefix removes it", () => {
    const parent = hook.dimensions.find((d) => d.name === "process.parent.binary")!;
    const classOf = (id: number) => parent.classes.find((c) => c.id === id)!;
    expect(classOf(parent.defaultClass).bits).toEqual([0]);
    expect(parent.entries).toEqual([{ text: "/usr/lib/", exact: false, class: expect.any(Number) }]);
    expect(classOf(parent.entries[0]!.class).bits).toEqual([]);
  });

  it("stores integer ranges as aligned blocks, the most common class being the default", () => {
    const uid = hook.dimensions.find((d) => d.name === "process.uid")!;
    expect(uid.entries.map((e) => ("range" in e ? e.range : ""))).toEqual(["1000-1007", "1008-1023"]);
  });

  it("decides like the rules say", () => {
    expect(decide(plan, exec("/bin/sh"))?.slot.rule).toBe("shells");
    expect(decide(plan, exec("/bin/sh", "/usr/lib/apt/methods/http"))).toBeNull();
    expect(decide(plan, exec("/tmp/x", "/usr/lib/a"))?.slot.verdict).toBe("denied");
    expect(decide(plan, exec("/usr/bin/id", "/bin/sh", 1000))?.slot.rule).toBe("users");
    expect(decide(plan, exec("/usr/bin/id", "/bin/sh", 1024))).toBeNull();
  });
});

describe("prefix closure", () => {
  it("gives a longer prefix the rules of the shorter ones it extends", () => {
    const plan = compile([makePolicy({ name: "p", rules: [
      { name: "a", hook: "file.open", match: 'file.path.startsWith("/etc/")', action: "audit" },
      { name: "b", hook: "file.open", match: 'file.path.startsWith("/etc/ssl/")', action: "deny" },
    ] })]).plan!;
    const dim = plan.hooks[1]!.dimensions[0]!;
    const classOf = (id: number) => dim.classes.find((c) => c.id === id)!;
    expect(dim.entries.map((e) => ["text" in e && e.text, classOf(e.class).singles])).toEqual([["/etc/", [1]], ["/etc/ssl/", [0, 1]]]);
  });

  it("leaves out an entry whose class equals its parent's", () => {
    const plan = compile([makePolicy({ name: "p", rules: [
      { name: "a", hook: "file.open", match: 'file.path.startsWith("/etc/") || file.path.startsWith("/etc/ssl/")', action: "deny" },
    ] })]).plan!;
    expect(plan.hooks[1]!.dimensions[0]!.entries.map((e) => "text" in e && e.text)).toEqual(["/etc/"]);
  });
});

describe("workload scopes", () => {
  it("turns selectors and k8s.* tests into scopes decided per workload, host processes excluded", () => {
    const plan = compile([makePolicy({
      name: "p", selector: { podSelector: { matchLabels: { app: "api" } } },
      rules: [{ name: "r", hook: "process.exec", match: 'process.binary == "/bin/sh" && k8s.namespace == "prod"', action: "kill" }],
    })]).plan!;
    expect(plan.scopes).toEqual([{ policy: 0, podSelector: { matchLabels: { app: "api" } }, expression: 'k8s.namespace == "prod"', host: false }]);
    expect(plan.hooks[0]!.slots[0]!.dimensions).toEqual(["process.binary", "workload"]);
    const pod = (labels: Record<string, string>, namespace = "prod"): RuntimeEvent => ({ ...exec("/bin/sh"), k8s: { namespace, pod: "x", labels } });
    expect(decide(plan, pod({ app: "api" }))?.slot.rule).toBe("r");
    expect(decide(plan, pod({ app: "web" }))).toBeNull();
    expect(decide(plan, pod({ app: "api" }, "dev"))).toBeNull();
    expect(decide(plan, exec("/bin/sh"))).toBeNull();
  });

  it("applies a policy without selector to host processes and pods alike", () => {
    const plan = compile([example]).plan!;
    expect(decide(plan, { ...exec("/bin/sh"), k8s: { namespace: "prod", pod: "x" } })?.slot.rule).toBe("shells");
  });
});

describe("alignedBlocks", () => {
  it.each([
    [0, 0, ["0"]],
    [1000, 1023, ["1000-1007", "1008-1023"]],
    [0, 0xffffffff, ["0-4294967295"]],
    [5, 9, ["5", "6-7", "8-9"]],
  ])("[%i, %i]", (lo, hi, ranges) => {
    expect(alignedBlocks(lo, hi).map((b) => b.range)).toEqual(ranges);
  });
});
