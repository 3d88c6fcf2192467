// The compiler: validated policies in, a kernel plan out. Pure and deterministic: the same
// policies give a byte-identical plan whatever their order; no I/O, no clock.

import { createHash } from "node:crypto";
import type { ASTNode } from "@marcbachmann/cel-js";
import { serialize } from "@marcbachmann/cel-js";
import { cmp, sortDiagnostics, type Diagnostic } from "../diagnostics.ts";
import { HOOKS, policyId, type Hook, type Policy, type Rule } from "../policy/model.ts";
import { celEnvironment, evaluateMatch } from "../policy/cel.ts";
import { activation } from "../policy/fields.ts";
import { DIMENSIONS, HOOK_IDS, dimensionByName } from "../plan/dimensions.ts";
import type { DimensionPlan, HookPlan, KernelPlan, PlanLimits, PlanScope, Slot } from "../plan/types.ts";
import { checkMatch } from "./check.ts";
import { normalForm, residualsOf, simplify, TooManyAlternatives, type Conjunction } from "./formula.ts";
import { KERNEL_FORMS_HINT, Lowering } from "./lower.ts";
import { acts, comparePrecedence, verdictOf, type PrecedenceKey } from "./precedence.ts";
import { buildDimension, ClassTable, type DimensionSlot } from "./classes.ts";
import { predToCel, type Pred } from "./predicate.ts";

export const DEFAULT_LIMITS: PlanLimits = {
  maxMultiDimensionSlots: 1024,
  maxSlots: 65536,
  maxAlternativesPerRule: 64,
  maxEntriesPerDimension: 262144,
};

/** What each hook can do on the kernel the plan is for (from the enforcer's probe). */
export type Capabilities = Partial<Record<Hook, readonly ("deny" | "kill")[]>>;

export interface CompileOptions {
  limits?: Partial<PlanLimits>;
  /** Absent: every hook can deny and kill (checking policies without a kernel). */
  capabilities?: Capabilities;
}

export interface CompileResult {
  /** Present only when there are no diagnostics: a plan is never half made. */
  plan?: KernelPlan;
  diagnostics: Diagnostic[];
}

interface PendingSlot extends PrecedenceKey {
  hook: Hook;
  policyIndex: number;
  ruleRef: Rule;
  conjunction: Conjunction;
  scopeKey?: string;
  scope?: Omit<PlanScope, "host">;
  userspaceCheck?: string;
}

export function compile(input: readonly Policy[], options: CompileOptions = {}): CompileResult {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const diagnostics: Diagnostic[] = [];
  const policies = [...input].sort((a, b) => cmp(policyId(a), policyId(b)) || cmp(a.kind, b.kind));
  for (let i = 1; i < policies.length; i++) {
    const [a, b] = [policies[i - 1]!, policies[i]!];
    if (policyId(a) === policyId(b) && a.kind === b.kind) {
      diagnostics.push({ ...b.position, code: "DuplicatePolicy", message: `${b.kind} "${policyId(b)}" is also defined at ${a.position.file}:${a.position.line}:${a.position.column}` });
    }
  }

  const pending: PendingSlot[] = [];
  policies.forEach((policy, policyIndex) => {
    for (const rule of policy.rules) {
      const action = effectiveAction(policy, rule, options.capabilities, diagnostics);
      const conjunctions = action ? compileRule(policy, rule, limits, diagnostics) : [];
      conjunctions.forEach((conjunction, alternative) => {
        const verdict = verdictOf(policy.mode, action!);
        const k8sTests = conjunction.dims.get("workload");
        const scope = scopeOf(policy, policyIndex, k8sTests && predToCel(k8sTests));
        pending.push({
          hook: rule.hook, policyIndex, ruleRef: rule, conjunction,
          verdict, severity: rule.severity, policyId: policyId(policy), policyKind: policy.kind, rule: rule.name, alternative,
          ...(scope && { scope, scopeKey: JSON.stringify(scope) }),
          ...(conjunction.userspace && { userspaceCheck: rule.match }),
        });
      });
    }
  });

  const scopeKeys = [...new Set(pending.flatMap((p) => (p.scopeKey ? [p.scopeKey] : [])))].sort();
  const scopes: PlanScope[] = scopeKeys.map((key) => {
    const scope = JSON.parse(key) as Omit<PlanScope, "host">;
    return { ...scope, host: scopeHoldsForHost(scope) };
  });

  let nextClassId = 0;
  const hooks: HookPlan[] = HOOKS.map((hook) =>
    buildHook(hook, pending.filter((p) => p.hook === hook), scopeKeys, scopes, limits, diagnostics, () => nextClassId++),
  );

  if (diagnostics.length) return { diagnostics: sortDiagnostics(diagnostics) };
  const body = {
    apiVersion: "palisade.dev/v1alpha1" as const,
    kind: "KernelPlan" as const,
    limits,
    policies: policies.map((p) => ({ kind: p.kind, name: p.name, ...(p.namespace !== undefined && { namespace: p.namespace }), mode: p.mode })),
    scopes,
    hooks,
  };
  const digest = createHash("sha256").update(JSON.stringify(body)).digest("hex");
  const { apiVersion, kind, ...rest } = body;
  return { plan: { apiVersion, kind, digest, ...rest }, diagnostics: [] };
}

