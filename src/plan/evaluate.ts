// The reference evaluator: decides an event from a plan exactly as the kernel does
// (one longest-prefix lookup per active dimension, then best single rank and mask AND),
// then applies the user-space checks the agent runs for audit rules the kernel
// over-approximates. Property tests hold this equal to evaluating the CEL directly.

import type { RuntimeEvent } from "../events/event.ts";
import { activation, fieldValue } from "../policy/fields.ts";
import { evaluateMatch } from "../policy/cel.ts";
import { parseIp } from "../policy/ip.ts";
import { selectorMatches } from "../policy/selector.ts";
import { dimensionByName } from "./dimensions.ts";
import { addrKey, intKey, prefixId, prefixKey, stringBytes, suffixKey } from "./keys.ts";
import type { ClassPlan, DimensionPlan, HookPlan, KernelPlan, LpmEntry, PlanScope, Slot } from "./types.ts";

export interface Decision {
  /** Rank of the winning slot in its hook. */
  rank: number;
  slot: Slot;
  policy: KernelPlan["policies"][number];
}

/** The kernel's own answer (before user-space checks) and the final decision. */
export interface Evaluation {
  kernelRank: number | null;
  decision: Decision | null;
}

export function decide(plan: KernelPlan, event: RuntimeEvent): Decision | null {
  return evaluate(plan, event).decision;
}

export function evaluate(plan: KernelPlan, event: RuntimeEvent): Evaluation {
  const hook = plan.hooks.find((h) => h.hook === event.hook);
  if (!hook) throw new Error(`plan has no hook ${event.hook}`);
  const candidates = new Set<number>(alwaysRanks(hook));
  // Per bit: in how many dimensions its test holds (or it is a wildcard); all of them = a match.
  const holds = new Uint16Array(hook.bitRanks.length);
  for (const dim of hook.dimensions) {
    const cls = classOf(plan, dim, event);
    for (const r of cls.singles) candidates.add(r);
    for (const b of cls.bits) holds[b]!++;
    for (const b of dim.wildcardBits) holds[b]!++;
  }
  holds.forEach((n, b) => n === hook.dimensions.length && candidates.add(hook.bitRanks[b]!));
  const ordered = [...candidates].sort((a, b) => a - b);
  const kernelRank = ordered[0] ?? null;
  for (const rank of ordered) {
    const slot = hook.slots[rank]!;
    if (slot.userspaceCheck === undefined || evaluateMatch(hook.hook, slot.userspaceCheck, activation(event))) {
      return { kernelRank, decision: { rank, slot, policy: plan.policies[slot.policy]! } };
    }
  }
  return { kernelRank, decision: null };
}

/** Ranks of the slots that constrain no dimension (they match every event), computed once per hook. */
const alwaysByHook = new WeakMap<HookPlan, number[]>();
function alwaysRanks(hook: HookPlan): number[] {
  let ranks = alwaysByHook.get(hook);
  if (!ranks) alwaysByHook.set(hook, (ranks = hook.slots.flatMap((s, rank) => (s.dimensions.length === 0 ? [rank] : []))));
  return ranks;
}

const classesByDimension = new WeakMap<DimensionPlan, Map<number, ClassPlan>>();
function classById(dim: DimensionPlan, id: number): ClassPlan {
  let byId = classesByDimension.get(dim);
  if (!byId) classesByDimension.set(dim, (byId = new Map(dim.classes.map((c) => [c.id, c]))));
  return byId.get(id)!;
}

function classOf(plan: KernelPlan, dim: DimensionPlan, event: RuntimeEvent): ClassPlan {
  const byId = (id: number) => classById(dim, id);
  if (dim.name === "workload") return workloadClass(plan, dim, event);
  const key = lookupKey(dim, event);
  if (!key) return byId(dim.unknownClass);
  const id = longestPrefixMatch(lpmIndex(dim), key);
  return byId(id ?? dim.defaultClass);
}

