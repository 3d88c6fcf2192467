// Rule conditions as boolean formulas over two kinds of atoms, and their normal form.
//  - dim: a predicate on one dimension: one kernel lookup answers it, whatever its shape
//    (the workload dimension's tests are k8s.* CEL, decided per workload in user space);
//  - residual: anything else; only audit/monitor rules may have it (checked in user space).

import type { ASTNode } from "@marcbachmann/cel-js";
import { combine, not as notPred, predKey, satisfiability, type Pred } from "./predicate.ts";

export type Atom = { t: "dim"; dimension: string; pred: Pred } | { t: "residual"; node: ASTNode; reason: string };

export type Formula = { t: "const"; value: boolean } | { t: "atom"; atom: Atom } | { t: "not"; x: Formula } | { t: "and" | "or"; xs: Formula[] };

export const atom = (a: Atom): Formula => ({ t: "atom", atom: a });

/**
 * Conjunction of atoms, at most one per dimension. Residual atoms count as
 * true here (the kernel over-approximates); `userspace` records that one was dropped, so
 * the agent must confirm with the rule's full CEL.
 */
export interface Conjunction {
  dims: Map<string, Pred>;
  userspace: boolean;
}

/** Every residual atom of a formula, for reporting them in rules that must be decided in the kernel. */
export function residualsOf(f: Formula): Extract<Atom, { t: "residual" }>[] {
  if (f.t === "atom") return f.atom.t === "residual" ? [f.atom] : [];
  if (f.t === "not") return residualsOf(f.x);
  if (f.t === "and" || f.t === "or") return f.xs.flatMap(residualsOf);
  return [];
}

export class TooManyAlternatives extends Error {}

/** Negation normal form then disjunctive normal form, merging atoms of the same dimension. */
export function normalForm(f: Formula, maxAlternatives: number): Conjunction[] {
  const conjunctions = dnf(f, false, maxAlternatives);
  const seen = new Set<string>();
  return conjunctions.filter((c) => {
    const key = conjunctionKey(c);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function dnf(f: Formula, negated: boolean, max: number): Conjunction[] {
  switch (f.t) {
    case "const":
      return f.value !== negated ? [{ dims: new Map(), userspace: false }] : [];
    case "not":
      return dnf(f.x, !negated, max);
    case "atom": {
      const a = negated ? negateAtom(f.atom) : f.atom;
      const sat = a.t === "dim" ? satisfiability(a.pred) : "sometimes";
      if (sat !== "sometimes") return sat === "always" ? [{ dims: new Map(), userspace: false }] : [];
      return [conjunctionOf(a)];
    }
    case "and":
    case "or": {
      const isAnd = (f.t === "and") !== negated;
      const parts = f.xs.map((x) => dnf(x, negated, max));
      if (!isAnd) return bounded(merge(parts.flat()), max);
      let acc: Conjunction[] = [{ dims: new Map(), userspace: false }];
      for (const part of parts) {
        const next: Conjunction[] = [];
        for (const a of acc) for (const b of part) {
          const c = conjoin(a, b);
          if (c) next.push(c);
        }
        acc = bounded(merge(next), max);
      }
      return acc;
    }
  }
}

function negateAtom(a: Atom): Atom {
  return a.t === "dim" ? { ...a, pred: notPred(a.pred) } : a;
}

function bounded(cs: Conjunction[], max: number): Conjunction[] {
  if (cs.length > max) throw new TooManyAlternatives();
  return cs;
}

/**
 * Merges alternatives that differ in one dimension only (A∧x ∨ A∧y = A∧(x∨y)), dropping
 * dimensions whose merged test always holds, until nothing merges: keeps normal forms small.
 */
function merge(cs: Conjunction[]): Conjunction[] {
  let current = cs;
  for (let changed = true; changed; ) {
    changed = false;
    const dims = new Set(current.flatMap((c) => [...c.dims.keys()]));
    for (const d of dims) {
      const groups = new Map<string, Conjunction[]>();
      for (const c of current) {
        const key = conjunctionKey(c, d);
        groups.set(key, [...(groups.get(key) ?? []), c]);
      }
      if (groups.size === current.length) continue;
      changed = true;
      current = [...groups.values()].map((group) => {
        // Keys record which dimensions are present: a group either all tests d or is duplicates.
        if (group.length === 1 || !group[0]!.dims.has(d)) return group[0]!;
        const merged = combine("or", group.map((c) => c.dims.get(d)!));
        const dimsOut = new Map(group[0]!.dims);
        if (satisfiability(merged) === "always") dimsOut.delete(d);
        else dimsOut.set(d, merged);
        return { ...group[0]!, dims: dimsOut };
      });
    }
  }
  return current;
}

function conjunctionOf(a: Atom): Conjunction {
  if (a.t === "dim") return { dims: new Map([[a.dimension, a.pred]]), userspace: false };
  return { dims: new Map(), userspace: true };
}

/** a ∧ b, or null when some dimension's combined test can never hold. */
function conjoin(a: Conjunction, b: Conjunction): Conjunction | null {
  const dims = new Map(a.dims);
  for (const [d, p] of b.dims) {
    const both = dims.has(d) ? combine("and", [dims.get(d)!, p]) : p;
    const sat = satisfiability(both);
    if (sat === "never") return null;
    if (sat === "always") dims.delete(d);
    else dims.set(d, both);
  }
  return { dims, userspace: a.userspace || b.userspace };
}

/** Identity of a conjunction, optionally ignoring one dimension's test (but not whether it has one). */
function conjunctionKey(c: Conjunction, ignoring?: string): string {
  const dims = [...c.dims].sort(([a], [b]) => (a < b ? -1 : 1)).map(([d, p]) => `${d}=${d === ignoring ? "*" : predKey(p)}`);
  return JSON.stringify([dims, c.userspace]);
}

/** Folds constants and merges siblings that test the same dimension into one atom. */
export function simplify(f: Formula): Formula {
  if (f.t === "not") {
    const x = simplify(f.x);
    if (x.t === "const") return { t: "const", value: !x.value };
    if (x.t === "atom" && x.atom.t !== "residual") return atom(negateAtom(x.atom));
    return { t: "not", x };
  }
  if (f.t !== "and" && f.t !== "or") return f;
  const absorbing = f.t === "or";
  const byDimension = new Map<string, Pred[]>();
  const rest: Formula[] = [];
  for (const x of f.xs.map(simplify)) {
    if (x.t === "const") {
      if (x.value === absorbing) return x;
    } else if (x.t === "atom" && x.atom.t === "dim") {
      byDimension.set(x.atom.dimension, [...(byDimension.get(x.atom.dimension) ?? []), x.atom.pred]);
    } else rest.push(x);
  }
  const merged: Formula[] = [...byDimension].map(([dimension, preds]) => atom({ t: "dim", dimension, pred: combine(f.t as "and" | "or", preds) }));
  const xs = [...merged, ...rest];
  if (xs.length === 0) return { t: "const", value: !absorbing };
  return xs.length === 1 ? xs[0]! : { t: f.t, xs };
}