/**
 * The action a rule gets on this kernel: as written where the hook can do it; kill for a
 * deny only when the rule accepts it (`fallback: kill`); otherwise refused with the reason.
 */
function effectiveAction(policy: Policy, rule: Rule, capabilities: Capabilities | undefined, diagnostics: Diagnostic[]): Rule["action"] | undefined {
  const can = capabilities?.[rule.hook];
  if (!can || rule.action === "audit" || policy.mode === "monitor" || can.includes(rule.action)) return rule.action;
  if (rule.action === "deny" && rule.fallback === "kill" && can.includes("kill")) return "kill";
  const able = can.length ? `it can only ${can.join(" and ")}` : "it can only audit";
  const remedy = rule.action === "deny" && can.includes("kill") ? "add `fallback: kill` to the rule to accept killing the process instead, or " : "";
  diagnostics.push({
    ...rule.position, code: "ActionUnsupported", path: `${rule.path}.action`,
    message: `hook ${rule.hook} cannot ${rule.action} on this kernel (${able})`,
    hint: `${remedy}run the policy in monitor mode here; \`palisade probe\` shows what each hook can do`,
  });
  return undefined;
}

/** Only the problems of each rule's own `match` (CEL, kernel decidability), for rules that won't be compiled into a plan. */
export function checkRules(policies: readonly Policy[]): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  for (const policy of policies) for (const rule of policy.rules) compileRule(policy, rule, DEFAULT_LIMITS, diagnostics);
  return diagnostics;
}

/**
 * Normal forms of rules that compiled cleanly, by everything they depend on. The agent
 * recompiles on every change, and most rules did not change: a memo of a deterministic
 * function keeps compile() pure. Bounded: cleared when full.
 */
const normalForms = new Map<string, Conjunction[]>();
const MAX_MEMOIZED_RULES = 100_000;

function compileRule(policy: Policy, rule: Rule, limits: PlanLimits, diagnostics: Diagnostic[]): Conjunction[] {
  const key = `${rule.hook}\u0000${acts(verdictOf(policy.mode, rule.action))}\u0000${limits.maxAlternativesPerRule}\u0000${rule.match}`;
  const memoized = normalForms.get(key);
  if (memoized) return memoized;
  const before = diagnostics.length;
  const conjunctions = normaliseRule(policy, rule, limits, diagnostics);
  if (diagnostics.length === before) {
    if (normalForms.size >= MAX_MEMOIZED_RULES) normalForms.clear();
    normalForms.set(key, conjunctions);
  }
  return conjunctions;
}