/** Scopes are decided in user space; a workload's class is the union of its scopes' contributions. */
function workloadClass(plan: KernelPlan, dim: DimensionPlan, event: RuntimeEvent): ClassPlan {
  if (!event.k8s?.namespace) return classById(dim, dim.defaultClass);
  const singles = new Set<number>();
  const bits = new Set<number>();
  for (const contribution of dim.scopes ?? []) {
    if (!scopeContains(plan.scopes[contribution.scope]!, event)) continue;
    contribution.singles.forEach((r) => singles.add(r));
    contribution.bits.forEach((b) => bits.add(b));
  }
  return { id: -1, singles: [...singles].sort((a, b) => a - b), bits: [...bits] };
}

export function scopeContains(scope: PlanScope, event: RuntimeEvent): boolean {
  const k = event.k8s;
  if (!k?.namespace) return scope.host;
  if (scope.namespace !== undefined && scope.namespace !== k.namespace) return false;
  if (scope.namespaceSelector && !selectorMatches(scope.namespaceSelector, k.namespaceLabels ?? {})) return false;
  if (scope.podSelector && !selectorMatches(scope.podSelector, k.labels ?? {})) return false;
  return scope.expression === undefined || evaluateMatch("process.exec", scope.expression, activation(event));
}

function lookupKey(dim: DimensionPlan, event: RuntimeEvent): Uint8Array | undefined {
  const spec = dimensionByName(dim.name);
  const value = fieldValue(event, spec.field);
  if (value === undefined) return undefined;
  switch (spec.kind) {
    case "prefix": return prefixKey(String(value));
    case "suffix": return suffixKey(String(value));
    case "int": return intKey(spec.values ? (spec.values[String(value)] ?? 0) : Number(value));
    case "addr": {
      const ip = parseIp(String(value));
      return ip && addrKey(ip);
    }
    default: return undefined;
  }
}

/** Entries of a dimension grouped by prefix length, so a lookup tries each length once. */
type LpmIndex = { lengths: number[]; byLength: Map<number, Map<string, number>> };
const indexes = new WeakMap<DimensionPlan, LpmIndex>();

function lpmIndex(dim: DimensionPlan): LpmIndex {
  let index = indexes.get(dim);
  if (index) return index;
  const byLength = new Map<number, Map<string, number>>();
  for (const e of dim.entries) {
    const { bytes, bits } = entryPrefix(e);
    if (!byLength.has(bits)) byLength.set(bits, new Map());
    byLength.get(bits)!.set(prefixId(bytes, bits), e.class);
  }
  index = { lengths: [...byLength.keys()].sort((a, b) => b - a), byLength };
  indexes.set(dim, index);
  return index;
}

function longestPrefixMatch(index: LpmIndex, key: Uint8Array): number | undefined {
  for (const bits of index.lengths) {
    const hit = index.byLength.get(bits)!.get(prefixId(key, bits));
    if (hit !== undefined) return hit;
  }
  return undefined;
}

/** The key bits an entry stands for (the enforcer writes the same bits into the LPM map). */
export function entryPrefix(e: LpmEntry): { bytes: Uint8Array; bits: number } {
  if ("text" in e) {
    const text = stringBytes(e.text);
    if (!e.exact) return { bytes: text, bits: text.length * 8 };
    const bytes = new Uint8Array(text.length + 1); // the NUL that ends an exact value
    bytes.set(text);
    return { bytes, bits: bytes.length * 8 };
  }
  if ("suffix" in e) {
    const bytes = stringBytes(e.suffix).reverse();
    return { bytes, bits: bytes.length * 8 };
  }
  if ("value" in e) return { bytes: intKey(e.value), bits: e.prefixLength };
  const [address, length] = e.cidr.split("/");
  const ip = parseIp(address!)!;
  return { bytes: addrKey(ip), bits: 8 + Number(length) };
}
