// A model of the kernel's decision, step for step as bpf/lsm/common.bpf.h does it, over
// the bytes the encoder produced (a GenerationImage). It exists to test the encoder
// against the reference evaluator (src/plan/evaluate.ts) without a kernel: same keys
// (src/plan/keys.ts builds what the BPF code builds), same longest-prefix semantics,
// same class arithmetic.

import type { RuntimeEvent } from "../events/event.ts";
import { basename, dirname, NET_FAMILIES, NET_PROTOCOLS } from "../policy/fields.ts";
import { parseIp } from "../policy/ip.ts";
import { HOOK_IDS } from "../plan/dimensions.ts";
import { addrKey as planAddrKey, intKey as planIntKey, prefixKey, suffixKey } from "../plan/keys.ts";
import {
  addrKey, bitRankIndex, classIndex, DIMS, hookIndex, intKey, NONE, readU32, STR_BYTES, strSlot, unpackClass, unpackHook,
  verdictIndex, WORKLOAD_DEPTH, type ClassValue, type HookValue, type Records,
} from "./abi.ts";
import type { GenerationImage } from "./encode.ts";

/** Fields whose path the kernel could not resolve (they take the dimension's unknown class). */
export type Unresolved = Partial<Record<"binary" | "parent" | "file", boolean>>;

export interface ModelDecision {
  rank: number;
  verdict: number;
}

interface Lpm {
  entries: { bits: number; key: Uint8Array }[];
  values: number[];
}

function bitsEqual(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (a[i] !== b[i]) return false;
  const rest = bits & 7;
  if (!rest) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((a[whole] ?? 0) & mask) === ((b[whole] ?? 0) & mask);
}

/** Longest-prefix match over LPM records (prefixlen in the first 4 bytes, data after). */
function lpm(records: Records): Lpm {
  const entries: Lpm["entries"] = [];
  const values: number[] = [];
  for (const [k, v] of records.entries()) {
    entries.push({ bits: readU32(k, 0), key: k.subarray(4) });
    values.push(readU32(v));
  }
  return { entries, values };
}

function lpmLookup(t: Lpm, data: Uint8Array): number | undefined {
  let best = -1;
  let value: number | undefined;
  t.entries.forEach((e, i) => {
    if (e.bits > best && bitsEqual(e.key, data, e.bits)) {
      best = e.bits;
      value = t.values[i];
    }
  });
  return value;
}

export class KernelModel {
  private readonly gen: number;
  private readonly hooks = new Map<number, HookValue>();
  private readonly classes = new Map<number, ClassValue>();
  private readonly bitRanks = new Map<number, number>();
  private readonly verdicts = new Map<number, number>();
  private readonly strTries = new Map<number, Lpm>();
  private readonly ints: Lpm;
  private readonly addrs: Lpm;
  /** "cgroup id/hook" -> class */
  private readonly workloads = new Map<string, number>();
  private cgroups: readonly bigint[] = [];

  constructor(image: GenerationImage) {
    this.gen = image.gen;
    for (const [k, v] of image.hooks.entries()) this.hooks.set(readU32(k), unpackHook(v));
    for (const [k, v] of image.classes.entries()) this.classes.set(readU32(k), unpackClass(v));
    for (const [k, v] of image.bitRanks.entries()) this.bitRanks.set(readU32(k), readU32(v));
    for (const [k, v] of image.verdicts.entries()) this.verdicts.set(readU32(k), v[0]!);
    for (const t of image.strTries) this.strTries.set(t.slot, lpm(t.entries));
    this.ints = lpm(image.ints);
    this.addrs = lpm(image.addrs);
    for (const [k, v] of image.workloads.entries()) {
      const key = new DataView(k.buffer, k.byteOffset, k.byteLength);
      this.workloads.set(`${key.getBigUint64(0, true)}/${k[9]}`, readU32(v));
    }
  }

