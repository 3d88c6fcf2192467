import { describe, expect, it } from "vitest";
import { compile } from "../../src/compiler/index.ts";
import type { Action, Hook } from "../../src/policy/model.ts";
import { makePolicy } from "../support/policies.ts";

function diagnose(hook: Hook, match: string, action: Action = "kill") {
  const { plan, diagnostics } = compile([makePolicy({ name: "p", rules: [{ name: "r", hook, match, action }] })]);
  return { plan, diagnostics: diagnostics.map((d) => ({ column: d.column, code: d.code, message: d.message, ...(d.hint && { hint: d.hint }) })) };
}

const KERNEL_HINT =
  'in the kernel a field is compared with constants using ==, !=, in [...], startsWith, endsWith, <, <=, >, >= or cidr("...").containsIP(net.daddr); ' +
  "rules with action audit (or policies in monitor mode) may use any CEL, checked in user space";

describe("CEL errors point at the token and say what was meant", () => {
  it.each([
    ["process.exec", 'process.binnary == "/bin/sh"', 9, "CelError", "`process.binnary`: no such field", "did you mean `process.binary`?"],
    ["process.exec", 'process.parent.bin == "x"', 16, "CelError", "`process.parent.bin`: no such field", "did you mean `process.parent.binary`?"],
    ["process.exec", 'file.path == "/etc/shadow"', 1, "CelError", "`file` is not available on hook process.exec; it provides process, k8s", undefined],
    ["process.exec", 'proc.binary == "/bin/sh"', 1, "CelError", "CEL: Unknown variable: proc", "did you mean `process`?"],
    ["process.exec", 'process.uid == "root"', 1, "CelError", "CEL: no such overload: int == string", undefined],
    ["process.exec", "process.binary", 1, "CelError", "match must be a boolean expression; this one is of type string", undefined],
    ["process.exec", "process.binary == ", 19, "CelError", "CEL: Unexpected token: EOF", undefined],
    ["net.connect", 'net.family == "ipv5"', 15, "CelValue", 'net.family is never "ipv5"; its values are "ipv4", "ipv6"', 'did you mean "ipv4"?'],
    ["net.connect", 'net.daddr == "10.0.0.01"', 14, "CelValue", '"10.0.0.01" is not an IP address', undefined],
    ["net.connect", 'net.daddr == "2001:DB8::1"', 14, "CelValue", 'write the address in canonical form: "2001:db8::1" (events carry canonical addresses, so "2001:DB8::1" would never be equal)', undefined],
    ["net.connect", 'cidr("10.0.0.1/8").containsIP(net.daddr)', 6, "CelValue", '"10.0.0.1/8" has host bits set; did you mean "10.0.0.0/8"?', undefined],
    ["net.connect", 'cidr("10.0.0.0/33").containsIP(net.daddr)', 6, "CelValue", '"10.0.0.0/33": prefix length must be 0 to 32', undefined],
    ["file.open", `file.path == "${"a".repeat(300)}"`, 14, "CelValue", "string is 300 bytes; the kernel compares at most 255", undefined],
  ] as const)("%s: %s", (hook, match, column, code, message, hint) => {
    expect(diagnose(hook, match).diagnostics).toEqual([{ column, code, message, ...(hint && { hint }) }]);
  });

  it("reports every unknown field of a match, not only the first", () => {
    expect(diagnose("file.open", 'file.pth == "/a" || process.bnary == "/b"').diagnostics.map((d) => [d.column, d.message])).toEqual([
      [6, "`file.pth`: no such field"],
      [29, "`process.bnary`: no such field"],
    ]);
  });
});

describe("what the kernel cannot decide", () => {
  it.each([
    ['file.path.matches("^/etc/.*")', 11, "`matches` (a regular expression) cannot be decided in the kernel, so a rule with action deny cannot use it"],
    ['file.path.contains("shadow")', 11, "`contains` (a substring search) cannot be decided in the kernel, so a rule with action deny cannot use it"],
    ['"-c" in process.args', 1, "process.args is read in user space only; the kernel decision does not see arguments, so a rule with action deny cannot use it"],
    ["file.path == process.binary", 1, "`file.path == process.binary` combines several fields; the kernel compares one field with constants, so a rule with action deny cannot use it"],
  ])("refuses %s for enforce rules, at the offending token", (match, column, message) => {
    expect(diagnose("file.open", `file.path.startsWith("/etc/") && ${match}`, "deny").diagnostics).toEqual([
      { column: column + 'file.path.startsWith("/etc/") && '.length, code: "NotKernelDecidable", message, hint: KERNEL_HINT },
    ]);
  });

  it("allows them for audit rules, as a user-space check over a kernel pre-filter", () => {
    const { plan, diagnostics } = diagnose("file.open", 'file.path.startsWith("/etc/") && file.path.matches("shadow$")', "audit");
    expect(diagnostics).toEqual([]);
    const slot = plan!.hooks[1]!.slots[0]!;
    expect(slot.dimensions).toEqual(["file.path"]);
    expect(slot.userspaceCheck).toBe('file.path.startsWith("/etc/") && file.path.matches("shadow$")');
  });

  it("allows them in monitor mode, which never acts", () => {
    const { diagnostics } = compile([makePolicy({ name: "p", mode: "monitor", rules: [{ name: "r", hook: "file.open", match: 'file.path.contains("x")', action: "kill" }] })]);
    expect(diagnostics).toEqual([]);
  });
});

