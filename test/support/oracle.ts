// The meaning of a policy set, stated directly: evaluate every rule's CEL on the event
// and pick the winner by precedence. The compiled plan must always agree with this.

import type { RuntimeEvent } from "../../src/events/event.ts";
import { policyId, type Policy } from "../../src/policy/model.ts";
import { evaluateMatch } from "../../src/policy/cel.ts";
import { activation } from "../../src/policy/fields.ts";
import { selectorMatches } from "../../src/policy/selector.ts";
import { comparePrecedence, verdictOf, type PrecedenceKey } from "../../src/compiler/precedence.ts";

export function inScope(policy: Policy, event: RuntimeEvent): boolean {
  const k = event.k8s;
  const targetsPods = policy.kind === "TracingPolicyNamespaced" || policy.selector?.namespaceSelector || policy.selector?.podSelector;
  if (!k?.namespace) return !targetsPods;
  if (policy.kind === "TracingPolicyNamespaced" && policy.namespace !== k.namespace) return false;
  if (policy.selector?.namespaceSelector && !selectorMatches(policy.selector.namespaceSelector, k.namespaceLabels ?? {})) return false;
  if (policy.selector?.podSelector && !selectorMatches(policy.selector.podSelector, k.labels ?? {})) return false;
  return true;
}

export function directVerdict(policies: readonly Policy[], event: RuntimeEvent): PrecedenceKey | null {
  let best: PrecedenceKey | null = null;
  for (const policy of policies) {
    if (!inScope(policy, event)) continue;
    for (const rule of policy.rules) {
      if (rule.hook !== event.hook || !evaluateMatch(rule.hook, rule.match, activation(event))) continue;
      const key: PrecedenceKey = {
        verdict: verdictOf(policy.mode, rule.action), severity: rule.severity,
        policyId: policyId(policy), policyKind: policy.kind, rule: rule.name, alternative: 0,
      };
      if (!best || comparePrecedence(key, best) < 0) best = key;
    }
  }
  return best;
}
