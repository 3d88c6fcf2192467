// The aggregation itself, without I/O: every live node's report folded into one status per
// policy, in time independent of the number of policies a node holds.
//
// The aggregator numbers the versions of each kind's policy set as its watch delivers them
// (every create, generation change and delete is a new version) and keeps each version's
// SetDigest. A node reports the digest of the set it reconciled; its informer sees the same
// ordered stream, so that digest names one of our versions, and the node has every policy
// whose current generation was established at or before that version. A policy's count
// is then the number of live nodes at a version >= the policy's own, from a histogram of
// node versions (a handful of distinct values), and a node's new report only touches the
// policies established between its old and new version. A digest we do not know (a node
// ahead of our watch, or behind our history after a failover) counts as "not reported" for
// that kind's policies until it matches a version: never as enforcing.

import { POLICY_KINDS, type Hook, type PolicyKind } from "../../policy/model.ts";
import { SetDigest, type NodeReport, type PolicyFailure } from "./node-object.ts";

export const CONDITION_TYPES = ["Ready", "Reconciling", "Degraded"] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

export interface Condition {
  type: ConditionType;
  status: "True" | "False" | "Unknown";
  observedGeneration: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface PolicyStatus {
  observedGeneration: number;
  conditions: Condition[];
  nodes: { enforcing: number; failed: number; total: number };
  backends: Partial<Record<Hook, string>>;
}

export interface PolicyRef {
  kind: PolicyKind;
  namespace?: string;
  name: string;
  uid: string;
  generation: number;
  /** The hooks its rules use: the backends worth showing. */
  hooks: Hook[];
}

/** Which failure reason names a policy's state when nodes disagree: the most fundamental first. */
const REASON_PRIORITY: PolicyFailure["reason"][] = ["CompileError", "NotEnforceable", "ApplyError"];
/** Longest condition message (the CRD allows 32 KiB; a diagnostic needs far less). */
const MESSAGE_LIMIT = 4096;

/** Digests of a kind's set older than this many versions are forgotten (their nodes become "unknown"). */
const HISTORY_LIMIT = 100_000;

/** One kind's policy set as the aggregator's watch delivered it, version by version. */
class SetHistory {
  version = 0;
  private readonly digest = new SetDigest();
  private readonly versions = new Map<string, number>([[this.digest.value, 0]]);
  /** version -> uids whose current generation was established at that version. */
  readonly established = new Map<number, Set<string>>();

  /** A pair in or out of the set; seal() makes the result a version. */
  toggle(uid: string, generation: number): void {
    this.digest.toggle(uid, generation);
  }

  /** Seals the changes made by toggle() as the next version. */
  seal(): number {
    this.version++;
    const digest = this.digest.value;
    this.versions.delete(digest); // re-inserted last: the Map stays in version order
    this.versions.set(digest, this.version);
    if (this.versions.size > HISTORY_LIMIT) this.versions.delete(this.versions.keys().next().value!);
    return this.version;
  }

  get currentDigest(): string {
    return this.digest.value;
  }

  versionOf(digest: string): number | undefined {
    return this.versions.get(digest);
  }

  establish(uid: string, version: number | undefined, previous: number | undefined) {
    if (previous !== undefined) {
      const bucket = this.established.get(previous);
      bucket?.delete(uid);
      if (bucket?.size === 0) this.established.delete(previous);
    }
    if (version === undefined) return;
    let bucket = this.established.get(version);
    if (!bucket) this.established.set(version, (bucket = new Set()));
    bucket.add(uid);
  }
}

interface TrackedPolicy extends PolicyRef {
  /** The version of its kind's set at which its current generation was established. */
  since: number;
}

interface NodeEntry {
  report?: NodeReport;
  aliveUntil?: number;
  live: boolean;
  /** Per kind, the version its report names (undefined: a digest we do not know). */
  versions: Partial<Record<PolicyKind, number>>;
}

export class StatusAggregation {
  private readonly nodes = new Map<string, NodeEntry>();
  private liveCount = 0;
  private readonly histories = new Map<PolicyKind, SetHistory>(POLICY_KINDS.map((kind) => [kind, new SetHistory()]));
  /** kind -> version -> live nodes at that version. */
  private readonly atVersion = new Map<PolicyKind, Map<number, number>>(POLICY_KINDS.map((kind) => [kind, new Map()]));
  /** policy uid -> live node -> its failure (of any generation; only the current one counts). */
  private readonly failures = new Map<string, Map<string, PolicyFailure>>();
  /** hook -> backend -> live reporting nodes that have it. */
  private readonly backendTally = new Map<Hook, Map<string, number>>();
  private readonly policies = new Map<string, TrackedPolicy>();
  private readonly dirty = new Set<string>();

