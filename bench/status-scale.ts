// The status plane at scale, against a real API server (test/e2e/kube/cluster.ts): N
// simulated node agents (each a real NodeStatePublisher writing its own PalisadeNode and
// heartbeat Lease over HTTPS) and the Lease-elected aggregator, with P TracingPolicies.
//
// The simulated nodes learn of policy changes from one shared informer in this process and
// report after a random 0-50 ms (a real agent compiles and applies in between; that part is
// measured by bench/kube-apply.ts). What is measured here is the status plane:
//   - aggregation latency: a policy edit's write returns -> every node has published the new
//     generation -> the policy's status says Ready at that generation (seen through a watch);
//   - API requests per second by verb and resource, from the apiserver's own
//     apiserver_request_total, in steady state and while policies change;
//   - the aggregation's CPU and memory at 5,000 nodes x 1,000 policies, in memory, for the
//     extrapolation (docs/status.md).
// Standalone: `node bench/status-scale.ts [nodes] [policies]`; also run by scripts/bench.

import { KubeConfig } from "@kubernetes/client-node";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { KubeClient } from "../src/controller/client.ts";
import { Informer, type KubeObject } from "../src/controller/informer.ts";
import type { NodeState } from "../src/controller/node-state.ts";
import { StatusAggregation } from "../src/controller/status/aggregation.ts";
import { NodeStatePublisher, startStatusAggregator, type PolicyStatus } from "../src/controller/status/index.ts";
import { readNodeReport, toPalisadeNode } from "../src/controller/status/node-object.ts";
import { startCluster, type Cluster } from "../test/e2e/kube/cluster.ts";

const ROOT = join(import.meta.dirname, "..");
const NAMESPACE = "palisade-system";
const POLICIES_PATH = "/apis/palisade.dev/v1alpha1/tracingpolicies";

interface BenchPolicy extends KubeObject {
  spec: { rules: { name: string; hook: string; match: string; action: string }[] };
  status?: PolicyStatus;
}

const policyBody = (i: number, binary = `/opt/bench/tool${i}`) => ({
  apiVersion: "palisade.dev/v1alpha1",
  kind: "TracingPolicy",
  metadata: { name: `p${String(i).padStart(4, "0")}` },
  spec: { rules: [{ name: "r", hook: "process.exec", match: `process.binary == "${binary}"`, action: "kill" }] },
});

