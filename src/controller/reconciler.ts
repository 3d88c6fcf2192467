// Policy objects -> one kernel plan, and each object's state on this node. No I/O: the
// controller feeds it the informers' changes and puts the plans it returns in force.
//
// Each object is all-or-nothing, like a file in the directory source: an object that does
// not validate or compile alone keeps its last good generation in force (none, if it never
// had one) and is Failed with the reason; the others still update. A round whose objects
// only fail together (a kernel limit) keeps the plan in force and fails that round's objects;
// they are tried again with the next change (a deletion may have made room).

import type { Diagnostic } from "../diagnostics.ts";
import { compile, type CompileOptions } from "../compiler/index.ts";
import type { KernelPlan } from "../plan/types.ts";
import type { Hook, Policy } from "../policy/model.ts";
import type { NodePolicyReason, NodePolicyState } from "./node-state.ts";
import { policyObjectKey, renderDiagnostic, validateObject, type PolicyObject } from "./policies.ts";

interface Entry {
  object: PolicyObject;
  /** The policy of the last generation put in force. */
  good?: Policy;
  failure?: { reason: NodePolicyReason; message: string };
  deleted?: boolean;
}

export interface ReconcileResult {
  /** The plan put in force this round, when it changed. */
  plan?: KernelPlan;
  /** Objects looked at this round. */
  reconciled: string[];
  /** Objects that failed this round, with why (for the log). */
  failed: { key: string; message: string }[];
  /** The round could not be put in force (the enforcer refused): try again later. */
  retry: boolean;
}

export interface ReconcilerOptions extends CompileOptions {
  /** Whether this node's kernel decides rules of a hook at all. */
  enforceable?: (hook: Hook) => boolean;
}

const keyOf = (o: PolicyObject) => policyObjectKey(o.kind, o.metadata.namespace, o.metadata.name);

export class PolicyReconciler {
  private readonly options: ReconcilerOptions;
  private readonly entries = new Map<string, Entry>();
  private readonly pending = new Set<string>();
  /** Refused only in combination with the others: tried again with the next change. */
  private readonly blocked = new Set<string>();
  private current: KernelPlan | undefined;

  constructor(options: ReconcilerOptions = {}) {
    this.options = options;
  }

  get plan(): KernelPlan | undefined {
    return this.current;
  }

  /** Objects changed since the last round. */
  get dirty(): boolean {
    return this.pending.size > 0;
  }

  /**
   * A new or changed object. Only a new spec counts: status writes (the aggregator's) and
   * label edits change the resourceVersion, not the generation, and are ignored.
   */
  upsert(o: PolicyObject): boolean {
    const key = keyOf(o);
    const entry = this.entries.get(key);
    if (entry && !entry.deleted && entry.object.metadata.uid === o.metadata.uid && entry.object.metadata.generation === o.metadata.generation) {
      entry.object = o;
      return false;
    }
    // A recreated object (new uid) starts without a last good version.
    const good = entry && entry.object.metadata.uid === o.metadata.uid ? entry.good : undefined;
    this.entries.set(key, { object: o, ...(good && { good }), ...(entry?.failure && { failure: entry.failure }) });
    this.pending.add(key);
    return true;
  }

  remove(o: PolicyObject): boolean {
    const key = keyOf(o);
    const entry = this.entries.get(key);
    if (!entry) return false;
    entry.deleted = true;
    this.pending.add(key);
    return true;
  }

