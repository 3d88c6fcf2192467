// The encoder against the plan's meaning, without a kernel: encode a compiled plan into a
// generation's map entries, decide generated events with a model of the kernel's lookups
// over those bytes, and require the reference evaluator's kernel answer.

import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { compile } from "../../src/compiler/index.ts";
import { evaluate } from "../../src/plan/evaluate.ts";
import { encodeGeneration, encodeWorkloads, EncodeError, TRACEPOINT_CAPABILITIES, verdictByte, WorkloadClasses, type Workload } from "../../src/enforcer/encode.ts";
import { KernelModel } from "../../src/enforcer/kernel-model.ts";
import { readU32, unpackHook, V_DENY, V_KILL, V_MONITOR, V_AUDIT, V_USERSPACE, MAX_CLASSES, CLASS_SIZE, Records } from "../../src/enforcer/abi.ts";
import { HOOK_IDS } from "../../src/plan/dimensions.ts";
import { eventArb, policiesArb } from "../support/generators.ts";
import { makePolicy } from "../support/policies.ts";
import type { RuntimeEvent } from "../../src/events/event.ts";

/** The kernel sees no Kubernetes metadata until the controller classifies cgroups: host events only. */
const hostEventArb = eventArb.map((e): RuntimeEvent => ({ ...e, k8s: undefined }));

