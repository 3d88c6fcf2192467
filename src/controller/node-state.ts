// What one node's agent reports about the policies it reconciled: the agent writes it to its
// own PalisadeNode object (one object per node, so 5,000 nodes never contend on one write),
// and the elected status aggregator folds every node's report into each policy's status.

import type { Hook, PolicyKind } from "../policy/model.ts";

/** Why a policy is in its state on this node; the aggregator turns these into condition reasons. */
export type NodePolicyReason = "Applied" | "CompileError" | "ApplyError" | "NotEnforceable";

export interface NodePolicyState {
  kind: PolicyKind;
  /** TracingPolicyNamespaced only. */
  namespace?: string;
  name: string;
  uid: string;
  /** The metadata.generation this node reconciled. */
  generation: number;
  state: "Enforcing" | "Failed";
  reason: NodePolicyReason;
  /** For Failed: the diagnostic, with the field path and the CEL position. */
  message?: string;
}

export interface NodeState {
  node: string;
  /** RFC 3339; refreshed periodically so the aggregator can tell a live node from a gone one. */
  heartbeatTime: string;
  /** The backend each hook got on this node's kernel, or null where the hook is not enforceable. */
  backends: Partial<Record<Hook, string | null>>;
  /** Digest of the plan in force. */
  planDigest?: string;
  policies: NodePolicyState[];
}