describe("limits", () => {
  const multi = (i: number) => ({ name: `r${i}`, hook: "file.open" as const, match: `file.path == "/f${i}" && process.uid == ${i}`, action: "deny" as const });
  const single = (i: number) => ({ name: `r${String(i).padStart(5, "0")}`, hook: "file.open" as const, match: `file.path == "/f${i}"`, action: "deny" as const });

  it("holds 1,024 multi-field rules per hook and refuses the 1,025th with the reason", () => {
    expect(compile([makePolicy({ name: "p", rules: Array.from({ length: 1024 }, (_, i) => multi(i)) })]).diagnostics).toEqual([]);
    const { plan, diagnostics } = compile([makePolicy({ name: "p", rules: Array.from({ length: 1025 }, (_, i) => multi(i)) })]);
    expect(plan).toBeUndefined();
    expect(diagnostics).toHaveLength(1);
    expect(diagnostics[0]!.code).toBe("TooManyRules");
    expect(diagnostics[0]!.message).toMatch(/^hook file\.open has more than 1024 rule alternatives that test two or more fields/);
  });

  it("does not count single-field rules against the mask width", () => {
    expect(compile([makePolicy({ name: "p", rules: Array.from({ length: 5000 }, (_, i) => single(i)) })]).diagnostics).toEqual([]);
  });

  it("refuses more rule alternatives per hook than the plan holds", () => {
    const { diagnostics } = compile([makePolicy({ name: "p", rules: Array.from({ length: 11 }, (_, i) => single(i)) })], { limits: { maxSlots: 10 } });
    expect(diagnostics.map((d) => [d.line, d.message])).toEqual([[11, "hook file.open has 11 rule alternatives; the kernel plan holds at most 10 per hook (this rule is the first past the limit)"]]);
  });

  it("refuses a rule whose normal form is too large", () => {
    // 3^4 = 81 alternatives over twelve distinct dimensions: nothing contradicts or merges.
    const match = [
      '(process.binary == "/a" || process.name == "a" || process.uid == 1)',
      '(process.parent.binary == "/b" || process.parent.name == "b" || process.gid == 2)',
      '(process.pid == 3 || process.binary.endsWith("c") || process.name.endsWith("c"))',
      '(process.parent.binary.endsWith("d") || process.parent.name.endsWith("d") || k8s.namespace == "d")',
    ].join(" && ");
    expect(diagnose("process.exec", match).diagnostics).toEqual([{
      column: 1, code: "TooManyAlternatives",
      message: "match expands to more than 64 alternatives (its disjunctive normal form); split it into several rules or factor common tests out",
    }]);
  });

  it("accepts what normalises small, e.g. alternatives that contradict each other", () => {
    const match = Array.from({ length: 7 }, (_, i) => `(process.uid == ${i} || process.binary == "/b${i}")`).join(" && ");
    expect(diagnose("process.exec", match).diagnostics).toEqual([]);
  });

  it("refuses two policies with the same identity", () => {
    const a = makePolicy({ name: "p", rules: [single(1)] }, "a.yaml");
    const b = makePolicy({ name: "p", rules: [single(2)] }, "b.yaml");
    expect(compile([a, b]).diagnostics.map((d) => `${d.file}: ${d.message}`)).toEqual(['b.yaml: TracingPolicy "p" is also defined at a.yaml:1:1']);
  });
});

describe("what this kernel can do", () => {
  const rule = (action: Action) => makePolicy({ name: "p", rules: [{ name: "r", hook: "file.open", match: 'file.path == "/etc/shadow"', action }] });
  const killOnly = { "file.open": ["kill"] } as const;

  it("refuses a deny where the hook can only kill, saying how to accept a kill", () => {
    const { plan, diagnostics } = compile([rule("deny")], { capabilities: killOnly });
    expect(plan).toBeUndefined();
    expect(diagnostics.map((d) => [d.code, d.path, d.message, d.hint])).toEqual([[
      "ActionUnsupported", "spec.rules[0].action", "hook file.open cannot deny on this kernel (it can only kill)",
      "add `fallback: kill` to the rule to accept killing the process instead, or run the policy in monitor mode here; `palisade probe` shows what each hook can do",
    ]]);
  });

  it("kills instead only when the rule says it accepts that, and the plan says what really happens", () => {
    const policy = rule("deny");
    policy.rules[0]!.fallback = "kill";
    const slot = compile([policy], { capabilities: killOnly }).plan!.hooks[1]!.slots[0]!;
    expect([slot.action, slot.verdict]).toEqual(["deny", "killed"]);
  });

  it("leaves monitor mode and audits alone, and every action when the kernel is not known", () => {
    const monitor = rule("deny");
    monitor.mode = "monitor";
    expect(compile([monitor], { capabilities: killOnly }).diagnostics).toEqual([]);
    expect(compile([rule("audit")], { capabilities: killOnly }).diagnostics).toEqual([]);
    expect(compile([rule("deny")]).plan!.hooks[1]!.slots[0]!.verdict).toBe("denied");
  });
});