function normaliseRule(policy: Policy, rule: Rule, limits: PlanLimits, diagnostics: Diagnostic[]): Conjunction[] {
  const at = (offset: number, code: string, message: string, hint?: string): Diagnostic => ({
    ...rule.locateMatch(offset), code, message, path: `${rule.path}.match`, ...(hint && { hint }),
  });
  const checked = checkMatch(rule.hook, rule.match);
  if (!checked.ok) {
    for (const p of checked.problems) diagnostics.push(at(p.offset, "CelError", p.message, p.hint));
    return [];
  }
  const env = celEnvironment(rule.hook);
  const lowering = new Lowering((node) => {
    try {
      return env.evaluate(serialize(node), {});
    } catch {
      return false;
    }
  });
  const formula = simplify(lowering.lower(checked.parsed.ast));
  for (const p of lowering.problems) diagnostics.push(at(p.node.pos, "CelValue", p.message, p.hint));
  if (acts(verdictOf(policy.mode, rule.action))) {
    // A ternary's condition appears twice in the formula: report each node once.
    const residuals = [...new Map(residualsOf(formula).map((r) => [r.node, r])).values()];
    for (const r of residuals) {
      diagnostics.push(at(tokenOffset(r.node), "NotKernelDecidable", `${r.reason}, so a rule with action ${rule.action} cannot use it`, KERNEL_FORMS_HINT));
    }
    if (residuals.length) return [];
  }
  let conjunctions: Conjunction[];
  try {
    conjunctions = normalForm(formula, limits.maxAlternativesPerRule);
  } catch (e) {
    if (!(e instanceof TooManyAlternatives)) throw e;
    diagnostics.push(at(0, "TooManyAlternatives",
      `match expands to more than ${limits.maxAlternativesPerRule} alternatives (its disjunctive normal form); split it into several rules or factor common tests out`));
    return [];
  }
  return conjunctions;
}

/** Where to point for a node: the method name of a call, else the node's own position. */
function tokenOffset(node: ASTNode): number {
  if (node.op === "rcall") {
    const at = node.input.indexOf(node.args[0], node.args[1].end);
    if (at >= 0) return at;
  }
  return node.pos;
}

function scopeOf(policy: Policy, policyIndex: number, expression: string | undefined): Omit<PlanScope, "host"> | undefined {
  const namespaced = policy.kind === "TracingPolicyNamespaced";
  const sel = policy.selector;
  if (!namespaced && !sel?.namespaceSelector && !sel?.podSelector && expression === undefined) return undefined;
  return {
    policy: policyIndex,
    ...(namespaced && { namespace: policy.namespace! }),
    ...(sel?.namespaceSelector && { namespaceSelector: sel.namespaceSelector }),
    ...(sel?.podSelector && { podSelector: sel.podSelector }),
    ...(expression !== undefined && { expression }),
  };
}

/** A policy with a selector or a namespace targets pods only; k8s.* tests see empty values on the host. */
function scopeHoldsForHost(scope: Omit<PlanScope, "host">): boolean {
  if (scope.namespace !== undefined || scope.namespaceSelector || scope.podSelector) return false;
  return scope.expression === undefined || evaluateMatch("process.exec", scope.expression, activation({ hook: "process.exec", process: { pid: 0, uid: 0, binary: "" } }));
}

