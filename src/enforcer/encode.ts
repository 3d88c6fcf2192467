// The encoder: a KernelPlan becomes the map entries of one generation of the kernel ABI
// (bpf/lsm/abi.h, docs/kernel-abi.md). Pure: no I/O. The enforcer writes the result into
// the inactive generation, then flips. Whatever the plan cannot fit is refused here, with
// a message, before anything is written.

import type { Capabilities } from "../compiler/index.ts";
import type { KubernetesInfo } from "../events/event.ts";
import { DIMENSIONS, dimensionByName, HOOK_IDS } from "../plan/dimensions.ts";
import { entryPrefix, scopeContains } from "../plan/evaluate.ts";
import type { HookPlan, KernelPlan, Slot } from "../plan/types.ts";
import {
  ALIAS_SIZE, INODE_KEY_SIZE, inodeKey, packAlias, type FileIdentity,
  ADDR_KEY_SIZE, bitRankIndex, CLASS_SIZE, classIndex, HOOK_SIZE, hookIndex, INT_KEY_SIZE, MAX_BITS,
  MAX_CLASSES, MAX_LPM_ENTRIES, MAX_RANKS, NONE, packClassBits, packHook, Records, STR_DIMS, STR_KEY_SIZE, strKey, strSlot,
  u32, V_AUDIT, V_DENY, V_KILL, V_MONITOR, V_USERSPACE, addrKey, intKey, verdictIndex, WORKLOAD_KEY_SIZE, workloadKey,
  HOOKS,
} from "./abi.ts";

export type { Capabilities } from "../compiler/index.ts";

/**
 * What the tracepoint backend can do per hook (the compiler's format): exec and open have
 * already happened when the program runs, so they can only kill; connect has a cgroup hook
 * that fails the call. The probe confirms this per kernel (src/enforcer/probe.ts).
 */
export const TRACEPOINT_CAPABILITIES: Capabilities = {
  "process.exec": ["kill"],
  "file.open": ["kill"],
  "net.connect": ["deny", "kill"],
};

export class EncodeError extends Error {
  override name = "EncodeError";
}

export interface StrTrie {
  slot: number;
  hook: number;
  dim: number;
  entries: Records;
}

/** Everything one generation holds. Records are in the exact byte layout of the maps. */
export interface GenerationImage {
  gen: 0 | 1;
  digest: string;
  hooks: Records;
  classes: Records;
  bitRanks: Records;
  verdicts: Records;
  strTries: StrTrie[];
  ints: Records;
  addrs: Records;
  /** Inodes of files rules name exactly -> that name (hard links are decided under it). */
  inodes: Records;
  /** The same, readable: "ino:dev" -> path. */
  aliases: Map<string, string>;
  /** Classified cgroups: (cgroup id, hook) -> class (pal_workloads). Their classes are in `classes`. */
  workloads: Records;
  /** The class ids the workloads use, for later changes to this generation's workloads. */
  workloadClasses: WorkloadClasses;
}

/**
 * A pod (or container) the controller found on this node, by the fields of `event.k8s`.
 * Labels and namespace labels decide selectors; events report the other fields.
 */
export type Workload = KubernetesInfo;

/** pal_workloads entries per generation: the map holds 65536 for both generations. */
const MAX_WORKLOAD_ENTRIES = 32768;

/**
 * The classes of one generation's workload dimension. A workload's class on a hook is the
 * union of what the scopes it is in contribute, so classes exist per distinct union, not
 * per workload: ids are allocated above the plan's own, once per distinct value, and never
 * reused for another value while the generation is active (a program may hold the id).
 */
export class WorkloadClasses {
  private readonly ids: Map<string, number>;
  private next: number;
  /** Class ids the plan itself uses (0 to this, exclusive). */
  private readonly planClasses: number;

  private constructor(planClasses: number, ids: Map<string, number>, next: number) {
    this.planClasses = planClasses;
    this.ids = ids;
    this.next = next;
  }

