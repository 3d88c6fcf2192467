// The aggregation itself, without I/O: every live node's report folded into one status per
// policy. Work is incremental: a node's new report only touches the policies whose entry on
// that node changed, tallies are kept per (policy, generation), and a policy's status is a
// function of its tally, the live-node count and the backend tally, O(1) per policy. So at
// 5,000 nodes x 1,000 policies a node's report costs O(its changes), not O(nodes x policies).

import type { Hook, PolicyKind } from "../../policy/model.ts";
import type { NodeReport, PolicyFailure } from "./node-object.ts";

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

interface Tally {
  enforcing: number;
  failed: Map<string, PolicyFailure>;
}

interface NodeEntry {
  report?: NodeReport;
  aliveUntil?: number;
  live: boolean;
}

export class StatusAggregation {
  private readonly nodes = new Map<string, NodeEntry>();
  private liveCount = 0;
  /** policy uid -> generation -> what live nodes report for it. */
  private readonly tallies = new Map<string, Map<number, Tally>>();
  /** hook -> backend -> live reporting nodes that have it. */
  private readonly backendTally = new Map<Hook, Map<string, number>>();
  private readonly policies = new Map<string, PolicyRef>();
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
    this.policies.set(policy.uid, policy);
    if (!previous || previous.generation !== policy.generation || previous.hooks.join() !== policy.hooks.join()) this.dirty.add(policy.uid);
  }

  removePolicy(uid: string) {
    this.policies.delete(uid);
    this.dirty.delete(uid);
  }

  /** A node's new report (undefined: its PalisadeNode is gone). */
  setReport(node: string, report: NodeReport | undefined) {
    const entry = this.entry(node);
    if (entry.live) this.count(entry.report, report);
    entry.report = report;
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
    const tally = this.tallies.get(uid)?.get(generation);
    const total = this.liveCount;
    const enforcing = tally?.enforcing ?? 0;
    const failed = tally?.failed.size ?? 0;
    const pending = total - enforcing - failed;

    const failure = representativeFailure(tally?.failed);
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
    if (!entry) this.nodes.set(node, (entry = { live: false }));
    return entry;
  }

  private forgetIfEmpty(node: string, entry: NodeEntry) {
    if (!entry.report && entry.aliveUntil === undefined && !entry.live) this.nodes.delete(node);
  }

  private updateLiveness(node: string, entry: NodeEntry, now: number) {
    const live = entry.aliveUntil !== undefined && entry.aliveUntil > now;
    if (live !== entry.live) {
      entry.live = live;
      this.liveCount += live ? 1 : -1;
      if (live) this.count(undefined, entry.report);
      else this.count(entry.report, undefined);
      // The node total is in every policy's status.
      for (const uid of this.policies.keys()) this.dirty.add(uid);
    }
    this.forgetIfEmpty(node, entry);
  }

  /** Moves a live node's contribution from `before` to `after`, marking changed policies dirty. */
  private count(before: NodeReport | undefined, after: NodeReport | undefined) {
    const node = (before ?? after)?.node;
    if (node === undefined) return;
    for (const [uid, was] of before?.policies ?? []) {
      const now = after?.policies.get(uid);
      if (now && now.generation === was.generation && sameFailure(now.failure, was.failure)) continue;
      this.tallyOf(uid, was.generation, (tally) => {
        if (was.failure) tally.failed.delete(node);
        else tally.enforcing--;
      });
    }
    for (const [uid, is] of after?.policies ?? []) {
      const was = before?.policies.get(uid);
      if (was && was.generation === is.generation && sameFailure(was.failure, is.failure)) continue;
      this.tallyOf(uid, is.generation, (tally) => {
        if (is.failure) tally.failed.set(node, is.failure);
        else tally.enforcing++;
      });
    }
    this.countBackends(before, after);
  }

  private tallyOf(uid: string, generation: number, change: (tally: Tally) => void) {
    let byGeneration = this.tallies.get(uid);
    if (!byGeneration) this.tallies.set(uid, (byGeneration = new Map()));
    let tally = byGeneration.get(generation);
    if (!tally) byGeneration.set(generation, (tally = { enforcing: 0, failed: new Map() }));
    change(tally);
    if (tally.enforcing === 0 && tally.failed.size === 0) {
      byGeneration.delete(generation);
      if (byGeneration.size === 0) this.tallies.delete(uid);
    }
    this.markDirty(uid);
  }

  private countBackends(before: NodeReport | undefined, after: NodeReport | undefined) {
    const hooks = new Set([...Object.keys(before?.backends ?? {}), ...Object.keys(after?.backends ?? {})] as Hook[]);
    const summaries = [...hooks].map((hook) => this.backendSummary(hook));
    this.addBackends(before, -1);
    this.addBackends(after, +1);
    // Usually a node's backends are the same before and after: nothing to redo then.
    if ([...hooks].some((hook, i) => this.backendSummary(hook) !== summaries[i])) for (const uid of this.policies.keys()) this.dirty.add(uid);
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
  return a === b || (!!a && !!b && a.reason === b.reason && a.message === b.message);
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