  /**
   * The kernel's answer for an event. `cgroups` is the process's cgroup and its ancestors,
   * nearest first (without the root); the default is the event's own cgroup alone.
   */
  decide(event: RuntimeEvent, unresolved: Unresolved = {}, cgroups?: readonly bigint[]): ModelDecision | null {
    this.cgroups = cgroups ?? (event.process.cgroupId === undefined ? [] : [BigInt(event.process.cgroupId)]);
    const hook = HOOK_IDS[event.hook];
    const hk = this.hooks.get(hookIndex(this.gen, hook));
    if (!hk || (hk.dims === 0 && hk.alwaysRank === NONE)) return null;
    let best = hk.alwaysRank;
    const words = Math.min(hk.bitWords, 16);
    const acc = Array.from({ length: words }, () => (1n << 64n) - 1n);
    for (let d = 0; d < DIMS; d++) {
      if (!(hk.dims & (1 << d))) continue;
      const cls = this.classOf(hk, hook, d, event, unresolved);
      const c = this.classes.get(classIndex(this.gen, cls));
      if (!c) throw new Error(`model: class ${cls} of dimension ${d} has no entry`);
      if (c.bestSingle < best) best = c.bestSingle;
      for (let w = 0; w < words; w++) acc[w]! &= c.bits[w]!;
    }
    for (let w = 0; w < words; w++) {
      const x = acc[w]!;
      if (!x) continue;
      let bit = 0;
      while (!((x >> BigInt(bit)) & 1n)) bit++;
      const rank = this.bitRanks.get(bitRankIndex(this.gen, hook, w * 64 + bit));
      if (rank === undefined) throw new Error(`model: bit ${w * 64 + bit} has no rank`);
      if (rank < best) best = rank;
      break;
    }
    if (best === NONE) return null;
    return { rank: best, verdict: this.verdicts.get(verdictIndex(this.gen, hook, best)) ?? 0 };
  }

  private classOf(hk: HookValue, hook: number, d: number, event: RuntimeEvent, unresolved: Unresolved): number {
    const unknown = hk.unknownClass[d]!;
    const fallback = hk.defaultClass[d]!;
    if (d < 14) {
      const source = d < 4 ? "binary" : d < 8 ? "parent" : "file";
      if (unresolved[source]) return unknown;
      const path = source === "binary" ? event.process.binary : source === "parent" ? (event.parent?.binary ?? "") : event.file?.path;
      if (path === undefined) return unknown;
      const field = (d >> 1) & 3; // 0 binary/parent path, 1 name (for 8..13: 0 path, 1 name, 2 dir)
      let value: string;
      if (d < 8) value = field === 0 || field === 2 ? path : basename(path);
      else value = d < 10 ? path : d < 12 ? basename(path) : dirname(path);
      const data = d % 2 === 0 ? prefixKey(value) : suffixKey(value);
      const trie = this.strTries.get(strSlot(this.gen, hook, d));
      if (!trie) return fallback;
      return lpmLookup(trie, data.subarray(0, STR_BYTES)) ?? fallback;
    }
    if (d < 20) {
      let v: number;
      switch (d) {
        case 14: v = event.process.uid; break;
        case 15: v = event.process.gid ?? 0; break;
        case 16: v = event.process.pid; break;
        case 17: v = event.net?.dport ?? 0; break;
        case 18: v = event.net ? NET_FAMILIES[event.net.family] : 0; break;
        default: v = event.net ? NET_PROTOCOLS[event.net.protocol] : 0; break;
      }
      const key = intKey(this.gen, hook, d, 32, planIntKey(v));
      return lpmLookup(this.ints, key.subarray(4)) ?? fallback;
    }
    if (d === 20) {
      const ip = event.net && parseIp(event.net.daddr);
      if (!ip) return unknown;
      const key = addrKey(this.gen, hook, d, 8 + 128, planAddrKey(ip));
      return lpmLookup(this.addrs, key.subarray(4)) ?? fallback;
    }
    // workload: the process's own cgroup or its nearest classified ancestor
    for (const id of this.cgroups.slice(0, 1 + WORKLOAD_DEPTH)) {
      const cls = this.workloads.get(`${id}/${hook}`);
      if (cls !== undefined) return cls === NONE ? fallback : cls;
    }
    return fallback;
  }
}
