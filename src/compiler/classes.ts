// Turns the predicates that rules place on one dimension into LPM entries and classes.
// A class is what one lookup tells the kernel: the best single-dimension rule that holds
// and the mask bits of multi-dimension rules that hold. Every value whose longest
// registered prefix (or integer interval) is the same has the same class, so the kernel
// needs one entry per registered prefix, never one per rule.

import type { Dimension } from "../plan/dimensions.ts";
import type { ClassPlan, DimensionPlan, LpmEntry } from "../plan/types.ts";
import type { Prefix } from "../plan/keys.ts";
import { evaluatePred, literalKey, literalsOf, type Literal, type Pred } from "./predicate.ts";

export interface DimensionSlot {
  rank: number;
  pred: Pred;
  /** Mask bit when the slot constrains other dimensions too. */
  bit?: number;
  acting: boolean;
}

/** Hands out plan-wide class ids and keeps one class per distinct content within a dimension. */
export class ClassTable {
  readonly classes: ClassPlan[] = [];
  private readonly byKey = new Map<string, number>();
  private readonly nextId: () => number;

  constructor(nextId: () => number) {
    this.nextId = nextId;
  }

  intern(singles: number[], bits: number[]): number {
    const key = `${singles.join(",")}|${bits.join(",")}`;
    let id = this.byKey.get(key);
    if (id === undefined) {
      id = this.nextId();
      this.byKey.set(key, id);
      this.classes.push({ id, singles, bits });
    }
    return id;
  }
}

/** Tracks which slots hold as literals switch on and off, re-evaluating only the slots a literal touches. */
class Truth {
  private readonly on = new Set<string>();
  private readonly holds: boolean[];
  private readonly trueSingles = new Set<number>();
  private readonly trueBits = new Set<number>();
  private readonly slotsOfLiteral = new Map<string, number[]>();
  private readonly slots: readonly DimensionSlot[];

  constructor(slots: readonly DimensionSlot[], initiallyOn: Iterable<string>) {
    this.slots = slots;
    for (const k of initiallyOn) this.on.add(k);
    slots.forEach((s, i) => {
      for (const key of literalsOf(s.pred).keys()) this.slotsOfLiteral.set(key, [...(this.slotsOfLiteral.get(key) ?? []), i]);
    });
    this.holds = slots.map(() => false);
    slots.forEach((_, i) => this.update(i));
  }

  /** Switches a literal; returns a function that switches it back. */
  set(key: string, value: boolean): () => void {
    const was = this.on.has(key);
    if (was === value) return () => {};
    if (value) this.on.add(key);
    else this.on.delete(key);
    const touched = this.slotsOfLiteral.get(key) ?? [];
    for (const i of touched) this.update(i);
    return () => this.set(key, was);
  }

  private update(i: number): void {
    const slot = this.slots[i]!;
    const now = evaluatePred(slot.pred, (k) => this.on.has(k));
    if (now === this.holds[i]) return;
    this.holds[i] = now;
    const set = slot.bit === undefined ? this.trueSingles : this.trueBits;
    const member = slot.bit ?? slot.rank;
    if (now) set.add(member);
    else set.delete(member);
  }

  classIn(table: ClassTable): number {
    return table.intern(sorted(this.trueSingles), sorted(this.trueBits));
  }
}

const sorted = (xs: Iterable<number>) => [...xs].sort((a, b) => a - b);

function unknownClass(slots: readonly DimensionSlot[], table: ClassTable): number {
  const acting = slots.filter((s) => s.acting);
  return table.intern(
    sorted(acting.filter((s) => s.bit === undefined).map((s) => s.rank)),
    sorted(acting.flatMap((s) => (s.bit === undefined ? [] : [s.bit]))),
  );
}

function allLiterals(slots: readonly DimensionSlot[]): Map<string, Literal> {
  const all = new Map<string, Literal>();
  for (const s of slots) literalsOf(s.pred, all);
  return all;
}

export function buildDimension(dim: Dimension, slots: readonly DimensionSlot[], wildcardBits: number[], nextId: () => number): DimensionPlan {
  const table = new ClassTable(nextId);
  const built = dim.kind === "int" ? intervals(slots, table) : prefixes(slots, table);
  return {
    name: dim.name,
    id: dim.id,
    defaultClass: built.defaultClass,
    unknownClass: unknownClass(slots, table),
    wildcardBits,
    classes: table.classes,
    entries: built.entries,
  };
}

