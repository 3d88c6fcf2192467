// The validated policy model: what the validate stage hands to the compiler.
// Field names follow api/crds/ (palisade.dev/v1alpha1).

import type { SourcePosition } from "../diagnostics.ts";

export const HOOKS = ["process.exec", "file.open", "net.connect"] as const;
export type Hook = (typeof HOOKS)[number];

export const ACTIONS = ["deny", "kill", "audit"] as const;
export type Action = (typeof ACTIONS)[number];

export const SEVERITIES = ["critical", "high", "medium", "low", "info"] as const;
export type Severity = (typeof SEVERITIES)[number];

export const MODES = ["enforce", "monitor"] as const;
export type Mode = (typeof MODES)[number];

export const POLICY_KINDS = ["TracingPolicy", "TracingPolicyNamespaced"] as const;
export type PolicyKind = (typeof POLICY_KINDS)[number];

export interface LabelSelectorRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface WorkloadSelector {
  namespaceSelector?: LabelSelector;
  podSelector?: LabelSelector;
}

/** Maps an offset inside a rule's `match` string to where that character sits in the YAML file. */
export type MatchLocator = (offset: number) => SourcePosition;

export interface Rule {
  name: string;
  hook: Hook;
  match: string;
  action: Action;
  severity: Severity;
  message?: string;
  /** Accept a kill where the kernel cannot deny. */
  fallback?: "kill";
  /** Position of the rule's YAML node, for errors about the rule as a whole. */
  position: SourcePosition;
  /** YAML path of the rule, e.g. "spec.rules[2]". */
  path: string;
  locateMatch: MatchLocator;
}

export interface Policy {
  kind: PolicyKind;
  name: string;
  /** Only for TracingPolicyNamespaced. */
  namespace?: string;
  generation?: number;
  mode: Mode;
  selector?: WorkloadSelector;
  rules: Rule[];
  /** Position of the document (its `kind:` line), for errors about the policy as a whole. */
  position: SourcePosition;
}

/** The identity a policy has in plans, events and reports. */
export function policyId(p: Pick<Policy, "kind" | "name" | "namespace">): string {
  return p.kind === "TracingPolicyNamespaced" ? `${p.namespace}/${p.name}` : p.name;
}