  /** Policies whose status may have changed since the last takeDirty(). */
  takeDirty(): string[] {
    const uids = [...this.dirty];
    this.dirty.clear();
    return uids;
  }

  markDirty(uid: string) {
    if (this.policies.has(uid)) this.dirty.add(uid);
  }

  policy(uid: string): PolicyRef | undefined {
    return this.policies.get(uid);
  }

  upsertPolicy(policy: PolicyRef) {
    const previous = this.policies.get(policy.uid);
    if (previous && previous.generation === policy.generation) {
      this.policies.set(policy.uid, { ...policy, since: previous.since });
      return;
    }
    const history = this.histories.get(policy.kind)!;
    if (previous) history.toggle(previous.uid, previous.generation);
    history.toggle(policy.uid, policy.generation);
    const since = history.seal();
    history.establish(policy.uid, since, previous?.since);
    this.policies.set(policy.uid, { ...policy, since });
    this.dirty.add(policy.uid);
    this.resolveUnknown(policy.kind);
  }

  removePolicy(uid: string) {
    const policy = this.policies.get(uid);
    if (!policy) return;
    const history = this.histories.get(policy.kind)!;
    history.toggle(uid, policy.generation);
    history.seal();
    history.establish(uid, undefined, policy.since);
    this.policies.delete(uid);
    this.dirty.delete(uid);
    this.resolveUnknown(policy.kind);
  }

  /** A node's new report (undefined: its PalisadeNode is gone). */
  setReport(node: string, report: NodeReport | undefined) {
    const entry = this.entry(node);
    const before = { ...entry.versions };
    const beforeReport = entry.report;
    if (entry.live) this.leave(entry);
    entry.report = report;
    entry.versions = this.versionsOf(report);
    if (entry.live) {
      this.join(entry);
      for (const kind of POLICY_KINDS) this.markBetween(kind, before[kind], entry.versions[kind]);
      this.markChangedFailures(beforeReport, report);
      this.markIfBackendsChanged(beforeReport, report);
    }
    this.forgetIfEmpty(node, entry);
  }

  /** When the node's heartbeat Lease expires (epoch ms; undefined: the Lease is gone). */
  setHeartbeat(node: string, aliveUntil: number | undefined, now = Date.now()) {
    const entry = this.entry(node);
    entry.aliveUntil = aliveUntil;
    this.updateLiveness(node, entry, now);
  }

  /** Nodes whose heartbeat expired stop counting; call every few seconds. */
  expireHeartbeats(now = Date.now()) {
    for (const [node, entry] of this.nodes) this.updateLiveness(node, entry, now);
  }

  get liveNodes(): number {
    return this.liveCount;
  }