  /** None allocated yet, for a generation holding `plan`. */
  static forPlan(plan: KernelPlan): WorkloadClasses {
    let max = -1;
    for (const hook of plan.hooks) for (const dim of hook.dimensions) for (const c of dim.classes) max = Math.max(max, c.id);
    return new WorkloadClasses(max + 1, new Map(), max + 1);
  }

  /** A copy to allocate into, kept only once what it allocated is written. */
  clone(): WorkloadClasses {
    return new WorkloadClasses(this.planClasses, new Map(this.ids), this.next);
  }

  /** The id of a class value; a new one is added to `fresh`, to be written before any entry names it. */
  idOf(gen: 0 | 1, value: Uint8Array, fresh: Records): number {
    const key = Buffer.from(value).toString("hex");
    let id = this.ids.get(key);
    if (id === undefined) {
      if (this.next >= MAX_CLASSES) {
        throw new EncodeError(`the workloads on this node need more classes than the kernel holds: the plan uses ${this.planClasses}, ` +
          `workloads ${this.ids.size} distinct combinations of scopes, the limit is ${MAX_CLASSES} per generation`);
      }
      id = this.next++;
      this.ids.set(key, id);
      fresh.addAt(classIndex(gen, id), value);
    }
    return id;
  }
}

/** The workload entries of `plan` for one generation; classes new to `table` go into `classes`. */
export function encodeWorkloads(plan: KernelPlan, gen: 0 | 1, workloads: ReadonlyMap<bigint, Workload>, table: WorkloadClasses, classes: Records): Records {
  if (workloads.size * HOOKS > MAX_WORKLOAD_ENTRIES) {
    throw new EncodeError(`${workloads.size} classified cgroups need ${workloads.size * HOOKS} workload entries; ` +
      `the kernel holds ${MAX_WORKLOAD_ENTRIES} per generation (${Math.floor(MAX_WORKLOAD_ENTRIES / HOOKS)} cgroups)`);
  }
  const entries = new Records(WORKLOAD_KEY_SIZE, 4);
  const hooks = plan.hooks.map((hook) => ({ id: HOOK_IDS[hook.hook], dim: hook.dimensions.find((d) => d.name === "workload") }));
  for (const [cgroupId, workload] of workloads) {
    const event = { hook: "process.exec" as const, process: { pid: 0, uid: 0, binary: "" }, k8s: workload };
    const inScope = plan.scopes.map((scope) => scopeContains(scope, event));
    for (const { id, dim } of hooks) {
      // A hook without scoped rules still gets the entry: it names the workload in events.
      let cls = NONE;
      if (dim) {
        let best = NONE;
        const bits = new Set(dim.wildcardBits);
        for (const c of dim.scopes ?? []) {
          if (!inScope[c.scope]) continue;
          for (const r of c.singles) best = Math.min(best, r);
          for (const b of c.bits) bits.add(b);
        }
        cls = table.idOf(gen, packClassBits(best, bits), classes);
      }
      entries.add(workloadKey(gen, id, cgroupId), u32(cls));
    }
  }
  return entries;
}

/** The kernel verdict byte of a slot: what the kernel does, plus whether user space must confirm. */
export function verdictByte(slot: Slot): number {
  let v: number;
  switch (slot.verdict) {
    case "killed": v = V_KILL; break;
    case "denied": v = V_DENY; break;
    case "monitor": v = V_MONITOR; break;
    case "audited": v = V_AUDIT; break;
  }
  return slot.userspaceCheck !== undefined ? v | V_USERSPACE : v;
}

export interface EncodeOptions {
  /**
   * The identity of a file a rule names exactly (lstat; regular files only), or undefined.
   * Without it, hard links are matched by their own path only.
   */
  identify?: (path: string) => FileIdentity | undefined;
  /** Classified cgroups (cgroup v2 id -> workload) on this node. */
  workloads?: ReadonlyMap<bigint, Workload>;
}