const percentile = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** apiserver_request_total summed by "VERB resource[/subresource]", from the apiserver's /metrics. */
async function requestCounts(cluster: Cluster): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const line of (await cluster.kubectl(["get", "--raw", "/metrics"])).stdout.split("\n")) {
    if (!line.startsWith("apiserver_request_total{")) continue;
    const label = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(line)?.[1] ?? "";
    const resource = label("resource");
    if (!["palisadenodes", "leases", "tracingpolicies"].includes(resource)) continue;
    const key = `${label("verb")} ${resource}${label("subresource") ? `/${label("subresource")}` : ""}`;
    counts.set(key, (counts.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  return counts;
}

function rates(before: Map<string, number>, after: Map<string, number>, seconds: number): Map<string, number> {
  const result = new Map<string, number>();
  for (const [key, value] of after) {
    const delta = value - (before.get(key) ?? 0);
    if (delta > 0) result.set(key, delta / seconds);
  }
  return result;
}

class SimulatedNode {
  readonly name: string;
  readonly publisher: NodeStatePublisher;
  private readonly policies = new Map<string, { name: string; generation: number }>();
  private publishTimer: NodeJS.Timeout | undefined;
  /** When this node last published, for the "all nodes reported" time. */
  publishedAt = 0;

  constructor(name: string, kubeConfig: KubeConfig, client: KubeClient) {
    this.name = name;
    this.publisher = new NodeStatePublisher({ kubeConfig, node: name, log: (line) => console.error(line), namespace: NAMESPACE, client });
  }

  /** A policy changed: report it after a little while, as an agent would after applying it. */
  learn(policy: BenchPolicy, deleted = false) {
    if (deleted) this.policies.delete(policy.metadata.uid);
    else this.policies.set(policy.metadata.uid, { name: policy.metadata.name, generation: policy.metadata.generation ?? 1 });
    this.publishTimer ??= setTimeout(() => this.publish(), Math.random() * 50);
  }

  private publish() {
    this.publishTimer = undefined;
    const state: NodeState = {
      node: this.name,
      heartbeatTime: new Date().toISOString(),
      backends: { "process.exec": "lsm", "file.open": "lsm", "net.connect": "tracepoint" },
      policies: [...this.policies].map(([uid, p]) => ({ kind: "TracingPolicy", name: p.name, uid, generation: p.generation, state: "Enforcing", reason: "Applied" })),
    };
    this.publisher.publish(state);
    this.publishedAt = performance.now();
  }
}

export async function benchStatusScale(nodeCount = 200, policyCount = 1000, options: { steadySeconds?: number; edits?: number; bulk?: number } = {}): Promise<string> {
  const steadySeconds = options.steadySeconds ?? 40;
  const edits = options.edits ?? 30;
  const bulk = options.bulk ?? 100;
  const log = (line: string) => console.error(`status-scale: ${line}`);
  const cluster = await startCluster({ apiServerArgs: ["--max-requests-inflight=800", "--max-mutating-requests-inflight=400"] });
  const stops: (() => Promise<unknown>)[] = [];
  try {
    await cluster.kubectl(["apply", "-f", join(ROOT, "api", "crds")]);
    await cluster.kubectl(["wait", "--for=condition=Established", "--timeout=30s", "crd/tracingpolicies.palisade.dev", "crd/palisadenodes.palisade.dev"]);
    await cluster.kubectl(["create", "namespace", NAMESPACE]);
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(cluster.kubeconfig);
    const writer = new KubeClient(kubeConfig, "palisade-bench");
    stops.push(async () => writer.close());
    log(`creating ${policyCount} policies`);
    for (let i = 0; i < policyCount; i += 20) {
      await Promise.all(Array.from({ length: Math.min(20, policyCount - i) }, (_, j) => writer.create(POLICIES_PATH, policyBody(i + j))));
    }

    // The nodes, one shared publisher connection pool (hundreds of TLS handshakes would only measure TLS).
    const nodes = Array.from({ length: nodeCount }, (_, i) => new SimulatedNode(`node-${String(i).padStart(4, "0")}`, kubeConfig, writer));
    stops.push(() => Promise.all(nodes.map((n) => n.publisher.close())));
    const ready = new Map<string, (status: PolicyStatus) => void>();
    const policies = new Map<string, BenchPolicy>();
    const informer = new Informer<BenchPolicy>(new KubeClient(kubeConfig), {
      path: POLICIES_PATH,
      log,
      onChange: (type, policy) => {
        const previous = policies.get(policy.metadata.name);
        policies.set(policy.metadata.name, policy);
        if (type === "deleted" || previous?.metadata.generation !== policy.metadata.generation) for (const node of nodes) node.learn(policy, type === "deleted");
        const waiter = ready.get(policy.metadata.name);
        const status = policy.status;
        if (waiter && status && status.observedGeneration === policy.metadata.generation && status.conditions.some((c) => c.type === "Ready" && c.status === "True")) waiter(status);
      },
    });
    informer.start();
    stops.push(() => informer.stop());
    await informer.synced;

    const setupStart = performance.now();
    const aggregator = startStatusAggregator({ kubeConfig, identity: "bench-aggregator", namespace: NAMESPACE, log });
    stops.push(() => aggregator.stop());
    const allReady = () =>
      [...policies.values()].every(({ metadata, status }) => !!status && status.observedGeneration === metadata.generation && status.nodes.total === nodeCount && status.conditions.some((c) => c.type === "Ready" && c.status === "True"));
    while (!allReady()) await sleep(500);
    const initialSeconds = (performance.now() - setupStart) / 1000;
    log(`all ${policyCount} policies Ready on ${nodeCount} nodes after ${initialSeconds.toFixed(1)} s`);

    // Steady state: nothing changes; only heartbeats and the leader's renewals.
    await sleep(5000);
    let before = await requestCounts(cluster);
    let t0 = performance.now();
    await sleep(steadySeconds * 1000);
    const steady = rates(before, await requestCounts(cluster), (performance.now() - t0) / 1000);

    // One edit at a time: latency to Ready at the new generation.
    const edit = async (i: number, trial: number): Promise<{ readyMs: number; reportedMs: number }> => {
      const name = policyBody(i).metadata.name;
      const became = new Promise<PolicyStatus>((resolve) => ready.set(name, resolve));
      const current = await writer.get<ReturnType<typeof policyBody> & { metadata: { resourceVersion: string } }>(`${POLICIES_PATH}/${name}`);
      current.spec = policyBody(i, `/opt/bench/tool${i}-v${trial}`).spec;
      await writer.replace(`${POLICIES_PATH}/${name}`, current);
      const written = performance.now();
      await became;
      const readyAt = performance.now();
      ready.delete(name);
      return { readyMs: readyAt - written, reportedMs: Math.max(...nodes.map((n) => n.publishedAt)) - written };
    };
    before = await requestCounts(cluster);
    t0 = performance.now();
    const single: { readyMs: number; reportedMs: number }[] = [];
    for (let trial = 0; trial < edits; trial++) single.push(await edit(Math.floor(Math.random() * policyCount), trial + 1));
    const editSeconds = (performance.now() - t0) / 1000;
    const during = rates(before, await requestCounts(cluster), editSeconds);

    // Many edits at once: every node reports them together.
    const bulkStart = performance.now();
    const bulkLatencies = await Promise.all(Array.from({ length: Math.min(bulk, policyCount) }, (_, i) => edit(i, edits + 1)));
    const bulkSeconds = (performance.now() - bulkStart) / 1000;

    const singleReady = single.map((s) => s.readyMs);
    const singleReported = single.map((s) => s.reportedMs);
    const bulkReady = bulkLatencies.map((s) => s.readyMs);
    const objectBytes = JSON.stringify(toPalisadeNode(nodeStateOf("node-0000", policyCount))).length;
    const model = benchAggregationModel(5000, policyCount);

    const table = (title: string, byKey: Map<string, number>) =>
      [`| ${title} | requests/s |`, "|---|---:|", ...[...byKey].sort().map(([key, rate]) => `| ${key} | ${rate.toFixed(2)} |`), `| **total** | **${[...byKey.values()].reduce((a, b) => a + b, 0).toFixed(2)}** |`].join("\n");
    return [
      `${nodeCount} simulated nodes (NodeStatePublishers), ${policyCount} TracingPolicies, one aggregator, kube-apiserver ${cluster.binaries.kubeVersion} on the same 2-core machine.`,
      `A PalisadeNode with ${policyCount} policies is ${(objectBytes / 1024).toFixed(1)} KiB of JSON. Initial aggregation (aggregator start to all ${policyCount} policies Ready on ${nodeCount} nodes): ${initialSeconds.toFixed(1)} s.`,
      "",
      "| change | trials | ready p50 (ms) | ready p99 (ms) | last node published p50 (ms) |",
      "|---|---:|---:|---:|---:|",
      `| one policy edited | ${single.length} | ${percentile(singleReady, 50).toFixed(0)} | ${percentile(singleReady, 99).toFixed(0)} | ${percentile(singleReported, 50).toFixed(0)} |`,
      `| ${bulkLatencies.length} policies edited at once | ${bulkLatencies.length} | ${percentile(bulkReady, 50).toFixed(0)} | ${percentile(bulkReady, 99).toFixed(0)} | all Ready after ${bulkSeconds.toFixed(1)} s |`,
      "",
      table(`steady state (${steadySeconds} s, no changes)`, steady),
      "",
      table(`during ${edits} single edits (${editSeconds.toFixed(1)} s)`, during),
      "",
      `Aggregation in memory at 5,000 nodes x ${policyCount} policies (StatusAggregation, one core): ingesting every node's report ${model.ingestMs.toFixed(0)} ms ` +
        `(${model.heapMiB.toFixed(0)} MiB heap); one policy edit reported by all 5,000 nodes (5,000 reports parsed and folded, the policy's status computed) ${model.editMs.toFixed(0)} ms; ` +
        `parsing one PalisadeNode (any number of policies) ${model.parseMs.toFixed(3)} ms.`,
    ].join("\n");
  } finally {
    for (const stop of stops.reverse()) await stop().catch((err: Error) => log(`stopping: ${err.message}`));
    await cluster.stop();
  }
}

function nodeStateOf(node: string, policyCount: number, generationOf: (i: number) => number = () => 1): NodeState {
  return {
    node,
    heartbeatTime: new Date().toISOString(),
    backends: { "process.exec": "lsm", "file.open": "lsm", "net.connect": "tracepoint" },
    policies: Array.from({ length: policyCount }, (_, i) => ({
      kind: "TracingPolicy" as const,
      name: `p${i}`,
      uid: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
      generation: generationOf(i),
      state: "Enforcing" as const,
      reason: "Applied" as const,
    })),
  };
}

/** The aggregator's own work at a scale this machine's apiserver cannot host: 5,000 nodes, in memory. */
function benchAggregationModel(nodeCount: number, policyCount: number): { ingestMs: number; editMs: number; parseMs: number; heapMiB: number } {
  const aggregation = new StatusAggregation();
  for (let i = 0; i < policyCount; i++) aggregation.upsertPolicy({ kind: "TracingPolicy", name: `p${i}`, uid: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`, generation: 1, hooks: ["process.exec"] });
  // The same JSON a watch delivers, parsed per node as the informer would; the edit is of policy 7.
  const before = JSON.stringify(toPalisadeNode(nodeStateOf("n", policyCount)));
  const after = JSON.stringify(toPalisadeNode(nodeStateOf("n", policyCount, (i) => (i === 7 ? 2 : 1))));
  globalThis.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let t = performance.now();
  for (let n = 0; n < nodeCount; n++) {
    aggregation.setHeartbeat(`node-${n}`, Date.now() + 3_600_000);
    aggregation.setReport(`node-${n}`, readNodeReport({ ...JSON.parse(before), metadata: { name: `node-${n}` } }));
  }
  for (const uid of aggregation.takeDirty()) aggregation.statusOf(uid, undefined);
  const ingestMs = performance.now() - t;
  const heapMiB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  const edited = "00000000-0000-4000-8000-000000000007";
  aggregation.upsertPolicy({ kind: "TracingPolicy", name: "p7", uid: edited, generation: 2, hooks: ["process.exec"] });
  t = performance.now();
  for (let n = 0; n < nodeCount; n++) aggregation.setReport(`node-${n}`, readNodeReport({ ...JSON.parse(after), metadata: { name: `node-${n}` } }));
  for (const uid of aggregation.takeDirty()) aggregation.statusOf(uid, undefined);
  const editMs = performance.now() - t;
  t = performance.now();
  for (let k = 0; k < 100; k++) readNodeReport(JSON.parse(before));
  const parseMs = (performance.now() - t) / 100;
  return { ingestMs, editMs, parseMs, heapMiB };
}

if (import.meta.main) {
  const [nodes, policies] = process.argv.slice(2).map(Number);
  console.log(await benchStatusScale(nodes || undefined, policies || undefined));
}