  /** The status a policy should have now, keeping lastTransitionTime where a condition's status did not change. */
  statusOf(uid: string, previous: PolicyStatus | undefined, now = new Date()): PolicyStatus | undefined {
    const policy = this.policies.get(uid);
    if (!policy) return undefined;
    const generation = policy.generation;
    let reported = 0;
    for (const [version, count] of this.atVersion.get(policy.kind)!) if (version >= policy.since) reported += count;
    const failedNodes = new Map<string, PolicyFailure>();
    let failedAmongReported = 0;
    for (const [node, failure] of this.failures.get(uid) ?? []) {
      if (failure.generation !== generation) continue;
      failedNodes.set(node, failure);
      const version = this.nodes.get(node)?.versions[policy.kind];
      if (version !== undefined && version >= policy.since) failedAmongReported++;
    }
    const total = this.liveCount;
    const failed = failedNodes.size;
    const enforcing = reported - failedAmongReported;
    const pending = total - enforcing - failed;

    const failure = representativeFailure(failedNodes);
    const failureText = failure && `${failure.message.trim()} (${failed} of ${total} nodes failed, e.g. ${failure.node})`;
    const pendingText = total === 0 ? "No live Palisade agent has reported; is the agent DaemonSet running?" : `${pending} of ${total} nodes have not reported generation ${generation} yet.`;

    const ready: Omit<Condition, "observedGeneration" | "lastTransitionTime"> =
      total > 0 && enforcing === total
        ? { type: "Ready", status: "True", reason: "Enforcing", message: `Enforced on all ${total} nodes.` }
        : failure
          ? { type: "Ready", status: "False", reason: failure.reason, message: failureText! }
          : { type: "Ready", status: "False", reason: total === 0 ? "NoNodes" : "Pending", message: pendingText };
    const reconciling: typeof ready =
      pending > 0 || total === 0
        ? { type: "Reconciling", status: "True", reason: total === 0 ? "NoNodes" : "Pending", message: pendingText }
        : { type: "Reconciling", status: "False", reason: "AllNodesReported", message: `All ${total} nodes report generation ${generation}.` };
    const degraded: typeof ready = failure
      ? { type: "Degraded", status: "True", reason: failure.reason, message: failureText! }
      : { type: "Degraded", status: "False", reason: "NoFailures", message: "No node failed to enforce the policy." };

    const transitionTime = now.toISOString().replace(/\.\d+Z$/, "Z");
    const conditions = [ready, reconciling, degraded].map((condition): Condition => {
      const before = previous?.conditions?.find((c) => c.type === condition.type);
      return {
        type: condition.type,
        status: condition.status,
        observedGeneration: generation,
        lastTransitionTime: before && before.status === condition.status ? before.lastTransitionTime : transitionTime,
        reason: condition.reason,
        message: truncate(condition.message, MESSAGE_LIMIT),
      };
    });
    const backends: PolicyStatus["backends"] = {};
    for (const hook of policy.hooks) {
      const summary = this.backendSummary(hook);
      if (summary) backends[hook] = summary;
    }
    return { observedGeneration: generation, conditions, nodes: { enforcing, failed, total }, backends };
  }

  private entry(node: string): NodeEntry {
    let entry = this.nodes.get(node);
    if (!entry) this.nodes.set(node, (entry = { live: false, versions: {} }));
    return entry;
  }

  private forgetIfEmpty(node: string, entry: NodeEntry) {
    if (!entry.report && entry.aliveUntil === undefined && !entry.live) this.nodes.delete(node);
  }

  private versionsOf(report: NodeReport | undefined): NodeEntry["versions"] {
    const versions: NodeEntry["versions"] = {};
    for (const kind of POLICY_KINDS) {
      const digest = report?.sets[kind];
      const version = digest === undefined ? undefined : this.histories.get(kind)!.versionOf(digest);
      if (version !== undefined) versions[kind] = version;
    }
    return versions;
  }

  /** A new version may be one that nodes already report (they saw the change before us). */
  private resolveUnknown(kind: PolicyKind) {
    const history = this.histories.get(kind)!;
    const digest = history.currentDigest;
    for (const entry of this.nodes.values()) {
      if (entry.versions[kind] !== undefined || entry.report?.sets[kind] !== digest) continue;
      if (entry.live) this.count(kind, entry.versions[kind], -1);
      const before = entry.versions[kind];
      entry.versions[kind] = history.version;
      if (entry.live) {
        this.count(kind, history.version, +1);
        this.markBetween(kind, before, history.version);
      }
    }
  }

  private updateLiveness(node: string, entry: NodeEntry, now: number) {
    const live = entry.aliveUntil !== undefined && entry.aliveUntil > now;
    if (live !== entry.live) {
      entry.live = live;
      this.liveCount += live ? 1 : -1;
      if (live) this.join(entry);
      else this.leave(entry);
      // The node total is in every policy's status.
      for (const uid of this.policies.keys()) this.dirty.add(uid);
    }
    this.forgetIfEmpty(node, entry);
  }

  /** Adds a live node's report to the tallies. */
  private join(entry: NodeEntry) {
    for (const kind of POLICY_KINDS) this.count(kind, entry.versions[kind], +1);
    const node = entry.report?.node;
    for (const [uid, failure] of entry.report?.failures ?? []) {
      let byNode = this.failures.get(uid);
      if (!byNode) this.failures.set(uid, (byNode = new Map()));
      byNode.set(node!, failure);
    }
    this.addBackends(entry.report, +1);
  }

  private leave(entry: NodeEntry) {
    for (const kind of POLICY_KINDS) this.count(kind, entry.versions[kind], -1);
    const node = entry.report?.node;
    for (const uid of entry.report?.failures.keys() ?? []) {
      const byNode = this.failures.get(uid);
      byNode?.delete(node!);
      if (byNode?.size === 0) this.failures.delete(uid);
    }
    this.addBackends(entry.report, -1);
  }

