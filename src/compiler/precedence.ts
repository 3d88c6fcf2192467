// Which rule wins when several match one event. The kernel and the reference evaluator
// both pick the lowest rank, and ranks are assigned by this order:
//   1. what happens: killed, then denied, then monitor (would have acted), then audited;
//   2. severity: critical first, info last;
//   3. policy identity (namespace/name), then kind;
//   4. rule name; 5. the alternative's index in the rule's normal form.

import type { EventAction } from "../events/event.ts";
import type { Action, Mode, Severity } from "../policy/model.ts";
import { SEVERITIES } from "../policy/model.ts";
import { cmp } from "../diagnostics.ts";

const VERDICT_ORDER: readonly EventAction[] = ["killed", "denied", "monitor", "audited"];

export function verdictOf(mode: Mode, action: Action): EventAction {
  if (action === "audit") return "audited";
  if (mode === "monitor") return "monitor";
  return action === "kill" ? "killed" : "denied";
}

/** Whether the kernel acts (kills or denies) for this verdict. */
export function acts(verdict: EventAction): boolean {
  return verdict === "killed" || verdict === "denied";
}

export interface PrecedenceKey {
  verdict: EventAction;
  severity: Severity;
  policyId: string;
  policyKind: string;
  rule: string;
  alternative: number;
}

export function comparePrecedence(a: PrecedenceKey, b: PrecedenceKey): number {
  return (
    VERDICT_ORDER.indexOf(a.verdict) - VERDICT_ORDER.indexOf(b.verdict) ||
    SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity) ||
    cmp(a.policyId, b.policyId) ||
    cmp(a.policyKind, b.policyKind) ||
    cmp(a.rule, b.rule) ||
    a.alternative - b.alternative
  );
}