  /** Validates and compiles what changed; `accept` puts a new plan in force (and throws if it cannot). */
  reconcile(accept: (plan: KernelPlan) => void): ReconcileResult {
    const round = [...new Set([...this.pending, ...[...this.blocked].filter((k) => this.entries.has(k))])];
    this.pending.clear();
    this.blocked.clear();
    const failed: ReconcileResult["failed"] = [];
    const wanted = new Map<string, Policy | undefined>();
    for (const key of round) {
      const entry = this.entries.get(key)!;
      if (entry.deleted) {
        wanted.set(key, undefined);
        continue;
      }
      const checked = this.check(entry.object);
      if ("policy" in checked) {
        wanted.set(key, checked.policy);
        delete entry.failure;
      } else {
        entry.failure = { reason: "CompileError", message: checked.problems.join("; ") };
        failed.push({ key, message: entry.failure.message });
      }
    }

    const policies = [...this.entries].flatMap(([key, e]) => {
      const p = wanted.has(key) ? wanted.get(key) : e.good;
      return p ? [p] : [];
    });
    const { plan, diagnostics } = compile(policies, this.options);
    if (!plan) {
      // Only the combination fails: what was in force stays, this round's objects fail.
      const message = diagnostics.map((d) => `${d.file}: ${this.render(d)}`).join("; ");
      for (const key of wanted.keys()) {
        this.fail(key, "CompileError", message, failed);
        if (!this.entries.get(key)!.deleted) this.blocked.add(key);
      }
      this.settleDeletions(wanted, false);
      return { reconciled: round, failed, retry: false };
    }
    if (plan.digest !== this.current?.digest) {
      try {
        accept(plan);
      } catch (e) {
        for (const key of wanted.keys()) {
          this.fail(key, "ApplyError", (e as Error).message, failed);
          this.pending.add(key);
        }
        return { reconciled: round, failed, retry: true };
      }
    }
    for (const [key, p] of wanted) if (p) this.entries.get(key)!.good = p;
    this.settleDeletions(wanted, true);
    const changed = plan.digest !== this.current?.digest;
    this.current = plan;
    return { ...(changed && { plan }), reconciled: round, failed, retry: false };
  }

  /** Every object's state on this node, for its NodeState. */
  states(): NodePolicyState[] {
    return [...this.entries.values()].filter((e) => !e.deleted).map((e) => {
      const { kind, metadata } = e.object;
      const base = { kind, ...(metadata.namespace && { namespace: metadata.namespace }), name: metadata.name, uid: metadata.uid, generation: metadata.generation ?? 0 };
      if (e.failure) return { ...base, state: "Failed", reason: e.failure.reason, message: e.failure.message };
      const blind = [...new Set((e.good?.rules ?? []).map((r) => r.hook))].filter((h) => this.options.enforceable && !this.options.enforceable(h));
      if (blind.length) return { ...base, state: "Failed", reason: "NotEnforceable", message: `no backend on this node's kernel for ${blind.join(", ")}; \`palisade probe\` says why` };
      return { ...base, state: "Enforcing", reason: "Applied" };
    });
  }

  private check(o: PolicyObject): { policy: Policy } | { problems: string[] } {
    const v = validateObject(o);
    if (!v.policy) return { problems: v.problems.length ? v.problems : ["spec: not a policy"] };
    // Alone: its own CEL, and what this kernel can do, are its own problems.
    const alone = compile([v.policy], this.options).diagnostics;
    if (alone.length) return { problems: alone.map((d) => renderDiagnostic(d, v.located)) };
    return { policy: v.policy };
  }

  private render(d: Diagnostic): string {
    const entry = this.entries.get(d.file);
    return renderDiagnostic(d, entry?.good ? [entry.good] : []);
  }

  private fail(key: string, reason: NodePolicyReason, message: string, failed: ReconcileResult["failed"]): void {
    const entry = this.entries.get(key)!;
    if (entry.deleted) return;
    entry.failure = { reason, message };
    if (!failed.some((f) => f.key === key)) failed.push({ key, message });
  }

  private settleDeletions(wanted: Map<string, Policy | undefined>, applied: boolean): void {
    for (const key of wanted.keys()) {
      const entry = this.entries.get(key)!;
      if (!entry.deleted) continue;
      if (applied) this.entries.delete(key);
      else this.pending.add(key); // a deletion always compiles; only a retry can bring it back here
    }
  }
}
