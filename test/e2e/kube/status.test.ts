// Policy status against a real kube-apiserver: node agents (NodeStatePublishers, one per
// simulated node, each writing its own PalisadeNode and heartbeat Lease) and two aggregator
// candidates elected through a Lease. There is no kubelet here: the "nodes" are publishers
// in this process, reporting what a node's reconciler would (test/e2e/kube/README.md).
// The statuses are checked field by field and through `kubectl get`, and saved as file
// snapshots (test/fixtures/status-snapshots/) that the Argo CD health check is tested on.

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NodePolicyState, NodeState } from "../../../src/controller/node-state.ts";
import { NodeStatePublisher, startStatusAggregator, type PolicyStatus, type StatusAggregator } from "../../../src/controller/status/index.ts";
import { startCluster, type Cluster } from "./cluster.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const SNAPSHOTS = join(ROOT, "test", "fixtures", "status-snapshots");
const NAMESPACE = "palisade-system";
const NODES = ["node-a", "node-b", "node-c"];
const COMPILE_ERROR = "policy invalid-exec: spec.rules[0].match:1:9: undeclared reference to 'proces' (did you mean 'process'?)";

let cluster: Cluster;
let kubeConfig: KubeConfig;
const publishers = new Map<string, NodeStatePublisher>();
const aggregators = new Map<string, StatusAggregator>();
/** What each simulated node currently enforces, by policy uid. */
const nodeStates = new Map<string, Map<string, NodePolicyState>>();
const log = (line: string) => console.info(line);

beforeAll(async () => {
  cluster = await startCluster();
  const applied = await cluster.kubectl(["apply", "--validate=strict", "-f", join(ROOT, "api", "crds")]);
  if (applied.stderr) throw new Error(`the CRDs apply with warnings: ${applied.stderr}`);
  await cluster.kubectl(["wait", "--for=condition=Established", "--timeout=30s", "crd/palisadenodes.palisade.dev", "crd/tracingpolicies.palisade.dev", "crd/tracingpoliciesnamespaced.palisade.dev"]);
  await cluster.kubectl(["create", "namespace", NAMESPACE]);
  // node-a has a Node object (as every real node does); node-b and node-c do not.
  await cluster.kubectl(["create", "-f", "-"], { input: JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name: "node-a" } }) });
  kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(cluster.kubeconfig);
  for (const node of NODES) {
    // node-b also rewrites its unchanged state every few seconds (by default every 10 minutes).
    const resync = node === "node-b" ? { resyncSeconds: 3 } : {};
    publishers.set(node, new NodeStatePublisher({ kubeConfig, node, log, heartbeatSeconds: 1, namespace: NAMESPACE, ...resync }));
    nodeStates.set(node, new Map());
  }
  for (const identity of ["agent-a", "agent-b"]) {
    aggregators.set(identity, startStatusAggregator({ kubeConfig, identity, namespace: NAMESPACE, log, leaseDurationSeconds: 4 }));
  }
}, 10 * 60_000);

afterAll(async () => {
  for (const publisher of publishers.values()) await publisher.close();
  for (const aggregator of aggregators.values()) await aggregator.stop();
  await cluster?.stop();
});

function policyYaml(name: string, match = 'process.binary == "/bin/sh"'): string {
  return JSON.stringify({
    apiVersion: "palisade.dev/v1alpha1",
    kind: "TracingPolicy",
    metadata: { name },
    spec: { rules: [{ name: "r", hook: "process.exec", match, action: "kill" }] },
  });
}

/** A TracingPolicy by name, or a TracingPolicyNamespaced by "namespace/name". */
async function getPolicy(id: string): Promise<{ metadata: { uid: string; generation: number }; status?: PolicyStatus }> {
  const [namespace, name] = id.includes("/") ? id.split("/") : [undefined, id];
  const args = namespace ? ["get", "ptpn", "-n", namespace, name!] : ["get", "ptp", name!];
  return JSON.parse((await cluster.kubectl([...args, "-o", "json"])).stdout);
}

