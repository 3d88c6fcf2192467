// The reconciler without a cluster or a kernel: policy objects as the API server serves them
// in, plans and per-object states out.

import { describe, expect, it } from "vitest";
import type { KernelPlan } from "../../src/plan/types.ts";
import type { PolicyObject } from "../../src/controller/policies.ts";
import { PolicyReconciler } from "../../src/controller/reconciler.ts";

let uids = 0;
function object(name: string, match: string, options: { generation?: number; uid?: string; namespace?: string } = {}): PolicyObject {
  return {
    apiVersion: "palisade.dev/v1alpha1",
    kind: options.namespace ? "TracingPolicyNamespaced" : "TracingPolicy",
    metadata: { name, uid: options.uid ?? `uid-${++uids}`, resourceVersion: String(++uids), generation: options.generation ?? 1, ...(options.namespace && { namespace: options.namespace }) },
    spec: { mode: "enforce", rules: [{ name: "r", hook: "process.exec", match, action: "kill", severity: "high" }] },
  };
}

const applied: KernelPlan[] = [];
const accept = (plan: KernelPlan) => void applied.push(plan);
const names = (plan: KernelPlan | undefined) => plan?.policies.map((p) => (p.namespace ? `${p.namespace}/${p.name}` : p.name));

describe("PolicyReconciler", () => {
  it("compiles every object into one plan, applied once however many objects came", () => {
    const r = new PolicyReconciler();
    for (let i = 0; i < 50; i++) r.upsert(object(`p${i}`, `process.binary == "/bin/t${i}"`));
    applied.length = 0;
    const result = r.reconcile(accept);
    expect(applied).toHaveLength(1);
    expect(result.plan?.policies).toHaveLength(50);
    expect(r.states().every((s) => s.state === "Enforcing" && s.reason === "Applied" && s.generation === 1)).toBe(true);
  });

  it("keeps an invalid object's last good generation, fails it with the field path and CEL position, and updates the others", () => {
    const r = new PolicyReconciler();
    const good = object("good", 'process.binary == "/bin/a"');
    const other = object("other", 'process.binary == "/bin/b"');
    r.upsert(good);
    r.upsert(other);
    r.reconcile(accept);
    const first = r.plan!;

    r.upsert({ ...good, metadata: { ...good.metadata, generation: 2 }, spec: { rules: [{ name: "r", hook: "process.exec", match: 'process.binary == "/bin/a" &&\n  process.binnary == "x"', action: "kill" }] } });
    r.upsert({ ...other, metadata: { ...other.metadata, generation: 2 }, spec: { rules: [{ name: "r", hook: "process.exec", match: 'process.binary == "/bin/c"', action: "kill" }] } });
    const result = r.reconcile(accept);
    expect(result.failed).toEqual([{ key: "TracingPolicy/good", message: expect.stringMatching(/^spec\.rules\[0\]\.match:2:11: `process\.binnary`: no such field; did you mean `process\.binary`\?/) }]);
    expect(result.plan?.digest).not.toBe(first.digest);
    // "good" is still in force as generation 1 had it: its rule is in the new plan.
    expect(JSON.stringify(result.plan)).toContain("/bin/a");
    expect(JSON.stringify(result.plan)).toContain("/bin/c");
    expect(r.states().find((s) => s.name === "good")).toMatchObject({ generation: 2, state: "Failed", reason: "CompileError" });
    expect(r.states().find((s) => s.name === "other")).toMatchObject({ generation: 2, state: "Enforcing" });
  });

  it("names a schema error by its field path (an object written before a schema change)", () => {
    const r = new PolicyReconciler();
    const p = object("old", 'process.binary == "/bin/a"');
    (p.spec as { rules: { action: string }[] }).rules[0]!.action = "explode";
    r.upsert(p);
    const result = r.reconcile(accept);
    expect(result.failed[0]?.message).toBe('spec.rules[0].action: invalid value "explode", expected one of: deny, kill, audit');
    expect(r.states()[0]).toMatchObject({ state: "Failed", reason: "CompileError" });
  });

  it("ignores writes that are not a new generation (status, labels)", () => {
    const r = new PolicyReconciler();
    const p = object("p", 'process.binary == "/bin/a"');
    r.upsert(p);
    r.reconcile(accept);
    expect(r.upsert({ ...p, metadata: { ...p.metadata, resourceVersion: "999", labels: { a: "b" } }, status: { conditions: [] } })).toBe(false);
    expect(r.dirty).toBe(false);
  });

  it("drops a deleted object's rules, and a recreated object starts without a last good version", () => {
    const r = new PolicyReconciler();
    const p = object("p", 'process.binary == "/bin/a"', { namespace: "shop" });
    r.upsert(p);
    r.upsert(object("q", 'process.binary == "/bin/b"'));
    r.reconcile(accept);
    expect(names(r.plan)).toEqual(["q", "shop/p"]);
    r.remove(p);
    expect(names(r.reconcile(accept).plan)).toEqual(["q"]);
    expect(r.states().map((s) => s.name)).toEqual(["q"]);
    // Recreated (new uid) and broken: nothing of the old one comes back.
    r.upsert(object("p", "process.binary ==", { namespace: "shop" }));
    r.reconcile(accept);
    expect(names(r.plan)).toEqual(["q"]);
    expect(r.states().find((s) => s.name === "p")).toMatchObject({ namespace: "shop", state: "Failed", reason: "CompileError" });
  });

  it("refuses what this kernel cannot do, per object", () => {
    const r = new PolicyReconciler({ capabilities: { "process.exec": ["kill"], "file.open": ["kill"], "net.connect": ["deny", "kill"] } });
    const deny = object("deny", 'process.binary == "/bin/a"');
    (deny.spec as { rules: { action: string }[] }).rules[0]!.action = "deny";
    r.upsert(deny);
    r.upsert(object("kill", 'process.binary == "/bin/b"'));
    const result = r.reconcile(accept);
    expect(names(result.plan)).toEqual(["kill"]);
    expect(result.failed[0]?.message).toMatch(/^spec\.rules\[0\]\.action: hook process\.exec cannot deny on this kernel/);
  });

  it("fails the round's objects, and keeps the plan in force, when only the combination is refused (a kernel limit)", () => {
    const r = new PolicyReconciler({ limits: { maxSlots: 1 } });
    r.upsert(object("a", 'process.binary == "/bin/a"'));
    r.reconcile(accept);
    const before = r.plan;
    r.upsert(object("b", 'process.binary == "/bin/b"'));
    const result = r.reconcile(accept);
    expect(result.plan).toBeUndefined();
    expect(r.plan).toBe(before);
    expect(result.failed).toEqual([{ key: "TracingPolicy/b", message: expect.stringMatching(/^TracingPolicy\/\w: spec\.rules\[0\]: hook process\.exec has 2 rule alternatives/) }]);
    expect(r.states().map((s) => [s.name, s.state])).toEqual([["a", "Enforcing"], ["b", "Failed"]]);
    // Once there is room again, the refused object gets in without being edited.
    r.remove(object("a", "", { uid: "unused" }));
    expect(names(r.reconcile(accept).plan)).toEqual(["b"]);
    expect(r.states()).toMatchObject([{ name: "b", state: "Enforcing" }]);
  });

  it("says which rules this node cannot see", () => {
    const r = new PolicyReconciler({ enforceable: (hook) => hook !== "file.open" });
    const p = object("files", 'file.path == "/etc/shadow"');
    (p.spec as { rules: { hook: string }[] }).rules[0]!.hook = "file.open";
    r.upsert(p);
    r.reconcile(accept);
    expect(r.states()[0]).toMatchObject({ state: "Failed", reason: "NotEnforceable", message: expect.stringContaining("file.open") });
  });

  it("keeps the plan in force when the enforcer refuses it, and retries the round", () => {
    const r = new PolicyReconciler();
    r.upsert(object("a", 'process.binary == "/bin/a"'));
    r.reconcile(accept);
    const before = r.plan;
    r.upsert(object("b", 'process.binary == "/bin/b"'));
    const result = r.reconcile(() => {
      throw new Error("map full");
    });
    expect(result).toMatchObject({ retry: true, failed: [{ key: "TracingPolicy/b", message: "map full" }] });
    expect(r.plan).toBe(before);
    expect(r.dirty).toBe(true);
    expect(names(r.reconcile(accept).plan)).toEqual(["a", "b"]);
    expect(r.states().every((s) => s.state === "Enforcing")).toBe(true);
  });
});
