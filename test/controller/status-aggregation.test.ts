// The aggregation rules, without an API server: node reports in, policy status out.
// test/e2e/kube/status.test.ts runs the same rules through the real API server.

import { describe, expect, it } from "vitest";
import type { NodeState } from "../../src/controller/node-state.ts";
import { sameStatus, significantChange, StatusAggregation, type PolicyRef, type PolicyStatus } from "../../src/controller/status/aggregation.ts";
import { readNodeReport, SetDigest, toPalisadeNode } from "../../src/controller/status/node-object.ts";

const policy: PolicyRef = { kind: "TracingPolicy", name: "no-shells", uid: "u-1", generation: 1, hooks: ["process.exec"] };
const LIVE = Date.now() + 60_000;

function report(node: string, entries: { uid?: string; generation?: number; failed?: string; reason?: "CompileError" | "ApplyError" | "NotEnforceable" }[], backend = "lsm") {
  const state: NodeState = {
    node,
    heartbeatTime: new Date().toISOString(),
    backends: { "process.exec": backend, "file.open": backend },
    policies: entries.map((e) => ({
      kind: "TracingPolicy",
      name: "no-shells",
      uid: e.uid ?? "u-1",
      generation: e.generation ?? 1,
      state: e.failed ? "Failed" : "Enforcing",
      reason: e.failed ? (e.reason ?? "ApplyError") : "Applied",
      message: e.failed,
    })),
  };
  // Through the object's encoding, as the aggregator reads it.
  return readNodeReport(toPalisadeNode(state));
}

const condition = (status: PolicyStatus | undefined, type: string) => status?.conditions.find((c) => c.type === type);

function cluster(nodes: string[]) {
  const aggregation = new StatusAggregation();
  aggregation.upsertPolicy(policy);
  for (const node of nodes) aggregation.setHeartbeat(node, LIVE);
  return aggregation;
}

