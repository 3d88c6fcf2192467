// The kernel plan: what the compiler produces and the enforcer loads into BPF maps.
// It is readable JSON on purpose (`palisade compile -o json`), deterministic (sorted,
// no source positions), and complete: the reference evaluator decides from it alone.
// docs/compiler.md explains the design with a worked example.

import type { EventAction } from "../events/event.ts";
import type { Action, Hook, LabelSelector, Mode, PolicyKind, Severity } from "../policy/model.ts";

export interface PlanLimits {
  /** Rule alternatives that constrain two or more dimensions, per hook: the width of the kernel's bitmask. */
  maxMultiDimensionSlots: number;
  /** Rule alternatives of any kind, per hook. */
  maxSlots: number;
  /** Alternatives one rule may expand to in disjunctive normal form. */
  maxAlternativesPerRule: number;
  /** LPM entries per dimension of a hook. */
  maxEntriesPerDimension: number;
}

export interface PlanPolicy {
  kind: PolicyKind;
  name: string;
  namespace?: string;
  mode: Mode;
}

/**
 * One alternative (a conjunction) of one rule. Its index in `HookPlan.slots` is its rank:
 * lower rank wins when several match (see `precedence` in src/compiler/precedence.ts).
 */
export interface Slot {
  policy: number;
  rule: string;
  /** Index of this conjunction in the rule's disjunctive normal form. */
  alternative: number;
  action: Action;
  /** What the agent reports (and, for killed/denied, does). */
  verdict: EventAction;
  severity: Severity;
  message?: string;
  /** Dimensions this alternative constrains, by name. */
  dimensions: string[];
  /** Bit in the kernel mask, for alternatives constraining two or more dimensions. */
  bit?: number;
  /** Workload scope (index into KernelPlan.scopes) this alternative requires. */
  scope?: number;
  /**
   * Set when part of the rule cannot be decided in the kernel (audit and monitor only):
   * the kernel over-approximates, the agent confirms by evaluating this CEL (the rule's match).
   */
  userspaceCheck?: string;
}

/** What a dimension value tells the kernel: the best single-dimension slot, and the mask bits. */
export interface ClassPlan {
  id: number;
  /** Ranks of slots constraining only this dimension that hold, ascending. The kernel keeps the first. */
  singles: number[];
  /** Bits of multi-dimension slots whose test on this dimension holds. */
  bits: number[];
}

export type LpmEntry =
  /** prefix dimension: `text` followed by NUL when exact. */
  | { text: string; exact: boolean; class: number }
  /** suffix dimension: the suffix as written; the key is its bytes reversed. */
  | { suffix: string; class: number }
  /** int dimension: values whose top `prefixLength` of 32 bits equal `value`'s. */
  | { value: number; prefixLength: number; range: string; class: number }
  /** addr dimension. */
  | { cidr: string; class: number };

export interface DimensionPlan {
  name: string;
  id: number;
  /** Class when no entry matches (the LPM root). For workload: the class of host processes. */
  defaultClass: number;
  /** Class when the kernel cannot read the value (path too deep): enforcing slots hold, others do not. */
  unknownClass: number;
  /** Multi-dimension slots that do not constrain this dimension: set in every class of it. */
  wildcardBits: number[];
  classes: ClassPlan[];
  entries: LpmEntry[];
  /** Workload only: what each scope contributes when a workload is in it. */
  scopes?: { scope: number; singles: number[]; bits: number[] }[];
}

export interface HookPlan {
  hook: Hook;
  id: number;
  slots: Slot[];
  /** Best rank among slots that constrain no dimension (they match every event), if any. */
  alwaysRank: number | null;
  /** bit -> rank, ascending in both. */
  bitRanks: number[];
  dimensions: DimensionPlan[];
}

/** A set of workloads: the policy's selector and namespace plus the rule's k8s.* tests. */
export interface PlanScope {
  policy: number;
  namespace?: string;
  namespaceSelector?: LabelSelector;
  podSelector?: LabelSelector;
  /** CEL over `k8s` only. */
  expression?: string;
  /** Whether host processes (no pod) are in this scope. */
  host: boolean;
}

export interface KernelPlan {
  apiVersion: "palisade.dev/v1alpha1";
  kind: "KernelPlan";
  /** sha256 of the plan's JSON without this field. */
  digest: string;
  limits: PlanLimits;
  policies: PlanPolicy[];
  scopes: PlanScope[];
  hooks: HookPlan[];
}

export const NO_RANK = 0xffffffff;
