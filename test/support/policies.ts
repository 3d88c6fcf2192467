// Builds validated-model policies directly, for compiler tests that don't go through YAML.

import type { Action, Hook, Mode, Policy, PolicyKind, Severity, WorkloadSelector } from "../../src/policy/model.ts";

export interface RuleSpec {
  name: string;
  hook: Hook;
  match: string;
  action: Action;
  severity?: Severity;
  message?: string;
}

export interface PolicySpec {
  name: string;
  kind?: PolicyKind;
  namespace?: string;
  mode?: Mode;
  selector?: WorkloadSelector;
  rules: RuleSpec[];
}

/** `match` positions map to line = rule index + 1, column = offset + 1 in a fictional file. */
export function makePolicy(spec: PolicySpec, file = "test.yaml"): Policy {
  const kind = spec.kind ?? "TracingPolicy";
  return {
    kind,
    name: spec.name,
    ...(kind === "TracingPolicyNamespaced" && { namespace: spec.namespace ?? "default" }),
    mode: spec.mode ?? "enforce",
    ...(spec.selector && { selector: spec.selector }),
    position: { file, line: 1, column: 1 },
    rules: spec.rules.map((r, i) => ({
      name: r.name,
      hook: r.hook,
      match: r.match,
      action: r.action,
      severity: r.severity ?? "medium",
      ...(r.message !== undefined && { message: r.message }),
      position: { file, line: i + 1, column: 1 },
      path: `spec.rules[${i}]`,
      locateMatch: (offset: number) => ({ file, line: i + 1, column: offset + 1 }),
    })),
  };
}