describe("status aggregation", () => {
  it("is Ready when every live node enforces the current generation, Reconciling until then", () => {
    const aggregation = cluster(["a", "b"]);
    aggregation.setReport("a", report("a", [{}]));
    let status = aggregation.statusOf("u-1", undefined);
    expect(status?.nodes).toEqual({ enforcing: 1, failed: 0, total: 2 });
    expect(condition(status, "Ready")).toMatchObject({ status: "False", reason: "Pending", observedGeneration: 1 });
    expect(condition(status, "Reconciling")).toMatchObject({ status: "True", message: "1 of 2 nodes have not reported generation 1 yet." });
    aggregation.setReport("b", report("b", [{}]));
    status = aggregation.statusOf("u-1", status);
    expect(condition(status, "Ready")).toMatchObject({ status: "True", reason: "Enforcing" });
    expect(condition(status, "Reconciling")).toMatchObject({ status: "False" });
    expect(condition(status, "Degraded")).toMatchObject({ status: "False" });
    expect(status?.backends).toEqual({ "process.exec": "lsm" });
  });

  it("waits for the new generation after an edit, ignoring reports of the old one", () => {
    const aggregation = cluster(["a", "b"]);
    aggregation.setReport("a", report("a", [{}]));
    aggregation.setReport("b", report("b", [{}]));
    aggregation.upsertPolicy({ ...policy, generation: 2 });
    aggregation.setReport("a", report("a", [{ generation: 2 }]));
    const status = aggregation.statusOf("u-1", undefined);
    expect(status).toMatchObject({ observedGeneration: 2, nodes: { enforcing: 1, failed: 0, total: 2 } });
    expect(condition(status, "Reconciling")).toMatchObject({ status: "True", observedGeneration: 2 });
  });

  it("names a compile error with the node's diagnostic, Ready=False and Degraded=True", () => {
    const aggregation = cluster(["a", "b"]);
    const message = "policy.yaml:9:14: spec.rules[0].match: undeclared reference to 'proces'";
    aggregation.setReport("a", report("a", [{ failed: message, reason: "CompileError" }]));
    aggregation.setReport("b", report("b", [{ failed: message, reason: "CompileError" }]));
    const status = aggregation.statusOf("u-1", undefined);
    expect(status?.nodes).toEqual({ enforcing: 0, failed: 2, total: 2 });
    expect(condition(status, "Ready")).toMatchObject({ status: "False", reason: "CompileError", message: `${message} (2 of 2 nodes failed, e.g. a)` });
    expect(condition(status, "Degraded")).toMatchObject({ status: "True", reason: "CompileError" });
    expect(condition(status, "Reconciling")).toMatchObject({ status: "False" });
  });

  it("counts only live nodes, and summarises backends when nodes differ", () => {
    const aggregation = cluster(["a", "b", "c"]);
    aggregation.setReport("a", report("a", [{}]));
    aggregation.setReport("b", report("b", [{}], "kprobe"));
    aggregation.setReport("c", report("c", [{ failed: "cannot attach", reason: "NotEnforceable" }], "tracepoint"));
    let status = aggregation.statusOf("u-1", undefined);
    expect(status?.nodes).toEqual({ enforcing: 2, failed: 1, total: 3 });
    expect(status?.backends["process.exec"]).toBe("kprobe (1), lsm (1), tracepoint (1)");
    expect(condition(status, "Degraded")).toMatchObject({ status: "True", reason: "NotEnforceable" });
    // c's heartbeat stops: it no longer counts, and the policy is Ready on the two left.
    aggregation.setHeartbeat("c", Date.now() - 1);
    status = aggregation.statusOf("u-1", status);
    expect(status?.nodes).toEqual({ enforcing: 2, failed: 0, total: 2 });
    expect(condition(status, "Ready")).toMatchObject({ status: "True" });
    expect(status?.backends["process.exec"]).toBe("kprobe (1), lsm (1)");
  });

  it("keeps lastTransitionTime while a condition's status stays, and marks only changed policies dirty", () => {
    const aggregation = cluster(["a"]);
    aggregation.upsertPolicy({ ...policy, uid: "u-2", name: "other" });
    aggregation.setReport("a", report("a", [])); // its backends appear in every policy's status
    aggregation.takeDirty();
    aggregation.setReport("a", report("a", [{}]));
    expect(aggregation.takeDirty()).toEqual(["u-1"]);
    const first = aggregation.statusOf("u-1", undefined, new Date("2026-01-01T00:00:00Z"))!;
    const again = aggregation.statusOf("u-1", first, new Date("2026-01-02T00:00:00Z"))!;
    expect(sameStatus(first, again)).toBe(true);
    expect(condition(again, "Ready")?.lastTransitionTime).toBe("2026-01-01T00:00:00Z");
    // The same report again changes nothing.
    aggregation.setReport("a", report("a", [{}]));
    expect(aggregation.takeDirty()).toEqual([]);
    // A count-only change is not significant; a condition flip is.
    aggregation.setHeartbeat("b", LIVE);
    const pending = aggregation.statusOf("u-1", again)!;
    expect(significantChange(again, pending)).toBe(true);
    aggregation.setReport("b", report("b", [{ generation: 0 }]));
    aggregation.setHeartbeat("c", LIVE);
    expect(significantChange(pending, aggregation.statusOf("u-1", pending)!)).toBe(false);
  });

  it("reads back a node's compact object: a digest per kind, failures one by one", () => {
    const node = toPalisadeNode({
      node: "n1",
      heartbeatTime: "2026-11-24T20:00:00Z",
      backends: { "process.exec": "lsm", "net.connect": null },
      planDigest: "sha256:abc",
      policies: [
        { kind: "TracingPolicy", name: "p", uid: "u-9", generation: 4, state: "Enforcing", reason: "Applied" },
        { kind: "TracingPolicyNamespaced", namespace: "ns", name: "q", uid: "u-3", generation: 2, state: "Failed", reason: "ApplyError", message: "map full" },
      ],
    });
    expect(node.status).toMatchObject({ enforcingCount: 1, failedCount: 1, backendSummary: "process.exec=lsm net.connect=none" });
    expect(node.status.policySets.TracingPolicy.count).toBe(1);
    expect(node.status.policySets.TracingPolicyNamespaced.count).toBe(1);
    const read = readNodeReport(node);
    expect(read.sets.TracingPolicy).toMatch(/^[0-9a-f]{32}$/);
    expect(read.failures.get("u-3")).toMatchObject({ namespace: "ns", reason: "ApplyError", message: "map full" });
    // The size does not grow with the policies a node enforces.
    const many = toPalisadeNode({
      node: "n1",
      heartbeatTime: "2026-11-24T20:00:00Z",
      backends: {},
      policies: Array.from({ length: 1000 }, (_, i) => ({ kind: "TracingPolicy" as const, name: `p${i}`, uid: `u-${i}`, generation: 1, state: "Enforcing" as const, reason: "Applied" as const })),
    });
    expect(JSON.stringify(many).length).toBeLessThan(1024);
    // Every policy failing with a long diagnostic still fits well under etcd's 1.5 MiB.
    const failing = toPalisadeNode({
      node: "n1",
      heartbeatTime: "2026-11-24T20:00:00Z",
      backends: {},
      policies: Array.from({ length: 3000 }, (_, i) => ({ kind: "TracingPolicy" as const, name: `p${i}`, uid: `u-${i}`, generation: 1, state: "Failed" as const, reason: "CompileError" as const, message: "x".repeat(5000) })),
    });
    expect(failing.status.failed).toHaveLength(3000);
    expect(JSON.stringify(failing).length).toBeLessThan(1024 * 1024);
  });

  it("the digest names a set, whatever the order; adding and removing a pair undo each other", () => {
    const a = new SetDigest();
    a.toggle("u-1", 1);
    a.toggle("u-2", 3);
    const b = new SetDigest();
    b.toggle("u-2", 3);
    b.toggle("u-1", 1);
    expect(a.value).toBe(b.value);
    b.toggle("u-1", 1);
    b.toggle("u-1", 2);
    expect(b.value).not.toBe(a.value);
    b.toggle("u-1", 2);
    b.toggle("u-1", 1);
    expect(b.value).toBe(a.value);
  });

  it("a node ahead of the aggregator's watch counts once the aggregator sees that version", () => {
    const aggregation = cluster(["a"]);
    aggregation.setReport("a", report("a", [{ generation: 2 }])); // the edit reached the node first
    expect(aggregation.statusOf("u-1", undefined)?.nodes).toEqual({ enforcing: 0, failed: 0, total: 1 });
    aggregation.upsertPolicy({ ...policy, generation: 2 });
    const status = aggregation.statusOf("u-1", undefined);
    expect(status).toMatchObject({ observedGeneration: 2, nodes: { enforcing: 1, failed: 0, total: 1 } });
    expect(condition(status, "Ready")?.status).toBe("True");
  });

  it("an edit of one policy touches only that policy's status", () => {
    const aggregation = cluster(["a", "b"]);
    const other: PolicyRef = { ...policy, uid: "u-2", name: "other" };
    aggregation.upsertPolicy(other);
    const both = [{}, { uid: "u-2" }];
    aggregation.setReport("a", report("a", both));
    aggregation.setReport("b", report("b", both));
    expect(condition(aggregation.statusOf("u-2", undefined), "Ready")?.status).toBe("True");
    aggregation.upsertPolicy({ ...policy, generation: 2 });
    aggregation.takeDirty();
    aggregation.setReport("a", report("a", [{ generation: 2 }, { uid: "u-2" }]));
    expect(aggregation.takeDirty()).toEqual(["u-1"]);
    expect(aggregation.statusOf("u-1", undefined)?.nodes).toEqual({ enforcing: 1, failed: 0, total: 2 });
    expect(condition(aggregation.statusOf("u-2", undefined), "Ready")?.status).toBe("True");
    // b, still at the old set, has everything but u-1's new generation.
    expect(aggregation.statusOf("u-2", undefined)?.nodes).toEqual({ enforcing: 2, failed: 0, total: 2 });
  });

  it("a deleted policy leaves the others' counts alone, before and after nodes drop it", () => {
    const aggregation = cluster(["a"]);
    aggregation.upsertPolicy({ ...policy, uid: "u-2", name: "other" });
    aggregation.setReport("a", report("a", [{}, { uid: "u-2" }]));
    aggregation.removePolicy("u-2");
    expect(aggregation.statusOf("u-1", undefined)?.nodes).toEqual({ enforcing: 1, failed: 0, total: 1 });
    aggregation.setReport("a", report("a", [{}]));
    expect(aggregation.statusOf("u-1", undefined)?.nodes).toEqual({ enforcing: 1, failed: 0, total: 1 });
    expect(aggregation.statusOf("u-2", undefined)).toBeUndefined();
  });

  it("a node whose set the aggregator never had counts as not reported, never as enforcing", () => {
    const aggregation = cluster(["a"]);
    aggregation.setReport("a", report("a", [{}, { uid: "u-unknown" }]));
    const status = aggregation.statusOf("u-1", undefined);
    expect(status?.nodes).toEqual({ enforcing: 0, failed: 0, total: 1 });
    expect(condition(status, "Reconciling")?.status).toBe("True");
  });
});