function compareBits(a: Prefix, b: Prefix): number {
  const n = Math.min(a.bits, b.bits);
  const whole = n >> 3;
  for (let i = 0; i < whole; i++) if (a.bytes[i] !== b.bytes[i]) return a.bytes[i]! - b.bytes[i]!;
  const rest = n & 7;
  if (rest) {
    const mask = (0xff << (8 - rest)) & 0xff;
    const d = (a.bytes[whole]! & mask) - (b.bytes[whole]! & mask);
    if (d) return d;
  }
  return a.bits - b.bits;
}

const isPrefixOf = (p: Prefix, of: Prefix) => p.bits <= of.bits && compareBits(p, { bytes: of.bytes, bits: p.bits }) === 0;

/** LPM dimensions: walk registered prefixes in trie order, keeping the ancestors' literals on. */
function prefixes(slots: readonly DimensionSlot[], table: ClassTable) {
  const literals = [...allLiterals(slots).values()].filter((l): l is Extract<Literal, { t: "prefix" }> => l.t === "prefix");
  const root = literals.filter((l) => l.prefix.bits === 0).map(literalKey);
  const truth = new Truth(slots, root);
  const defaultClass = truth.classIn(table);
  const entries: LpmEntry[] = [];
  const stack: { prefix: Prefix; undo: () => void; cls: number }[] = [];
  const ordered = literals.filter((l) => l.prefix.bits > 0).sort((a, b) => compareBits(a.prefix, b.prefix));
  for (const lit of ordered) {
    while (stack.length && !isPrefixOf(stack.at(-1)!.prefix, lit.prefix)) stack.pop()!.undo();
    const parentClass = stack.at(-1)?.cls ?? defaultClass;
    const undo = truth.set(literalKey(lit), true);
    const cls = truth.classIn(table);
    // An entry with its parent's class changes no lookup result: leave it out.
    if (cls !== parentClass) entries.push({ ...lit.display, class: cls } as LpmEntry);
    stack.push({ prefix: lit.prefix, undo, cls });
  }
  return { defaultClass, entries };
}

const U32_MAX = 0xffffffff;

/** Integer dimensions: sweep the number line; each interval between boundaries has one class. */
function intervals(slots: readonly DimensionSlot[], table: ClassTable) {
  const ranges = [...allLiterals(slots).values()].filter((l): l is Extract<Literal, { t: "range" }> => l.t === "range");
  const switches = new Map<number, { on: string[]; off: string[] }>();
  const at = (x: number) => switches.get(x) ?? (switches.set(x, { on: [], off: [] }), switches.get(x)!);
  for (const r of ranges) {
    at(r.lo).on.push(literalKey(r));
    if (r.hi < U32_MAX) at(r.hi + 1).off.push(literalKey(r));
  }
  at(0);
  const truth = new Truth(slots, []);
  const points = [...switches.keys()].sort((a, b) => a - b);
  const spans: { lo: number; hi: number; cls: number }[] = [];
  points.forEach((lo, i) => {
    const sw = switches.get(lo)!;
    for (const k of sw.off) truth.set(k, false);
    for (const k of sw.on) truth.set(k, true);
    const hi = i + 1 < points.length ? points[i + 1]! - 1 : U32_MAX;
    const cls = truth.classIn(table);
    const last = spans.at(-1);
    if (last && last.cls === cls) last.hi = hi;
    else spans.push({ lo, hi, cls });
  });
  // The class covering the most values becomes the default, so it needs no entries.
  const coverage = new Map<number, number>();
  for (const s of spans) coverage.set(s.cls, (coverage.get(s.cls) ?? 0) + (s.hi - s.lo + 1));
  const defaultClass = [...coverage].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]![0];
  const entries: LpmEntry[] = [];
  for (const s of spans) {
    if (s.cls === defaultClass) continue;
    for (const block of alignedBlocks(s.lo, s.hi)) entries.push({ ...block, class: s.cls });
  }
  return { defaultClass, entries };
}

/** The fewest aligned power-of-two blocks (LPM prefixes of a u32) that cover [lo, hi]. */
export function alignedBlocks(lo: number, hi: number): { value: number; prefixLength: number; range: string }[] {
  const blocks = [];
  let start = lo;
  while (start <= hi) {
    let size = 1;
    while (size <= U32_MAX && start % (size * 2) === 0 && start + size * 2 - 1 <= hi) size *= 2;
    blocks.push({ value: start, prefixLength: 32 - Math.log2(size), range: size === 1 ? `${start}` : `${start}-${start + size - 1}` });
    start += size;
  }
  return blocks;
}