describe("encoder: generation images decide like the reference evaluator", () => {
  it("agrees with evaluate() on generated policies and events, in both generations", () => {
    let decided = 0;
    fc.assert(
      fc.property(policiesArb, fc.array(hostEventArb, { minLength: 20, maxLength: 40 }), fc.constantFrom<0 | 1>(0, 1), (policies, events, gen) => {
        const { plan, diagnostics } = compile(policies);
        fc.pre(!diagnostics.some((d) => d.code === "TooManyAlternatives"));
        expect(diagnostics).toEqual([]);
        const model = new KernelModel(encodeGeneration(plan!, gen));
        for (const event of events) {
          const want = evaluate(plan!, event).kernelRank;
          const got = model.decide(event);
          expect(got?.rank ?? null, JSON.stringify({ event, rules: policies.map((p) => p.rules.map((r) => r.match)) })).toBe(want);
          if (got) {
            decided++;
            const hook = plan!.hooks.find((h) => h.hook === event.hook)!;
            expect(got.verdict).toBe(verdictByte(hook.slots[got.rank]!));
          }
        }
      }),
      { numRuns: 300 },
    );
    expect(decided).toBeGreaterThan(500);
  });

  it("classified cgroups decide like the evaluator's workloads, by their own cgroup or their nearest classified ancestor", () => {
    let scoped = 0;
    fc.assert(
      fc.property(policiesArb, fc.array(eventArb, { minLength: 20, maxLength: 40 }), fc.constantFrom<0 | 1>(0, 1), (policies, events, gen) => {
        const { plan, diagnostics } = compile(policies);
        fc.pre(!diagnostics.some((d) => d.code === "TooManyAlternatives"));
        // Event i runs in cgroup 1000 + i, a child of the classified pod cgroup 100 + i
        // (even i) or classified itself (odd i); host events in cgroups nobody classified.
        const workloads = new Map<bigint, Workload>();
        const chains = events.map((e, i) => {
          if (!e.k8s) return [BigInt(5000 + i), 1n];
          const own = BigInt(1000 + i), pod = BigInt(100 + i);
          workloads.set(i % 2 ? own : pod, e.k8s);
          return [own, pod, 1n];
        });
        const model = new KernelModel(encodeGeneration(plan!, gen, undefined, { workloads }));
        events.forEach((event, i) => {
          const want = evaluate(plan!, event).kernelRank;
          const got = model.decide(event, {}, chains[i]);
          expect(got?.rank ?? null, JSON.stringify({ event, rules: policies.map((p) => p.rules.map((r) => r.match)) })).toBe(want);
          if (event.k8s && plan!.scopes.length) scoped++;
        });
      }),
      { numRuns: 200 },
    );
    expect(scoped).toBeGreaterThan(200);
  });

  it("gives equal workload classes one id, and refuses more distinct ones than the kernel holds", () => {
    const { plan } = compile([
      makePolicy({ name: "prod", kind: "TracingPolicyNamespaced", namespace: "prod", rules: [{ name: "r", hook: "process.exec", match: 'process.binary == "/bin/sh"', action: "kill" }] }),
      makePolicy({ name: "api", selector: { podSelector: { matchLabels: { app: "api" } } }, rules: [{ name: "s", hook: "process.exec", match: 'process.binary == "/bin/nc"', action: "kill" }] }),
    ]);
    const table = WorkloadClasses.forPlan(plan!);
    const fresh = new Records(4, CLASS_SIZE);
    const pods = new Map<bigint, Workload>([
      [1n, { namespace: "prod", pod: "a", labels: { app: "api" } }],
      [2n, { namespace: "prod", pod: "b", labels: { app: "api" } }],
      [3n, { namespace: "prod", pod: "c" }],
      [4n, { namespace: "dev", pod: "d" }],
      [5n, { namespace: "dev", pod: "e", labels: { app: "api" } }],
    ]);
    const entries = encodeWorkloads(plan!, 0, pods, table, fresh);
    expect(entries.count).toBe(5 * 3);
    // prod+api, prod, neither, api: four distinct classes on process.exec
    expect(fresh.count).toBe(4);
    const exec = (id: bigint) => readU32(entries.entries().find(([k]) => k[9] === 0 && k.readBigUInt64LE(0) === id)![1]);
    expect(exec(1n)).toBe(exec(2n));
    expect(new Set([1n, 3n, 4n, 5n].map(exec)).size).toBe(4);
    // The same set again allocates nothing.
    const again = new Records(4, CLASS_SIZE);
    encodeWorkloads(plan!, 0, pods, table, again);
    expect(again.count).toBe(0);

    const tooMany = structuredClone(plan!);
    tooMany.hooks[0]!.dimensions.forEach((d) => d.classes.push({ id: MAX_CLASSES - 2, singles: [], bits: [] }));
    expect(() => encodeWorkloads(tooMany, 0, pods, WorkloadClasses.forPlan(tooMany), new Records(4, CLASS_SIZE))).toThrow(/more classes than the kernel holds/);
  });

  it("an unresolved path takes the unknown class: enforcing rules on that path hold, others do not", () => {
    const { plan } = compile([
      makePolicy({ name: "p", rules: [
        { name: "kill-sh", hook: "process.exec", match: 'process.binary == "/bin/sh"', action: "kill" },
        { name: "audit-tmp", hook: "process.exec", match: 'process.binary.startsWith("/tmp/")', action: "audit" },
      ] }),
    ]);
    const model = new KernelModel(encodeGeneration(plan!, 0));
    const event: RuntimeEvent = { hook: "process.exec", process: { pid: 5, uid: 0, binary: "/tmp/x" } };
    expect(model.decide(event)?.rank).toBe(plan!.hooks[0]!.slots.findIndex((s) => s.rule === "audit-tmp"));
    const unresolved = model.decide(event, { binary: true });
    expect(plan!.hooks[0]!.slots[unresolved!.rank]!.rule).toBe("kill-sh");
  });

  it("writes each slot's verdict, and never changes an action the hook cannot carry out", () => {
    const policies = [
      makePolicy({ name: "enf", rules: [
        { name: "deny-net", hook: "net.connect", match: "net.dport == 1", action: "deny" },
        { name: "kill-net", hook: "net.connect", match: "net.dport == 2", action: "kill" },
        { name: "kill-open", hook: "file.open", match: 'file.path == "/a"', action: "kill" },
        { name: "audit-args", hook: "process.exec", match: '"-c" in process.args', action: "audit" },
      ] }),
      makePolicy({ name: "mon", mode: "monitor", rules: [{ name: "m", hook: "file.open", match: 'file.path == "/b"', action: "deny" }] }),
    ];
    const { plan } = compile(policies, { capabilities: TRACEPOINT_CAPABILITIES });
    const image = encodeGeneration(plan!, 1, TRACEPOINT_CAPABILITIES);
    const verdictOf = (hook: "process.exec" | "file.open" | "net.connect", rule: string) => {
      const h = plan!.hooks.find((x) => x.hook === hook)!;
      const rank = h.slots.findIndex((s) => s.rule === rule);
      const key = (1 * 3 + HOOK_IDS[hook]) * 65536 + rank;
      return image.verdicts.entries().find(([k]) => readU32(k) === key)![1][0];
    };
    expect(verdictOf("net.connect", "deny-net")).toBe(V_DENY);
    expect(verdictOf("net.connect", "kill-net")).toBe(V_KILL);
    expect(verdictOf("file.open", "kill-open")).toBe(V_KILL);
    expect(verdictOf("file.open", "m")).toBe(V_MONITOR);
    expect(verdictOf("process.exec", "audit-args")).toBe(V_AUDIT | V_USERSPACE);

    // A plan compiled without this kernel's capabilities that denies an open is refused.
    const { plan: unchecked } = compile([makePolicy({ name: "d", rules: [{ name: "deny-open", hook: "file.open", match: 'file.path == "/a"', action: "deny" }] })]);
    expect(() => encodeGeneration(unchecked!, 0, TRACEPOINT_CAPABILITIES)).toThrow(/deny-open.*file.open to deny/);
  });

  it("writes only the generation it is asked for", () => {
    const { plan } = compile([makePolicy({ name: "p", rules: [
      { name: "r", hook: "net.connect", match: 'net.dport == 22 && cidr("10.0.0.0/8").containsIP(net.daddr)', action: "deny" },
      { name: "s", hook: "file.open", match: 'file.path.startsWith("/etc/")', action: "kill" },
    ] })]);
    for (const gen of [0, 1] as const) {
      const image = encodeGeneration(plan!, gen);
      for (const [k] of image.hooks.entries()) expect(Math.floor(readU32(k) / 3)).toBe(gen);
      for (const [k] of image.classes.entries()) expect(Math.floor(readU32(k) / MAX_CLASSES)).toBe(gen);
      for (const [k] of image.ints.entries()) expect(k[4]).toBe(gen);
      for (const [k] of image.addrs.entries()) expect(k[4]).toBe(gen);
      for (const t of image.strTries) expect(Math.floor(t.slot / 42)).toBe(gen);
      const net = unpackHook(image.hooks.entries().find(([k]) => readU32(k) === gen * 3 + 2)![1]);
      expect(net.dims).toBe((1 << 17) | (1 << 20));
      expect(net.bitWords).toBe(1);
    }
  });

  it("refuses a plan that does not fit, before anything is written", () => {
    const { plan } = compile([makePolicy({ name: "p", rules: [{ name: "r", hook: "file.open", match: 'file.path == "/x"', action: "kill" }] })]);
    const bad = structuredClone(plan!);
    bad.hooks[1]!.dimensions[0]!.classes[0]!.id = MAX_CLASSES + 1;
    expect(() => encodeGeneration(bad, 0)).toThrow(EncodeError);
  });
});
