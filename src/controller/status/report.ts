// `palisade status`: the cluster's view of its policies and nodes, read from the API server
// (each policy's /status as the aggregator wrote it; each PalisadeNode and heartbeat Lease).
// Exit 0 when every policy is Ready at its current generation, 1 when one is not.

import { KubeClient, loadKubeConfig } from "../client.ts";
import type { KubeObject } from "../informer.ts";
import type { PolicyStatus } from "./aggregation.ts";
import { HEARTBEAT_LABEL, leasesPath, readHeartbeat, statusNamespace, type Lease } from "./leases.ts";
import { GROUP, NODES_PATH, VERSION, type PalisadeNode } from "./node-object.ts";

interface PolicyView {
  kind: string;
  namespace?: string;
  name: string;
  generation: number;
  status?: PolicyStatus;
}

interface NodeView {
  node: string;
  live: boolean;
  enforcing?: number;
  failed?: number;
  backends?: string;
  reported?: string;
}

export interface ClusterStatus {
  policies: PolicyView[];
  nodes: NodeView[];
}

export async function readClusterStatus(options: { kubeconfig?: string; namespace?: string }): Promise<ClusterStatus> {
  const client = new KubeClient(loadKubeConfig(options.kubeconfig));
  const list = async <T>(path: string, query = {}) => (await client.get<{ items: T[] }>(path, query)).items;
  const policies: PolicyView[] = [];
  for (const [kind, plural] of [
    ["TracingPolicy", "tracingpolicies"],
    ["TracingPolicyNamespaced", "tracingpoliciesnamespaced"],
  ] as const) {
    for (const o of await list<KubeObject & { status?: PolicyStatus }>(`/apis/${GROUP}/${VERSION}/${plural}`)) {
      policies.push({ kind, namespace: o.metadata.namespace, name: o.metadata.name, generation: o.metadata.generation ?? 1, status: o.status });
    }
  }
  const now = Date.now();
  const nodes = new Map<string, NodeView>();
  for (const lease of await list<Lease>(leasesPath(options.namespace ?? statusNamespace()), { labelSelector: HEARTBEAT_LABEL })) {
    const heartbeat = readHeartbeat(lease);
    if (heartbeat) nodes.set(heartbeat.node, { node: heartbeat.node, live: heartbeat.aliveUntil > now });
  }
  for (const o of await list<PalisadeNode>(NODES_PATH)) {
    const view = nodes.get(o.metadata.name) ?? { node: o.metadata.name, live: false };
    nodes.set(o.metadata.name, { ...view, enforcing: o.status?.enforcingCount, failed: o.status?.failedCount, backends: o.status?.backendSummary, reported: o.status?.reportTime });
  }
  return { policies, nodes: [...nodes.values()].sort((a, b) => (a.node < b.node ? -1 : 1)) };
}

const condition = (policy: PolicyView, type: string) => policy.status?.conditions?.find((c) => c.type === type);

/** Ready at the generation the user last wrote. */
export function isReady(policy: PolicyView): boolean {
  return policy.status?.observedGeneration === policy.generation && condition(policy, "Ready")?.status === "True";
}

export function formatClusterStatus({ policies, nodes }: ClusterStatus): string {
  const rows: string[][] = [["POLICY", "READY", "RECONCILING", "DEGRADED", "NODES", "GENERATION", "REASON"]];
  const notes: string[] = [];
  for (const p of policies) {
    const name = `${p.kind === "TracingPolicyNamespaced" ? `${p.namespace}/` : ""}${p.name}`;
    const stale = p.status && p.status.observedGeneration !== p.generation;
    const nodeCounts = p.status?.nodes ? `${p.status.nodes.enforcing}/${p.status.nodes.total}${p.status.nodes.failed ? ` (${p.status.nodes.failed} failed)` : ""}` : "-";
    const ready = condition(p, "Ready");
    rows.push([
      name,
      ready?.status ?? "Unknown",
      condition(p, "Reconciling")?.status ?? "Unknown",
      condition(p, "Degraded")?.status ?? "Unknown",
      nodeCounts,
      `${p.status?.observedGeneration ?? "-"}/${p.generation}`,
      !p.status ? "NoStatus" : stale ? "StatusBehind" : (ready?.reason ?? ""),
    ]);
    if (!p.status) notes.push(`${name}: no status yet: is a Palisade agent running (palisade run --kubernetes)?`);
    else if (!isReady(p) && ready) notes.push(`${name}: ${ready.message}`);
  }
  const nodeRows: string[][] = [["NODE", "LIVE", "ENFORCING", "FAILED", "BACKENDS", "REPORTED"]];
  for (const n of nodes) nodeRows.push([n.node, n.live ? "yes" : "no", String(n.enforcing ?? "-"), String(n.failed ?? "-"), n.backends ?? "-", n.reported ?? "-"]);
  const ready = policies.filter(isReady).length;
  const live = nodes.filter((n) => n.live).length;
  return [
    `${ready} of ${policies.length} policies Ready; ${live} of ${nodes.length} nodes live.`,
    "",
    table(rows),
    ...(notes.length ? ["", ...notes] : []),
    "",
    table(nodeRows),
  ].join("\n");
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]! + 2))).join("").trimEnd()).join("\n");
}