/** Node `node` now reports policy `id` (as getPolicy) at its current generation (or drops it: state undefined). */
async function report(node: string, id: string, state: "Enforcing" | "Failed" | undefined, failure?: { reason: NodePolicyState["reason"]; message: string }) {
  const policies = nodeStates.get(node)!;
  const { metadata } = await getPolicy(id).catch(() => ({ metadata: undefined }));
  const [namespace, name] = id.includes("/") ? id.split("/") : [undefined, id];
  for (const [uid, entry] of policies) if (entry.name === name && entry.namespace === namespace) policies.delete(uid);
  if (state && metadata) {
    policies.set(metadata.uid, {
      ...(namespace ? { kind: "TracingPolicyNamespaced", namespace } : { kind: "TracingPolicy" }),
      name: name!,
      uid: metadata.uid,
      generation: metadata.generation,
      state,
      reason: failure?.reason ?? "Applied",
      ...(failure ? { message: failure.message } : {}),
    });
  }
  const nodeState: NodeState = {
    node,
    heartbeatTime: new Date().toISOString(),
    backends: { "process.exec": node === "node-c" ? "kprobe" : "lsm", "file.open": "lsm", "net.connect": "tracepoint" },
    planDigest: `sha256:${policies.size}`,
    policies: [...policies.values()],
  };
  publishers.get(node)!.publish(nodeState);
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMillis = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMillis;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (last !== undefined) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const conditionsOf = (status: PolicyStatus | undefined) => Object.fromEntries((status?.conditions ?? []).map((c) => [c.type, c]));

/** Waits until the policy's status satisfies `check` (which throws or returns false until it does). */
async function statusWhere(name: string, check: (status: PolicyStatus, generation: number) => boolean): Promise<PolicyStatus> {
  return eventually(`the status of ${name}`, async () => {
    const { metadata, status } = await getPolicy(name);
    return status && check(status, metadata.generation) ? status : undefined;
  });
}

const isReady = (total: number) => (status: PolicyStatus, generation: number) =>
  status.observedGeneration === generation && conditionsOf(status).Ready?.status === "True" && status.nodes.total === total;

/** The policy with its status's times fixed, as a file snapshot for the Argo CD health check's tests. */
async function snapshot(name: string, status: PolicyStatus, file: string) {
  const { metadata } = await getPolicy(name);
  const stable = { ...status, conditions: status.conditions.map((c) => ({ ...c, lastTransitionTime: "2026-11-24T12:00:00Z" })) };
  const object = { apiVersion: "palisade.dev/v1alpha1", kind: "TracingPolicy", metadata: { name, generation: metadata.generation }, status: stable };
  await expect(`${JSON.stringify(object, null, 2)}\n`).toMatchFileSnapshot(join(SNAPSHOTS, file));
}

describe("policy status from node reports", () => {
  it("elects one aggregator through the Lease", async () => {
    const leader = await eventually("a leader", async () => [...aggregators].find(([, a]) => a.isLeader)?.[0]);
    const lease = JSON.parse((await cluster.kubectl(["get", "lease", "-n", NAMESPACE, "palisade-status-aggregator", "-o", "json"])).stdout);
    expect(lease.spec.holderIdentity).toBe(leader);
    expect([...aggregators.values()].filter((a) => a.isLeader)).toHaveLength(1);
  });

  it("a valid policy: Ready once every node enforces it, with counts, backends and printer columns", async () => {
    await cluster.kubectl(["apply", "-f", "-"], { input: policyYaml("valid-exec") });
    await report("node-a", "valid-exec", "Enforcing");
    const progressing = await statusWhere("valid-exec", (s) => conditionsOf(s).Reconciling?.status === "True" && s.nodes.enforcing === 1);
    expect(conditionsOf(progressing).Ready).toMatchObject({ status: "False", reason: "Pending", message: "2 of 3 nodes have not reported generation 1 yet." });
    await report("node-b", "valid-exec", "Enforcing");
    await report("node-c", "valid-exec", "Enforcing");
    const status = await statusWhere("valid-exec", isReady(3));
    expect(status.nodes).toEqual({ enforcing: 3, failed: 0, total: 3 });
    expect(status.backends).toEqual({ "process.exec": "lsm (2), kprobe (1)" });
    const conditions = conditionsOf(status);
    expect(conditions.Ready).toMatchObject({ observedGeneration: 1, reason: "Enforcing", message: "Enforced on all 3 nodes." });
    expect(conditions.Reconciling).toMatchObject({ status: "False", observedGeneration: 1, reason: "AllNodesReported" });
    expect(conditions.Degraded).toMatchObject({ status: "False", observedGeneration: 1, reason: "NoFailures" });
    const row = (await cluster.kubectl(["get", "tracingpolicies", "valid-exec", "--no-headers"])).stdout;
    expect(row).toMatch(/^valid-exec\s+enforce\s+True\s+3\s+\S+\s*$/);
    await snapshot("valid-exec", status, "healthy.json");
    // The nodes' own objects, through their printer columns.
    const nodes = (await cluster.kubectl(["get", "pnode"])).stdout.trim().split("\n");
    expect(nodes[0]).toMatch(/^NAME\s+ENFORCING\s+FAILED\s+BACKENDS\s+REPORTED\s+AGE$/);
    expect(nodes[1]).toMatch(/^node-a\s+1\s+0\s+process\.exec=lsm file\.open=lsm net\.connect=tracepoint\s+/);
  });

  it("a node's PalisadeNode and heartbeat Lease belong to its Node object, to go with it", async () => {
    const uid = JSON.parse((await cluster.kubectl(["get", "node", "node-a", "-o", "json"])).stdout).metadata.uid;
    const owners = async (args: string[]) => JSON.parse((await cluster.kubectl([...args, "-o", "json"])).stdout).metadata.ownerReferences;
    expect(await owners(["get", "pnode", "node-a"])).toEqual([{ apiVersion: "v1", kind: "Node", name: "node-a", uid }]);
    expect(await owners(["get", "lease", "-n", NAMESPACE, "node-node-a"])).toEqual([{ apiVersion: "v1", kind: "Node", name: "node-a", uid }]);
    expect(await owners(["get", "pnode", "node-b"])).toBeUndefined();
  });

  it("an invalid policy: Ready=False with the compile error, Degraded=True; the others stay Ready", async () => {
    await cluster.kubectl(["apply", "-f", "-"], { input: policyYaml("invalid-exec", 'proces.binary == "/bin/sh"') });
    for (const node of NODES) await report(node, "invalid-exec", "Failed", { reason: "CompileError", message: COMPILE_ERROR });
    const status = await statusWhere("invalid-exec", (s) => s.nodes.failed === 3);
    const conditions = conditionsOf(status);
    expect(conditions.Ready).toMatchObject({ status: "False", reason: "CompileError", message: `${COMPILE_ERROR} (3 of 3 nodes failed, e.g. node-a)` });
    expect(conditions.Degraded).toMatchObject({ status: "True", reason: "CompileError" });
    expect(conditions.Reconciling).toMatchObject({ status: "False" });
    expect((await cluster.kubectl(["get", "ptp", "invalid-exec", "--no-headers"])).stdout).toMatch(/^invalid-exec\s+enforce\s+False\s+0\s+/);
    expect(conditionsOf((await getPolicy("valid-exec")).status).Ready?.status).toBe("True");
    await snapshot("invalid-exec", status, "degraded-compile-error.json");
  });

  it("a publisher skips an unchanged state, and still writes the next change", async () => {
    const pnode = async () => JSON.parse((await cluster.kubectl(["get", "pnode", "node-a", "-o", "json"])).stdout);
    const before = await pnode();
    await report("node-a", "valid-exec", "Enforcing"); // the same state again
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect((await pnode()).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    await report("node-a", "invalid-exec", "Failed", { reason: "ApplyError", message: "map full" });
    await eventually("the change", async () => ((await pnode()).status.failed[0]?.reason === "ApplyError" ? true : undefined));
    await report("node-a", "invalid-exec", "Failed", { reason: "CompileError", message: COMPILE_ERROR });
    await eventually("the change back", async () => ((await pnode()).status.failed[0]?.reason === "CompileError" ? true : undefined));
  });

  it("a PalisadeNode deleted by hand is written again by its agent", async () => {
    await cluster.kubectl(["delete", "pnode", "node-b"]);
    const back = await eventually("node-b's PalisadeNode", async () => {
      const result = await cluster.kubectl(["get", "pnode", "node-b", "-o", "json"], { check: false });
      return result.code === 0 ? JSON.parse(result.stdout) : undefined;
    });
    expect(back.status.failedCount).toBe(1); // invalid-exec, as before
    await statusWhere("valid-exec", isReady(3));
  });

  it("a policy that fails on one node: Degraded=True with that node's reason", async () => {
    await cluster.kubectl(["apply", "-f", "-"], { input: policyYaml("partial-exec") });
    await report("node-a", "partial-exec", "Enforcing");
    await report("node-b", "partial-exec", "Enforcing");
    await report("node-c", "partial-exec", "Failed", { reason: "ApplyError", message: "BPF map palisade_exec_rules is full (max_entries 65536)" });
    const status = await statusWhere("partial-exec", (s) => s.nodes.enforcing + s.nodes.failed === 3);
    expect(status.nodes).toEqual({ enforcing: 2, failed: 1, total: 3 });
    expect(conditionsOf(status).Degraded).toMatchObject({ status: "True", reason: "ApplyError", message: expect.stringContaining("(1 of 3 nodes failed, e.g. node-c)") });
    expect(conditionsOf(status).Ready).toMatchObject({ status: "False", reason: "ApplyError" });
    await snapshot("partial-exec", status, "degraded-partial.json");
  });

  it("an edited policy: Reconciling at the new generation until every node reports it, then Ready", async () => {
    await cluster.kubectl(["apply", "-f", "-"], { input: policyYaml("valid-exec", 'process.binary in ["/bin/sh", "/bin/bash"]') });
    const { metadata } = await getPolicy("valid-exec");
    expect(metadata.generation).toBe(2);
    await report("node-a", "valid-exec", "Enforcing");
    const reconciling = await statusWhere("valid-exec", (s) => s.observedGeneration === 2 && s.nodes.enforcing === 1);
    const conditions = conditionsOf(reconciling);
    expect(conditions.Reconciling).toMatchObject({ status: "True", observedGeneration: 2, reason: "Pending", message: "2 of 3 nodes have not reported generation 2 yet." });
    expect(conditions.Ready).toMatchObject({ status: "False", observedGeneration: 2 });
    await snapshot("valid-exec", reconciling, "progressing.json");
    await report("node-b", "valid-exec", "Enforcing");
    await report("node-c", "valid-exec", "Enforcing");
    const ready = await statusWhere("valid-exec", isReady(3));
    expect(conditionsOf(ready).Ready!.lastTransitionTime >= conditionsOf(reconciling).Ready!.lastTransitionTime).toBe(true);
  });

  it("a deleted policy is forgotten; one recreated under the same name starts afresh", async () => {
    await cluster.kubectl(["delete", "ptp", "partial-exec"]);
    for (const node of NODES) await report(node, "partial-exec", undefined);
    await cluster.kubectl(["apply", "-f", "-"], { input: policyYaml("partial-exec") });
    const fresh = await statusWhere("partial-exec", (s) => s.observedGeneration === 1);
    expect(fresh.nodes).toEqual({ enforcing: 0, failed: 0, total: 3 });
    for (const node of NODES) await report(node, "partial-exec", "Enforcing");
    await statusWhere("partial-exec", isReady(3));
  });

  it("a node whose heartbeat stops no longer counts", async () => {
    await publishers.get("node-c")!.close();
    publishers.delete("node-c");
    // After three missed heartbeats (1 s each) node-c is gone: two nodes, all Ready.
    const status = await statusWhere("valid-exec", isReady(2));
    expect(status.nodes).toEqual({ enforcing: 2, failed: 0, total: 2 });
    expect(status.backends).toEqual({ "process.exec": "lsm" });
    await statusWhere("invalid-exec", (s) => s.nodes.total === 2 && s.nodes.failed === 2);
  });

  it("fails over: when the leader stops, the other candidate takes the Lease and keeps status current", async () => {
    const [leaderName, leader] = [...aggregators].find(([, a]) => a.isLeader)!;
    await leader.stop();
    aggregators.delete(leaderName);
    const [nextName, next] = [...aggregators][0]!;
    await eventually("the other candidate to lead", async () => (next.isLeader ? true : undefined));
    const lease = JSON.parse((await cluster.kubectl(["get", "lease", "-n", NAMESPACE, "palisade-status-aggregator", "-o", "json"])).stdout);
    expect(lease.spec.holderIdentity).toBe(nextName);
    // The new leader aggregates: an edit goes through Reconciling to Ready again.
    await cluster.kubectl(["apply", "-f", "-"], { input: policyYaml("valid-exec", 'process.binary == "/bin/zsh"') });
    await statusWhere("valid-exec", (s) => s.observedGeneration === 3 && conditionsOf(s).Reconciling?.status === "True");
    await report("node-a", "valid-exec", "Enforcing");
    await report("node-b", "valid-exec", "Enforcing");
    await statusWhere("valid-exec", isReady(2));
  });

  it("palisade status shows each policy's conditions and node counts, and each node; exit 1 while one is not Ready", async () => {
    // Asynchronously: the simulated nodes in this process must keep renewing their heartbeats.
    const palisade = (...args: string[]) =>
      promisify(execFile)(join(ROOT, "bin", "palisade"), ["status", "--kubeconfig", cluster.kubeconfig, "--namespace", NAMESPACE, ...args], { encoding: "utf8" }).then(
        ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
        (err: { code: number; stdout: string; stderr: string }) => err,
      );
    const run = await palisade();
    expect(run.stderr).toBe("");
    expect(run.code).toBe(1); // invalid-exec
    const lines = run.stdout.split("\n");
    expect(lines[0]).toBe("2 of 3 policies Ready; 2 of 3 nodes live.");
    expect(run.stdout).toMatch(/^POLICY\s+READY\s+RECONCILING\s+DEGRADED\s+NODES\s+GENERATION\s+REASON$/m);
    expect(run.stdout).toMatch(/^invalid-exec\s+False\s+False\s+True\s+0\/2 \(2 failed\)\s+1\/1\s+CompileError$/m);
    expect(run.stdout).toMatch(/^valid-exec\s+True\s+False\s+False\s+2\/2\s+3\/3\s+Enforcing$/m);
    expect(run.stdout).toContain(`invalid-exec: ${COMPILE_ERROR} (2 of 2 nodes failed, e.g. node-a)`);
    expect(run.stdout).toMatch(/^node-c\s+no\s+2\s+1\s+/m); // its last report: invalid-exec failed
    const json = JSON.parse((await palisade("-o", "json")).stdout);
    expect(json.nodes.map((n: { node: string; live: boolean }) => [n.node, n.live])).toEqual([["node-a", true], ["node-b", true], ["node-c", false]]);
  });

  it("a TracingPolicyNamespaced gets its status in its namespace, like a cluster policy", async () => {
    await cluster.kubectl(["create", "namespace", "team-a"]);
    const namespaced = { ...JSON.parse(policyYaml("team-shells")), kind: "TracingPolicyNamespaced" };
    await cluster.kubectl(["apply", "-n", "team-a", "-f", "-"], { input: JSON.stringify(namespaced) });
    await report("node-a", "team-a/team-shells", "Enforcing");
    await report("node-b", "team-a/team-shells", "Enforcing");
    const status = await statusWhere("team-a/team-shells", isReady(2));
    expect(status.nodes).toEqual({ enforcing: 2, failed: 0, total: 2 });
    expect((await cluster.kubectl(["get", "ptpn", "-n", "team-a", "--no-headers"])).stdout).toMatch(/^team-shells\s+enforce\s+True\s+2\s+/);
    // The cluster policies were not disturbed by a namespaced one joining.
    expect(conditionsOf((await getPolicy("valid-exec")).status).Ready?.status).toBe("True");
  });

  it("recovers from an API server crash: publishers retry, an aggregator leads again, statuses catch up", async () => {
    await cluster.restartApiServer({ signal: "SIGKILL" });
    await cluster.kubectl(["apply", "-f", "-"], { input: policyYaml("valid-exec", 'process.binary == "/bin/ksh"') });
    expect((await getPolicy("valid-exec")).metadata.generation).toBe(4);
    await report("node-a", "valid-exec", "Enforcing");
    await report("node-b", "valid-exec", "Enforcing");
    await statusWhere("valid-exec", isReady(2));
    await eventually("the remaining candidate to lead", async () => ([...aggregators.values()].some((a) => a.isLeader) ? true : undefined));
  });
});
