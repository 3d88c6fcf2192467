// The PalisadeNode object: one per node, holding that node's NodeState in a form whose size
// does not grow with the number of policies. Per policy kind it carries a digest of the set
// of (uid, generation) the node has reconciled: the aggregator, which sees the same policy
// objects through the same ordered watch, knows which of its own versions of the set that
// digest names, and so which generation of every policy the node has. A policy edit then
// costs each node a ~1 KB write and the aggregator O(1) work per node, not a 1,000-entry
// list per node (see docs/status.md, "Scale"). Only failures are listed one by one.

import { createHash } from "node:crypto";
import { POLICY_KINDS, type Hook, type PolicyKind } from "../../policy/model.ts";
import type { NodePolicyReason, NodePolicyState, NodeState } from "../node-state.ts";
import type { KubeObject } from "../informer.ts";
import type { ObjectBody } from "../client.ts";

export const GROUP = "palisade.dev";
export const VERSION = "v1alpha1";
export const NODES_PATH = `/apis/${GROUP}/${VERSION}/palisadenodes`;

/** Longest failure message kept per policy: the diagnostic's first lines are what matter. */
const MESSAGE_LIMIT = 2048;
/** All failure messages together stay under this, so that a node failing every one of
 *  thousands of policies still fits in etcd's 1.5 MiB: each message gets its share. */
const MESSAGES_BUDGET = 256 * 1024;
const MESSAGE_FLOOR = 160;

export interface PolicyFailure {
  kind: PolicyKind;
  namespace?: string;
  name: string;
  uid: string;
  generation: number;
  reason: Exclude<NodePolicyReason, "Applied">;
  message: string;
}

/** The set of policies of one kind that a node has reconciled (enforcing or failed). */
export interface PolicySetSummary {
  count: number;
  /** setDigest() of its (uid, generation) pairs. */
  digest: string;
}

export interface PalisadeNodeStatus {
  reportTime: string;
  planDigest?: string;
  backends: Partial<Record<Hook, string>>;
  /** For the printer column: "process.exec=lsm file.open=lsm net.connect=tracepoint". */
  backendSummary: string;
  enforcingCount: number;
  failedCount: number;
  policySets: Record<PolicyKind, PolicySetSummary>;
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

/** A node's report as the aggregator reads it. */
export interface NodeReport {
  node: string;
  backends: Partial<Record<Hook, string>>;
  /** Per kind, the digest of the set the node reconciled. */
  sets: Partial<Record<PolicyKind, string>>;
  /** By policy uid. */
  failures: Map<string, PolicyFailure>;
}

/**
 * An order-independent digest of a set of (uid, generation) pairs, updatable one pair at a
 * time: the XOR of each pair's SHA-256 (first 128 bits). Adding and removing are the same
 * operation, so the aggregator keeps it current in O(1) per policy change.
 */
export class SetDigest {
  private readonly bytes = Buffer.alloc(16);

  toggle(uid: string, generation: number): void {
    const h = pairHash(uid, generation);
    for (let i = 0; i < 16; i++) this.bytes[i]! ^= h[i]!;
  }

  get value(): string {
    return this.bytes.toString("hex");
  }
}

// A node hashes every pair on every report; the pairs rarely change, so remember them.
const pairHashes = new Map<string, Buffer>();
function pairHash(uid: string, generation: number): Buffer {
  const key = `${uid}@${generation}`;
  let h = pairHashes.get(key);
  if (!h) {
    if (pairHashes.size >= 100_000) pairHashes.clear();
    h = createHash("sha256").update(key).digest().subarray(0, 16);
    pairHashes.set(key, h);
  }
  return h;
}

/** Hooks the kernel cannot enforce on that node get the backend "none". */
export const NO_BACKEND = "none";

export function toPalisadeNode(state: NodeState): PalisadeNodeBody {
  const backends: Partial<Record<Hook, string>> = {};
  for (const [hook, backend] of Object.entries(state.backends) as [Hook, string | null][]) backends[hook] = backend ?? NO_BACKEND;
  const digests = new Map(POLICY_KINDS.map((kind) => [kind, { count: 0, digest: new SetDigest() }]));
  const failures = state.policies.filter((p) => p.state === "Failed");
  const messageLimit = Math.max(MESSAGE_FLOOR, Math.min(MESSAGE_LIMIT, Math.floor(MESSAGES_BUDGET / Math.max(1, failures.length))));
  const failed = failures.map((policy) => failureOf(policy, messageLimit));
  for (const policy of state.policies) {
    const set = digests.get(policy.kind)!;
    set.count++;
    set.digest.toggle(policy.uid, policy.generation);
  }
  failed.sort((a, b) => (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0));
  const status: PalisadeNodeStatus = {
    reportTime: state.heartbeatTime,
    backends,
    backendSummary: Object.entries(backends)
      .map(([hook, backend]) => `${hook}=${backend}`)
      .join(" "),
    enforcingCount: state.policies.length - failed.length,
    failedCount: failed.length,
    policySets: Object.fromEntries([...digests].map(([kind, set]) => [kind, { count: set.count, digest: set.digest.value }])) as Record<PolicyKind, PolicySetSummary>,
    failed,
  };
  if (state.planDigest) status.planDigest = state.planDigest;
  return { apiVersion: `${GROUP}/${VERSION}`, kind: "PalisadeNode", metadata: { name: state.node }, status };
}

function failureOf(policy: NodePolicyState, messageLimit: number): PolicyFailure {
  const failure: PolicyFailure = {
    kind: policy.kind,
    name: policy.name,
    uid: policy.uid,
    generation: policy.generation,
    // A Failed policy reported as Applied would be a reconciler bug; name it as an apply error.
    reason: policy.reason === "Applied" ? "ApplyError" : policy.reason,
    message: truncate(policy.message ?? "", messageLimit),
  };
  if (policy.namespace) failure.namespace = policy.namespace;
  return failure;
}

function truncate(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

/** Reads a PalisadeNode back (fields it does not know, from a newer agent, are ignored). */
export function readNodeReport(object: Pick<PalisadeNode, "metadata" | "status"> | PalisadeNodeBody): NodeReport {
  const status = object.status;
  const sets: NodeReport["sets"] = {};
  for (const kind of POLICY_KINDS) {
    const digest = status?.policySets?.[kind]?.digest;
    if (digest) sets[kind] = digest;
  }
  const failures = new Map((status?.failed ?? []).map((f) => [f.uid, f]));
  return { node: object.metadata.name, backends: status?.backends ?? {}, sets, failures };
}
