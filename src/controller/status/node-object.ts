// The PalisadeNode object: one per node, holding that node's NodeState in a compact form.
// With 1,000 policies a node's object stays near 50 KB: policies it enforces are listed as
// "uid@generation" strings in an atomic list (server-side apply then tracks the list as one
// field, not 1,000), and only failures carry kind, name, reason and message.

import type { Hook, PolicyKind } from "../../policy/model.ts";
import type { NodePolicyReason, NodePolicyState, NodeState } from "../node-state.ts";
import type { KubeObject } from "../informer.ts";
import type { ObjectBody } from "./kube.ts";

export const GROUP = "palisade.dev";
export const VERSION = "v1alpha1";
export const NODES_PATH = `/apis/${GROUP}/${VERSION}/palisadenodes`;

/** Longest failure message kept per policy: the diagnostic's first lines are what matter. */
const MESSAGE_LIMIT = 2048;

export interface PolicyFailure {
  kind: PolicyKind;
  namespace?: string;
  name: string;
  uid: string;
  generation: number;
  reason: Exclude<NodePolicyReason, "Applied">;
  message: string;
}

export interface PalisadeNodeStatus {
  reportTime: string;
  planDigest?: string;
  backends: Partial<Record<Hook, string>>;
  /** For the printer column: "process.exec=lsm file.open=lsm net.connect=tracepoint". */
  backendSummary: string;
  enforcingCount: number;
  failedCount: number;
  /** "uid@generation" for each policy the node enforces. */
  enforcing: string[];
  failed: PolicyFailure[];
}

/** As the informer reads it. */
export interface PalisadeNode extends KubeObject {
  status?: PalisadeNodeStatus;
}

/** As the agent writes it. */
export interface PalisadeNodeBody extends ObjectBody {
  status: PalisadeNodeStatus;
}

/** A node's report as the aggregator reads it: per policy uid, the generation and the outcome. */
export interface NodeReport {
  node: string;
  backends: Partial<Record<Hook, string>>;
  policies: Map<string, { generation: number; failure?: PolicyFailure }>;
}

/** Hooks the kernel cannot enforce on that node get the backend "none". */
export const NO_BACKEND = "none";

export function toPalisadeNode(state: NodeState): PalisadeNodeBody {
  const backends: Partial<Record<Hook, string>> = {};
  for (const [hook, backend] of Object.entries(state.backends) as [Hook, string | null][]) backends[hook] = backend ?? NO_BACKEND;
  const enforcing: string[] = [];
  const failed: PolicyFailure[] = [];
  for (const policy of state.policies) {
    if (policy.state === "Enforcing") enforcing.push(`${policy.uid}@${policy.generation}`);
    else failed.push(failureOf(policy));
  }
  enforcing.sort();
  failed.sort((a, b) => (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0));
  const status: PalisadeNodeStatus = {
    reportTime: state.heartbeatTime,
    backends,
    backendSummary: Object.entries(backends)
      .map(([hook, backend]) => `${hook}=${backend}`)
      .join(" "),
    enforcingCount: enforcing.length,
    failedCount: failed.length,
    enforcing,
    failed,
  };
  if (state.planDigest) status.planDigest = state.planDigest;
  return { apiVersion: `${GROUP}/${VERSION}`, kind: "PalisadeNode", metadata: { name: state.node }, status };
}

function failureOf(policy: NodePolicyState): PolicyFailure {
  const failure: PolicyFailure = {
    kind: policy.kind,
    name: policy.name,
    uid: policy.uid,
    generation: policy.generation,
    // A Failed policy reported as Applied would be a reconciler bug; name it as an apply error.
    reason: policy.reason === "Applied" ? "ApplyError" : policy.reason,
    message: truncate(policy.message ?? "", MESSAGE_LIMIT),
  };
  if (policy.namespace) failure.namespace = policy.namespace;
  return failure;
}

function truncate(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

/** Reads a PalisadeNode back; entries it cannot parse are skipped (a newer agent's format). */
export function readNodeReport(object: Pick<PalisadeNode, "metadata" | "status"> | PalisadeNodeBody): NodeReport {
  const policies: NodeReport["policies"] = new Map();
  const status = object.status;
  for (const entry of status?.enforcing ?? []) {
    const at = entry.lastIndexOf("@");
    const generation = Number(entry.slice(at + 1));
    if (at > 0 && Number.isInteger(generation)) policies.set(entry.slice(0, at), { generation });
  }
  for (const failure of status?.failed ?? []) policies.set(failure.uid, { generation: failure.generation, failure });
  return { node: object.metadata.name, backends: status?.backends ?? {}, policies };
}
