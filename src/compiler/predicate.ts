// A predicate over one dimension's value, built from literals the kernel can answer
// with one LPM lookup: "the key starts with these bits" or "the integer is in [lo, hi]".

import { prefixId, type Prefix } from "../plan/keys.ts";

export type Literal =
  | { t: "prefix"; prefix: Prefix; display: LiteralDisplay }
  | { t: "range"; lo: number; hi: number }
  /** A CEL test on k8s.* (workload dimension), decided in user space per workload. */
  | { t: "cel"; cel: string };

/** How an entry registered for a prefix literal is shown in the plan. */
export type LiteralDisplay = { text: string; exact: boolean } | { suffix: string } | { cidr: string };

export type Pred =
  | { t: "const"; value: boolean }
  | { t: "lit"; literal: Literal }
  | { t: "not"; x: Pred }
  | { t: "and" | "or"; xs: Pred[] };

export const TRUE: Pred = { t: "const", value: true };
export const FALSE: Pred = { t: "const", value: false };

export function literalKey(l: Literal): string {
  if (l.t === "prefix") return prefixId(l.prefix.bytes, l.prefix.bits);
  return l.t === "range" ? `${l.lo}-${l.hi}` : `cel:${l.cel}`;
}

export function not(x: Pred): Pred {
  if (x.t === "const") return { t: "const", value: !x.value };
  if (x.t === "not") return x.x;
  return { t: "not", x };
}

export function combine(op: "and" | "or", xs: Pred[]): Pred {
  const absorbing = op === "or";
  const flat: Pred[] = [];
  for (const x of xs) {
    if (x.t === "const") {
      if (x.value === absorbing) return x;
      continue;
    }
    if (x.t === op) flat.push(...x.xs);
    else flat.push(x);
  }
  if (flat.length === 0) return { t: "const", value: !absorbing };
  return flat.length === 1 ? flat[0]! : { t: op, xs: flat };
}

export function evaluatePred(p: Pred, isTrue: (key: string) => boolean): boolean {
  switch (p.t) {
    case "const": return p.value;
    case "lit": return isTrue(literalKey(p.literal));
    case "not": return !evaluatePred(p.x, isTrue);
    case "and": return p.xs.every((x) => evaluatePred(x, isTrue));
    case "or": return p.xs.some((x) => evaluatePred(x, isTrue));
  }
}

export function literalsOf(p: Pred, out: Map<string, Literal> = new Map()): Map<string, Literal> {
  if (p.t === "lit") out.set(literalKey(p.literal), p.literal);
  else if (p.t === "not") literalsOf(p.x, out);
  else if (p.t === "and" || p.t === "or") for (const x of p.xs) literalsOf(x, out);
  return out;
}

/**
 * Whether a predicate holds for no value, every value, or some. Exact: a value's truth
 * depends only on which of the predicate's literals hold, and those sets are realised by
 * the literals themselves (each prefix taken as a value), the empty key, and range bounds.
 */
const MAX_ENUMERATED_TESTS = 10;

export function satisfiability(p: Pred): "never" | "always" | "sometimes" {
  if (p.t === "const") return p.value ? "always" : "never";
  const literals = [...literalsOf(p).values()];
  const prefixes = literals.flatMap((l) => (l.t === "prefix" ? [l] : []));
  const ranges = literals.flatMap((l) => (l.t === "range" ? [l] : []));
  const tests = literals.flatMap((l) => (l.t === "cel" ? [literalKey(l)] : []));
  const assignments: ((key: string) => boolean)[] = [];
  if (tests.length) {
    // CEL tests are treated as independent booleans: sound, if blind to "a == 1 && a == 2".
    if (tests.length > MAX_ENUMERATED_TESTS) return "sometimes";
    for (let bits = 0; bits < 1 << tests.length; bits++) assignments.push((k) => ((bits >> tests.indexOf(k)) & 1) === 1);
  } else if (prefixes.length) {
    const points = [{ bytes: new Uint8Array(0), bits: 0 }, ...prefixes.map((l) => l.prefix)];
    for (const point of points) {
      const on = new Set(prefixes.filter((l) => isPrefix(l.prefix, point)).map(literalKey));
      assignments.push((k) => on.has(k));
    }
  } else {
    const points = new Set([0, ...ranges.flatMap((r) => [r.lo, r.hi + 1])]);
    for (const x of points) {
      const on = new Set(ranges.filter((r) => r.lo <= x && x <= r.hi).map(literalKey));
      assignments.push((k) => on.has(k));
    }
  }
  const results = new Set(assignments.map((a) => evaluatePred(p, a)));
  return results.size === 2 ? "sometimes" : results.has(true) ? "always" : "never";
}

function isPrefix(p: { bytes: Uint8Array; bits: number }, of: { bytes: Uint8Array; bits: number }): boolean {
  if (p.bits > of.bits) return false;
  for (let bit = 0; bit < p.bits; bit += 8) {
    const width = Math.min(8, p.bits - bit);
    const mask = (0xff << (8 - width)) & 0xff;
    if ((p.bytes[bit >> 3]! & mask) !== (of.bytes[bit >> 3]! & mask)) return false;
  }
  return true;
}

/** A stable text for a predicate, to group equal ones. */
export function predKey(p: Pred): string {
  switch (p.t) {
    case "const": return String(p.value);
    case "lit": return literalKey(p.literal);
    case "not": return `!${predKey(p.x)}`;
    default: return `${p.t}(${p.xs.map(predKey).join(",")})`;
  }
}

/** CEL text of a predicate over k8s tests. */
export function predToCel(p: Pred): string {
  switch (p.t) {
    case "const": return String(p.value);
    case "lit": return p.literal.t === "cel" ? p.literal.cel : "false";
    case "not": return `!(${predToCel(p.x)})`;
    default: return p.xs.map((x) => `(${predToCel(x)})`).join(p.t === "and" ? " && " : " || ");
  }
}