/** Dimensions whose exact values name files: a hard link to one of them is decided under the rule's name. */
const IDENTITY_DIMENSIONS = new Set(["process.binary", "file.path"]);

export function encodeGeneration(plan: KernelPlan, gen: 0 | 1, capabilities?: Capabilities, options: EncodeOptions = {}): GenerationImage {
  const image: GenerationImage = {
    gen,
    digest: plan.digest,
    hooks: new Records(4, HOOK_SIZE),
    classes: new Records(4, CLASS_SIZE),
    bitRanks: new Records(4, 4),
    verdicts: new Records(4, 1),
    strTries: [],
    ints: new Records(INT_KEY_SIZE, 4),
    addrs: new Records(ADDR_KEY_SIZE, 4),
    inodes: new Records(INODE_KEY_SIZE, ALIAS_SIZE),
    aliases: new Map(),
    workloads: new Records(WORKLOAD_KEY_SIZE, 4),
    workloadClasses: WorkloadClasses.forPlan(plan),
  };
  const seenClasses = new Set<number>();
  for (const hook of plan.hooks) encodeHook(hook, gen, capabilities?.[hook.hook], image, seenClasses);
  if (options.identify) encodeIdentities(plan, gen, options.identify, image);
  if (options.workloads) image.workloads = encodeWorkloads(plan, gen, options.workloads, image.workloadClasses, image.classes);
  if (image.ints.count > MAX_LPM_ENTRIES / 2 || image.addrs.count > MAX_LPM_ENTRIES / 2) {
    throw new EncodeError(`the plan needs ${Math.max(image.ints.count, image.addrs.count)} integer or address entries; ` +
      `the kernel holds ${MAX_LPM_ENTRIES / 2} per generation`);
  }
  return image;
}