  private count(kind: PolicyKind, version: number | undefined, delta: 1 | -1) {
    if (version === undefined) return;
    const counts = this.atVersion.get(kind)!;
    const count = (counts.get(version) ?? 0) + delta;
    if (count > 0) counts.set(version, count);
    else counts.delete(version);
  }

  /** A node moved from one version to another: the policies established in between changed. */
  private markBetween(kind: PolicyKind, from: number | undefined, to: number | undefined) {
    if (from === to) return;
    if (from === undefined || to === undefined) {
      for (const policy of this.policies.values()) if (policy.kind === kind) this.dirty.add(policy.uid);
      return;
    }
    const established = this.histories.get(kind)!.established;
    const [low, high] = from < to ? [from, to] : [to, from];
    // Walk whichever is smaller: the versions in between, or the versions that hold policies.
    if (high - low < established.size) {
      for (let v = low + 1; v <= high; v++) for (const uid of established.get(v) ?? []) this.dirty.add(uid);
    } else {
      for (const [v, uids] of established) if (v > low && v <= high) for (const uid of uids) this.dirty.add(uid);
    }
  }

  private markChangedFailures(before: NodeReport | undefined, after: NodeReport | undefined) {
    for (const [uid, failure] of before?.failures ?? []) if (!sameFailure(failure, after?.failures.get(uid))) this.markDirty(uid);
    for (const [uid, failure] of after?.failures ?? []) if (!sameFailure(failure, before?.failures.get(uid))) this.markDirty(uid);
  }

  /** Usually a node's backends are the same in each report: nothing to redo then. */
  private markIfBackendsChanged(before: NodeReport | undefined, after: NodeReport | undefined) {
    if (JSON.stringify(before?.backends ?? {}) === JSON.stringify(after?.backends ?? {})) return;
    for (const uid of this.policies.keys()) this.dirty.add(uid);
  }

  private addBackends(report: NodeReport | undefined, delta: 1 | -1) {
    for (const [hook, backend] of Object.entries(report?.backends ?? {}) as [Hook, string][]) {
      let counts = this.backendTally.get(hook);
      if (!counts) this.backendTally.set(hook, (counts = new Map()));
      const count = (counts.get(backend) ?? 0) + delta;
      if (count > 0) counts.set(backend, count);
      else counts.delete(backend);
    }
  }

  /** "lsm" when every node agrees; "lsm (180), kprobe (20)" when they differ. */
  private backendSummary(hook: Hook): string | undefined {
    const counts = this.backendTally.get(hook);
    if (!counts || counts.size === 0) return undefined;
    if (counts.size === 1) return [...counts.keys()][0];
    return [...counts]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .map(([backend, count]) => `${backend} (${count})`)
      .join(", ");
  }
}

function sameFailure(a: PolicyFailure | undefined, b: PolicyFailure | undefined): boolean {
  return a === b || (!!a && !!b && a.generation === b.generation && a.reason === b.reason && a.message === b.message);
}

function representativeFailure(failed: Map<string, PolicyFailure> | undefined): (PolicyFailure & { node: string }) | undefined {
  let best: (PolicyFailure & { node: string }) | undefined;
  for (const [node, failure] of failed ?? []) {
    const rank = REASON_PRIORITY.indexOf(failure.reason);
    // Lowest priority index wins; among equals, the first node by name, so the message is stable.
    if (!best || rank < REASON_PRIORITY.indexOf(best.reason) || (rank === REASON_PRIORITY.indexOf(best.reason) && node < best.node)) best = { ...failure, node };
  }
  return best;
}

function truncate(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

/** Equal for the purpose of writing: same fields, in any key order. */
export function sameStatus(a: PolicyStatus | undefined, b: PolicyStatus | undefined): boolean {
  return canonical(a) === canonical(b);
}

/** True when a write matters at once: a condition flipped or the generation moved (not only counts). */
export function significantChange(before: PolicyStatus | undefined, after: PolicyStatus): boolean {
  if (!before || before.observedGeneration !== after.observedGeneration) return true;
  return after.conditions.some((c) => {
    const was = before.conditions?.find((b) => b.type === c.type);
    return !was || was.status !== c.status || was.reason !== c.reason;
  });
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) : v,
  );
}
