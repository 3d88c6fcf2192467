// Kubernetes label selector semantics (matchLabels AND matchExpressions).

import type { LabelSelector } from "./model.ts";

export function selectorMatches(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, req.key);
    const value = labels[req.key];
    const inValues = has && (req.values ?? []).includes(value!);
    const ok =
      req.operator === "In" ? inValues
      : req.operator === "NotIn" ? !inValues
      : req.operator === "Exists" ? has
      : !has;
    if (!ok) return false;
  }
  return true;
}