function encodeHook(hook: HookPlan, gen: 0 | 1, can: readonly ("deny" | "kill")[] | undefined, image: GenerationImage, seenClasses: Set<number>): void {
  const hookId = HOOK_IDS[hook.hook];
  if (hook.id !== hookId) throw new EncodeError(`hook ${hook.hook} has id ${hook.id}; this enforcer knows it as ${hookId}`);
  if (hook.slots.length > MAX_RANKS) {
    throw new EncodeError(`hook ${hook.hook} has ${hook.slots.length} rule alternatives; the kernel holds ${MAX_RANKS}`);
  }
  // An action is never silently changed: a plan compiled for a kernel that can deny here
  // is refused on one that cannot (the compiler turns deny into kill only with `fallback: kill`).
  for (const [what, verdict] of [["deny", "denied"], ["kill", "killed"]] as const) {
    const slot = hook.slots.find((s) => s.verdict === verdict);
    if (slot && can && !can.includes(what)) {
      throw new EncodeError(`rule "${slot.rule}" asks hook ${hook.hook} to ${what}, which this kernel cannot do there ` +
        `(it can ${can.length ? `only ${can.join(" and ")}` : "only audit"}); compile with the enforcer's capabilities`);
    }
  }
  if (hook.bitRanks.length > MAX_BITS) {
    throw new EncodeError(`hook ${hook.hook} has ${hook.bitRanks.length} multi-field rule alternatives; the kernel mask holds ${MAX_BITS}`);
  }

  let dims = 0;
  const defaultClass: number[] = [];
  const unknownClass: number[] = [];
  for (const dim of hook.dimensions) {
    const spec = dimensionByName(dim.name);
    if (spec.id !== dim.id || !DIMENSIONS[dim.id]) throw new EncodeError(`dimension ${dim.name} has id ${dim.id}; this enforcer knows it as ${spec.id}`);
    dims |= 1 << dim.id;
    defaultClass[dim.id] = dim.defaultClass;
    unknownClass[dim.id] = dim.unknownClass;
    const wildcard = dim.wildcardBits;
    for (const cls of dim.classes) {
      if (cls.id < 0 || cls.id >= MAX_CLASSES) {
        throw new EncodeError(`the plan has class id ${cls.id}; the kernel holds ${MAX_CLASSES} classes per generation`);
      }
      if (seenClasses.has(cls.id)) throw new EncodeError(`class id ${cls.id} appears in two dimensions`);
      seenClasses.add(cls.id);
      const value = packClassBits(cls.singles[0] ?? NONE, wildcard.length ? [...cls.bits, ...wildcard] : cls.bits);
      image.classes.addAt(classIndex(gen, cls.id), value);
    }
    if (dim.entries.length > MAX_LPM_ENTRIES) {
      throw new EncodeError(`hook ${hook.hook}: dimension ${dim.name} has ${dim.entries.length} entries; the kernel holds ${MAX_LPM_ENTRIES}`);
    }
    if (spec.kind === "prefix" || spec.kind === "suffix") {
      if (dim.id >= STR_DIMS) throw new EncodeError(`string dimension ${dim.name} has id ${dim.id} >= ${STR_DIMS}`);
      if (!dim.entries.length) continue;
      const entries = new Records(STR_KEY_SIZE, 4);
      for (const e of dim.entries) {
        const { bytes, bits } = entryPrefix(e);
        if (bits > 256 * 8) throw new EncodeError(`hook ${hook.hook}: an entry of ${dim.name} is longer than 256 bytes`);
        entries.add(strKey(bits, bytes), u32(e.class));
      }
      image.strTries.push({ slot: strSlot(gen, hookId, dim.id), hook: hookId, dim: dim.id, entries });
    } else if (spec.kind === "int") {
      for (const e of dim.entries) {
        const { bytes, bits } = entryPrefix(e);
        image.ints.add(intKey(gen, hookId, dim.id, bits, bytes), u32(e.class));
      }
    } else if (spec.kind === "addr") {
      for (const e of dim.entries) {
        const { bytes, bits } = entryPrefix(e);
        image.addrs.add(addrKey(gen, hookId, dim.id, bits, bytes), u32(e.class));
      }
    }
    // workload: no entries here; classified cgroups get theirs in pal_workloads
    // (encodeWorkloads), every other process the default class (host processes).
  }
  if (hook.alwaysRank !== null && hook.alwaysRank >= MAX_RANKS) throw new EncodeError(`always rank ${hook.alwaysRank} out of range`);
  image.hooks.addAt(hookIndex(gen, hookId), packHook({
    dims,
    alwaysRank: hook.alwaysRank ?? NONE,
    bitWords: Math.ceil(hook.bitRanks.length / 64),
    defaultClass,
    unknownClass,
  }));
  hook.bitRanks.forEach((rank, bit) => image.bitRanks.addAt(bitRankIndex(gen, hookId, bit), u32(rank)));
  hook.slots.forEach((slot, rank) => {
    image.verdicts.addAt(verdictIndex(gen, hookId, rank), Uint8Array.of(verdictByte(slot)));
  });
}

/** Exact file names in rules, by inode: the first name (in sorted order) wins when two rules name one file. */
function encodeIdentities(plan: KernelPlan, gen: 0 | 1, identify: (path: string) => FileIdentity | undefined, image: GenerationImage): void {
  const paths = new Set<string>();
  for (const hook of plan.hooks) {
    for (const dim of hook.dimensions) {
      if (!IDENTITY_DIMENSIONS.has(dim.name)) continue;
      for (const e of dim.entries) if ("text" in e && e.exact && e.text.startsWith("/")) paths.add(e.text);
    }
  }
  for (const path of [...paths].sort()) {
    const id = identify(path);
    if (!id) continue;
    const key = `${id.ino}:${id.dev}`;
    if (image.aliases.has(key)) continue;
    const bytes = new TextEncoder().encode(path);
    if (bytes.length >= 256) continue;
    const name = new TextEncoder().encode(path.slice(path.lastIndexOf("/") + 1));
    image.aliases.set(key, path);
    image.inodes.add(inodeKey(gen, id), packAlias(bytes, name.length));
  }
}