function buildHook(
  hook: Hook, pending: PendingSlot[], scopeKeys: string[], scopes: PlanScope[],
  limits: PlanLimits, diagnostics: Diagnostic[], nextId: () => number,
): HookPlan {
  pending.sort(comparePrecedence);
  const overflow = (index: number, message: string) => {
    const rule = pending[index]!.ruleRef;
    diagnostics.push({ ...rule.position, code: "TooManyRules", path: rule.path, message });
  };
  if (pending.length > limits.maxSlots) {
    overflow(limits.maxSlots, `hook ${hook} has ${pending.length} rule alternatives; the kernel plan holds at most ${limits.maxSlots} per hook (this rule is the first past the limit)`);
  }

  const dimensionsOf = (p: PendingSlot) =>
    [...p.conjunction.dims.keys()].filter((d) => d !== "workload").concat(p.scopeKey ? ["workload"] : []).sort((a, b) => dimensionByName(a).id - dimensionByName(b).id);
  let bits = 0;
  const bitRanks: number[] = [];
  const slots: Slot[] = pending.map((p, rank) => {
    const dims = dimensionsOf(p);
    const bit = dims.length >= 2 ? bits++ : undefined;
    if (bit !== undefined) bitRanks.push(rank);
    if (bit === limits.maxMultiDimensionSlots) {
      overflow(rank, `hook ${hook} has more than ${limits.maxMultiDimensionSlots} rule alternatives that test two or more fields (the width of the kernel's rule mask); ` +
        `rules that test a single field (and no selector) do not count toward this limit (this rule is the first past it)`);
    }
    return {
      policy: p.policyIndex, rule: p.rule, alternative: p.alternative, action: p.ruleRef.action, verdict: p.verdict, severity: p.severity,
      ...(p.ruleRef.message !== undefined && { message: p.ruleRef.message }),
      dimensions: dims,
      ...(bit !== undefined && { bit }),
      ...(p.scopeKey && { scope: scopeKeys.indexOf(p.scopeKey) }),
      ...(p.userspaceCheck !== undefined && { userspaceCheck: p.userspaceCheck }),
    };
  });
  const always = slots.findIndex((s) => s.dimensions.length === 0);

  const dimensions: DimensionPlan[] = [];
  for (const dim of DIMENSIONS) {
    const constraining = slots.flatMap((s, rank) => (s.dimensions.includes(dim.name) ? [{ s, rank }] : []));
    if (!constraining.length) continue;
    const wildcardBits = slots.flatMap((s) => (s.bit !== undefined && !s.dimensions.includes(dim.name) ? [s.bit] : []));
    if (dim.kind === "workload") {
      dimensions.push(workloadDimension(dim.id, constraining, wildcardBits, scopes, nextId));
      continue;
    }
    const dimSlots: DimensionSlot[] = constraining.map(({ s, rank }) => ({
      rank, pred: pending[rank]!.conjunction.dims.get(dim.name) as Pred, acting: acts(s.verdict), ...(s.bit !== undefined && { bit: s.bit }),
    }));
    const built = buildDimension(dim, dimSlots, wildcardBits, nextId);
    if (built.entries.length > limits.maxEntriesPerDimension) {
      overflow(constraining.at(-1)!.rank, `hook ${hook}: dimension ${dim.name} needs ${built.entries.length} kernel map entries; the limit is ${limits.maxEntriesPerDimension}`);
    }
    dimensions.push(built);
  }
  return { hook, id: HOOK_IDS[hook], slots, alwaysRank: always < 0 ? null : always, bitRanks, dimensions };
}

/** The workload dimension's classes depend on the pods present: the plan gives each scope's contribution and the host's class. */
function workloadDimension(id: number, constraining: { s: Slot; rank: number }[], wildcardBits: number[], scopes: PlanScope[], nextId: () => number): DimensionPlan {
  const table = new ClassTable(nextId);
  const contribution = (filter: (s: Slot) => boolean) => {
    const chosen = constraining.filter(({ s }) => filter(s));
    return {
      singles: chosen.filter(({ s }) => s.bit === undefined).map(({ rank }) => rank),
      bits: chosen.flatMap(({ s }) => (s.bit === undefined ? [] : [s.bit])),
    };
  };
  const host = contribution((s) => scopes[s.scope!]!.host);
  const unknown = contribution((s) => acts(s.verdict));
  const scopeIds = [...new Set(constraining.map(({ s }) => s.scope!))].sort((a, b) => a - b);
  return {
    name: "workload",
    id,
    defaultClass: table.intern(host.singles, host.bits),
    unknownClass: table.intern(unknown.singles, unknown.bits),
    wildcardBits,
    classes: table.classes,
    entries: [],
    scopes: scopeIds.map((scope) => ({ scope, ...contribution((s) => s.scope === scope) })),
  };
}
