// The enforcer: loads the BPF programs, keeps their maps in step with the kernel plan, and
// reports what the kernel decided. One instance per node.
//
//   const enforcer = Enforcer.open({ plan, onEvent });   // load, apply, attach
//   enforcer.applyPlan(nextPlan);                         // hitless: inactive generation, then flip
//   enforcer.close();                                     // detach everything
//
// docs/kernel-abi.md describes the maps and why a generation swap is safe.

import { lstatSync, readdirSync, rmSync, rmdirSync } from "node:fs";
import { hostname } from "node:os";
import { performance } from "node:perf_hooks";
import type { KernelPlan } from "../plan/types.ts";
import type { Hook } from "../policy/model.ts";
import {
  ABI_VERSION, CONFIG_SIZE, HOOK_SIZE, COUNTER_NAMES, COUNTERS, GEN_OFFSET, HOOKS, IDLE_HOOK, MAX_LPM_ENTRIES, packConfig, packHook,
  Records, STR_DIMS, STR_KEY_SIZE, strSlot, u32, unpackConfig, WORKLOAD_KEY_SIZE, ADDR_KEY_SIZE, INT_KEY_SIZE,
  INODE_KEY_SIZE, kernelDev, CLASS_SIZE, type CounterName, type FileIdentity,
} from "./abi.ts";
import { encodeGeneration, encodeWorkloads, type Capabilities, type GenerationImage, type Workload, type WorkloadClasses } from "./encode.ts";
import { decodeRecord, toEnforcerEvent, type EnforcerEvent } from "./events.ts";
import {
  BPF_F_NO_PREALLOC, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LPM_TRIE, bpfObjectPath, native, type BpfError, type BpfObject,
  type LinkInfo, type ProgramInfo,
} from "./native.ts";
import { capabilitiesOf, cgroupCanKill, probe, select, type Backend, type ProbeResult } from "./probe.ts";
import { attachSpecs, failedPrograms, type BackendAttachSpec } from "./backends.ts";
import { cgroup2Root, ensureFilesystems, privilegeProblem } from "./system.ts";

export { probe, BACKEND_INFO, BACKEND_ORDER, type ProbeResult, type HookProbe, type Backend } from "./probe.ts";
export { encodeGeneration, EncodeError, TRACEPOINT_CAPABILITIES, type Capabilities, type GenerationImage, type Workload } from "./encode.ts";
export { capabilitiesOf, describeActions } from "./probe.ts";
export { decodeRecord, toEnforcerEvent, type EnforcerEvent, type KernelRecord } from "./events.ts";

export const DEFAULT_PIN_DIR = "/sys/fs/bpf/palisade";
/**
 * The kernel's event ring buffer. 4 MiB (some 2,400 file-open records of 1.7 KiB)
 * overflowed at 20,000 events/s whenever the agent's thread was starved for a fraction of
 * a second (BENCHMARKS.md); 16 MiB rides out four times as long. Kernel memory, mapped
 * into the agent twice (records never wrap): about twice its size of the agent's RSS.
 */
export const DEFAULT_EVENT_BUFFER_BYTES = 16 * 2 ** 20;

export interface EnforcerOptions {
  /** Where maps and links are pinned; a restarted agent finds them there. */
  pinDir?: string;
  /** cgroup v2 directory the connect hooks attach to (default: the v2 root found in /proc/mounts). */
  cgroupRoot?: string;
  /** Take over the maps (and so the rules in force) a previous agent pinned. Default true. */
  reuse?: boolean;
  /** Applied before the programs attach, so there is no moment without rules. */
  plan?: KernelPlan;
  /** Classified cgroups the first plan is applied with (see setWorkloads). */
  workloads?: ReadonlyMap<bigint, Workload>;
  onEvent?: (event: EnforcerEvent) => void;
  /** Records that could not be decoded. */
  onError?: (error: Error) => void;
  node?: string;
  /** Do not keep the process alive for events. */
  unrefEvents?: boolean;
  /**
   * Size of the event ring buffer (a power of two, at least a page; default
   * DEFAULT_EVENT_BUFFER_BYTES). Maps taken over from a previous agent keep their size.
   */
  eventBufferBytes?: number;
  /** Override the probed capabilities (tests). */
  capabilities?: Capabilities;
  /**
   * Backends allowed per hook, in the order to try them (default: every available one, best
   * first: BACKEND_ORDER). For tests and for operators who want a particular one; a hook
   * none of whose allowed backends works here is not enforced (its rules get a warning).
   */
  backends?: Partial<Record<Hook, Backend[]>>;
}

export interface ApplyResult {
  generation: 0 | 1;
  digest: string;
  /** Entries of the plan's image. */
  entries: number;
  /** Entries written or deleted: the difference from what the generation held. */
  written: number;
  /** Until the flip: from then on the plan is enforced. */
  enforcedMs: number;
  /** Until the old generation is no longer read (the apply's return). */
  durationMs: number;
  /** Rules this kernel cannot see (a hook without a working backend here): in the plan, never decided. */
  warnings: string[];
}

export class ApplyError extends Error {
  override name = "ApplyError";
}

/** The identity of a regular file at `path` as seen from the agent (lstat: a symlink is not the file it names). */
function identify(path: string): FileIdentity | undefined {
  try {
    // Rules often name files that do not exist: no exception for those (they cost ~5 µs each).
    const st = lstatSync(path, { bigint: true, throwIfNoEntry: false });
    return st?.isFile() ? { ino: st.ino, dev: kernelDev(st.dev) } : undefined;
  } catch {
    return undefined;
  }
}

/** The object built from bpf/lsm/enforcer.bpf.c, tried in this order. */
const OBJECT_FLAVOURS = ["enforcer", "enforcer.compat"];

const PLANS_KEPT = 8;

/**
 * What one generation holds, as written: per map, key -> value (both as latin1 strings:
 * compact, compared whole); its own string tries (inner maps this agent created, kept
 * open) with their entries; and the class ids its workloads use.
 */
interface GenerationContents {
  maps: Map<string, Map<string, string>>;
  tries: Map<number, TrieContents>;
  workloadClasses?: WorkloadClasses;
}

interface TrieContents {
  fd: number;
  hook: number;
  dim: number;
  entries: Map<string, string>;
}

export class Enforcer {
  readonly pinDir: string;
  readonly cgroupRoot: string | undefined;
  readonly capabilities: Capabilities;
  readonly probe: ProbeResult;
  readonly reusedMaps: boolean;
  /** Loaded from enforcer.compat.bpf.o: this kernel refused the direct-load build (no bpf_rdonly_cast before 6.2). */
  readonly compat: boolean;
  /** Why the direct-load build was refused. */
  readonly compatReason?: string;
  private readonly obj: BpfObject;
  private readonly specs: BackendAttachSpec[];
  private readonly fd: Record<string, number>;
  private readonly emptyTrie: number;
  private readonly barrierInner: number;
  private activeGen: 0 | 1;
  private flips: bigint;
  /**
   * What each generation holds, as this agent wrote it; undefined when unknown (another
   * agent wrote it, or a write failed): it is cleared before it is written again.
   */
  private readonly contents: [GenerationContents | undefined, GenerationContents | undefined] = [undefined, undefined];
  /** Plans by the low 32 bits of the flip counter at which they became active. */
  private readonly plans = new Map<number, KernelPlan>();
  private readonly node: string;
  /** The event ring buffer's size in force: as asked, or a taken-over map's own. */
  readonly eventBufferBytes: number;
  private started = false;
  private closed = false;
  /** Classified cgroups, as last given to setWorkloads. */
  private workloads: ReadonlyMap<bigint, Workload> = new Map();

  private constructor(options: EnforcerOptions) {
    const problem = privilegeProblem();
    if (problem) throw new Error(`cannot start the enforcer: ${problem}`);
    ensureFilesystems();
    this.pinDir = options.pinDir ?? DEFAULT_PIN_DIR;
    this.cgroupRoot = options.cgroupRoot ?? cgroup2Root();
    this.node = options.node ?? hostname();
    const eventBufferBytes = options.eventBufferBytes ?? DEFAULT_EVENT_BUFFER_BYTES;
    if (!Number.isInteger(eventBufferBytes) || eventBufferBytes < 4096 || (eventBufferBytes & (eventBufferBytes - 1)) !== 0 || eventBufferBytes > 2 ** 30) {
      throw new Error(`event ring buffer size ${eventBufferBytes}: must be a power of two from 4096 (a page) to 1 GiB`);
    }
    const probed = probe();
    const n = native();

    let reuse = options.reuse ?? true;
    if (reuse) {
      const pinned = n.objGet(`${this.pinDir}/maps/pal_config`);
      if (pinned >= 0) {
        const value = n.mapLookup(pinned, u32(0), CONFIG_SIZE);
        n.closeFd(pinned);
        // Maps of another ABI are left to the programs still using them; we load fresh ones.
        if (!value || unpackConfig(value).abiVersion !== ABI_VERSION) reuse = false;
      }
    }

    // The best available backend per hook (options.backends may narrow the choice), then
    // load what that takes. Should this kernel refuse a program the probe let through, its
    // hook falls back to its next backend, and the probe result says so.
    const hooks = probed.hooks.map((h) => {
      const allowed = options.backends?.[h.hook];
      const candidates = h.available.filter((b) => !allowed || allowed.includes(b));
      if (allowed) candidates.sort((x, y) => allowed.indexOf(x) - allowed.indexOf(y));
      const note = allowed && candidates[0] !== h.available[0] ? `backend chosen by the agent's options among ${allowed.join(", ")}` : undefined;
      return { probe: select(h, candidates[0] ?? null, note), candidates };
    });
    let flavour = 0;
    let compatReason: string | undefined;
    let obj: BpfObject | undefined;
    let specs: BackendAttachSpec[] = [];
    for (let tries = 0; !obj; tries++) {
      const tp = hooks.find((h) => h.probe.hook === "net.connect")!.probe;
      specs = attachSpecs({
        backends: Object.fromEntries(hooks.map((h) => [h.probe.hook, h.probe.selected])) as Record<Hook, Backend | null>,
        cgroupKill: cgroupCanKill(tp),
        cgroupRoot: this.cgroupRoot,
      });
      const programs = [...new Set(specs.map((s) => s.program))];
      try {
        obj = new n.BpfObject(bpfObjectPath(OBJECT_FLAVOURS[flavour]!), { pinDir: this.pinDir, reuseMaps: reuse, programs, maxEntries: { pal_events: eventBufferBytes } });
      } catch (e) {
        const error = e as BpfError;
        const text = `${error.message}\n${error.libbpfLog ?? ""}`;
        if (tries > 8) throw e;
        if (reuse && /reuse/i.test(error.message)) {
          reuse = false;
          continue;
        }
        if (flavour + 1 < OBJECT_FLAVOURS.length) {
          // Kernels before 6.2 have no bpf_rdonly_cast; older verifiers may also take the
          // compatible build (field reads through bpf_probe_read_kernel) where they refuse
          // the direct loads. Tried before giving up on any backend.
          compatReason = text.split("\n").find((l) => /bpf_rdonly_cast|prog '/.test(l))?.replace(/^libbpf: /, "") ?? error.message.split("\n")[0]!;
          flavour++;
          continue;
        }
        const failed = failedPrograms(text);
        const demote = hooks.filter((h) => specs.some((s) => s.hook === h.probe.hook && failed.includes(s.program)));
        if (!demote.length) throw e;
        for (const h of demote) {
          const was = h.probe.selected!;
          const next = h.candidates[h.candidates.indexOf(was) + 1] ?? null;
          const program = specs.find((s) => s.hook === h.probe.hook && failed.includes(s.program))!.program;
          const why = text.split("\n").find((l) => l.includes(`'${program}'`))?.replace(/^libbpf: /, "") ?? error.message.split("\n")[0];
          h.probe = select(h.probe, next, `the ${was} backend's programs were refused when loaded (${why}); ${next ? `using ${next}` : "no backend left"}`);
        }
      }
    }
    this.probe = { ...probed, hooks: hooks.map((h) => h.probe) };
    this.capabilities = options.capabilities ?? capabilitiesOf(this.probe);
    this.compat = flavour > 0;
    if (compatReason) this.compatReason = compatReason;
    this.specs = specs;
    this.obj = obj;
    this.reusedMaps = reuse;
    this.fd = Object.fromEntries(obj.maps().map((m) => [m.name, m.fd]));
    this.eventBufferBytes = obj.maps().find((m) => m.name === "pal_events")!.maxEntries;

    const config = n.mapLookup(this.fd.pal_config!, u32(0), CONFIG_SIZE)!;
    const current = unpackConfig(config);
    if (current.abiVersion !== ABI_VERSION) {
      // Fresh maps: arrays hold zeros, and a zero hooks entry is not idle (always_rank 0).
      for (const gen of [0, 1] as const) this.contents[gen] = { maps: new Map([["pal_hooks", this.idleHooks(gen)]]), tries: new Map() };
      n.mapUpdate(this.fd.pal_config!, u32(0), packConfig(0, 0n));
      this.activeGen = 0;
      this.flips = 0n;
    } else {
      this.activeGen = (current.activeGen & 1) as 0 | 1;
      this.flips = current.flips;
    }
    this.emptyTrie = n.mapCreate(BPF_MAP_TYPE_LPM_TRIE, STR_KEY_SIZE, 4, MAX_LPM_ENTRIES, BPF_F_NO_PREALLOC, "pal_str_empty");
    this.barrierInner = n.mapCreate(BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0, "pal_barrier_in");
  }

  /** Loads the programs (taking over a previous agent's maps), applies `plan`, attaches, starts events. */
  static open(options: EnforcerOptions = {}): Enforcer {
    const enforcer = Enforcer.load(options);
    try {
      enforcer.start(options);
    } catch (e) {
      // Taking over from a previous agent: what it left enforcing stays in force.
      enforcer.close({ keepAttached: enforcer.reusedMaps });
      throw e;
    }
    return enforcer;
  }

  /**
   * Loads the programs (taking over a previous agent's maps) without attaching them or
   * changing what is in force. `capabilities` and `probe` then say what this kernel does
   * with what was actually loaded (a program refused after its probe passed has fallen back
   * to its hook's next backend): compile for that, then `start`.
   */
  static load(options: EnforcerOptions = {}): Enforcer {
    return new Enforcer(options);
  }

  /**
   * Applies `plan` (with `workloads` classified), attaches the programs, starts events. A
   * plan that cannot be applied throws and leaves the enforcer loaded, attached to nothing:
   * start may be called again. Should attaching fail, the enforcer is closed (a previous
   * agent's programs and rules stay in force).
   */
  start(options: Pick<EnforcerOptions, "plan" | "workloads" | "onEvent" | "onError" | "unrefEvents"> = {}): void {
    this.assertOpen();
    if (this.started) throw new Error("the enforcer is started already");
    if (options.workloads) this.setWorkloads(options.workloads);
    if (options.plan) this.applyPlan(options.plan);
    else this.prepareInactive();
    try {
      this.attach();
      if (options.onEvent) this.startEvents(options.onEvent, options.onError, options.unrefEvents);
    } catch (e) {
      // Taking over from a previous agent: what it left enforcing stays in force.
      this.close({ keepAttached: this.reusedMaps });
      throw e;
    }
    this.started = true;
  }

  get activeGeneration(): 0 | 1 {
    return this.activeGen;
  }

  /** The plan in force (once this agent applied one). */
  get plan(): KernelPlan | undefined {
    return this.plans.get(Number(this.flips & 0xffffffffn));
  }

  /**
   * Writes the plan into the inactive generation, then makes it active in one word write.
   * If anything fails before the flip, the plan in force stays in force (and this throws).
   * The inactive generation still holds the plan before last: only the difference is
   * written (docs/kernel-abi.md, "Generation swaps"). After the flip, this waits until no
   * program still reads the old generation, so the next apply may write into it.
   */
  applyPlan(plan: KernelPlan): ApplyResult {
    this.assertOpen();
    const started = performance.now();
    const target = (1 - this.activeGen) as 0 | 1;
    const image = encodeGeneration(plan, target, this.capabilities, { identify, workloads: this.workloads });
    this.prepareInactive();
    let written = 0;
    try {
      written = this.writeGeneration(image, this.contents[target]!);
    } catch (e) {
      try {
        this.clearGeneration(target);
      } catch {
        // left for the next apply, which clears before writing
      }
      throw new ApplyError(`applying plan ${plan.digest.slice(0, 12)} failed; the plan in force stays in force: ${(e as Error).message}`, { cause: e });
    }
    this.contents[target]!.workloadClasses = image.workloadClasses;
    const n = native();
    const flips = this.flips + 1n;
    this.plans.set(Number(flips & 0xffffffffn), plan);
    try {
      n.mapUpdate(this.fd.pal_config!, u32(0), packConfig(target, flips));
    } catch (e) {
      this.plans.delete(Number(flips & 0xffffffffn));
      throw new ApplyError(`switching to plan ${plan.digest.slice(0, 12)} failed; the plan in force stays in force: ${(e as Error).message}`, { cause: e });
    }
    const enforcedMs = performance.now() - started;
    this.activeGen = target;
    this.flips = flips;
    for (const seq of this.plans.keys()) if (this.plans.size > PLANS_KEPT) this.plans.delete(seq);
    // Programs that read the old generation before the flip may still be running: wait for
    // them all (an RCU grace period) before anything writes into it again.
    this.barrier();
    const entries = image.classes.count + image.workloads.count + image.ints.count + image.inodes.count + image.addrs.count + image.strTries.reduce((s, t) => s + t.entries.count, 0);
    const warnings: string[] = [];
    for (const hook of plan.hooks) {
      const probed = this.probe.hooks.find((h) => h.hook === hook.hook);
      if (hook.slots.length && !probed?.selected) {
        warnings.push(`${hook.slots.length} rule alternative(s) on ${hook.hook} are never decided here: ${probed?.notes.join("; ") ?? "no backend"}`);
      }
    }
    return { generation: target, digest: plan.digest, entries, written, enforcedMs, durationMs: performance.now() - started, warnings };
  }

  /**
   * The cgroups the controller classified on this node, by cgroup v2 id (the inode number of
   * the cgroup's directory, what bpf_get_current_cgroup_id() returns), replacing the previous
   * set. A process takes the workload of its own cgroup or of its nearest classified ancestor
   * (up to WORKLOAD_DEPTH levels up), so classifying a pod's cgroup covers its containers
   * from their first instruction. Only the difference is written, into the generation in
   * force; every later plan carries the set. Throws EncodeError (nothing written) past the
   * kernel's limits.
   */
  setWorkloads(workloads: ReadonlyMap<bigint, Workload>): void {
    this.assertOpen();
    const next = new Map(workloads);
    const plan = this.plan;
    const active = this.contents[this.activeGen];
    this.workloads = next;
    if (!plan || !active?.workloadClasses) return; // the next plan carries them
    const gen = this.activeGen;
    const classes = active.workloadClasses.clone();
    const fresh = new Records(4, CLASS_SIZE);
    const wanted = encodeWorkloads(plan, gen, next, classes, fresh);
    // New classes before any entry names them (at ids no entry names yet); then each entry
    // changes in one update: a process sees its old or its new class.
    this.writeNamed("pal_classes", fresh, active, { batch: true, array: true });
    active.workloadClasses = classes;
    try {
      this.writeNamed("pal_workloads", wanted, active, { batch: true, array: false });
    } catch (e) {
      // Which entries changed is unknown: the next write rewrites every one there is.
      const keys = this.generationKeys("pal_workloads", WORKLOAD_KEY_SIZE, GEN_OFFSET.workload, gen);
      active.maps.set("pal_workloads", new Map(keys.map((k) => [k.toString("latin1"), ""])));
      throw new ApplyError(`classifying workloads failed part-way; each cgroup has its old or its new class: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Keys of one generation in a hash or LPM map whose keys carry the generation at `genOffset`. */
  private generationKeys(map: string, keySize: number, genOffset: number, gen: 0 | 1): Buffer[] {
    const keys = native().mapKeys(this.fd[map]!, keySize);
    const mine: Buffer[] = [];
    for (let at = 0; at < keys.length; at += keySize) if (keys[at + genOffset] === gen) mine.push(keys.subarray(at, at + keySize));
    return mine;
  }

  /**
   * Makes sure the inactive generation's contents are known. They are, after a flip (a
   * barrier followed it); not after a failed write or when another agent wrote them: then
   * wait until nothing reads it, and clear it.
   */
  private prepareInactive(): void {
    const gen = (1 - this.activeGen) as 0 | 1;
    if (this.contents[gen]) return;
    this.barrier();
    this.clearGeneration(gen);
  }

  /** Returns once every BPF program running now has finished (the kernel waits for an RCU grace period on map-in-map updates). */
  private barrier(): void {
    native().outerSet(this.fd.pal_barrier!, Uint32Array.of(0), Int32Array.of(this.barrierInner));
  }

  /**
   * Makes the map behind `fd` hold `records`, where `had` says what it holds for this
   * generation (and is updated to say what it holds after): writes new and changed entries
   * and, unless it is an array, deletes the others (unused array entries stay: nothing
   * reaches them). Returns the entries written or deleted. Should a write fail, `had` is
   * wrong: the caller forgets the generation's contents.
   */
  private writeMap(fd: number, records: Records, had: Map<string, string>, how: { batch: boolean; array: boolean }): number {
    const n = native();
    const changed = new Records(records.keySize, records.valueSize);
    const keep = new Set<string>();
    for (let i = 0; i < records.count; i++) {
      const key = records.key(i), value = records.value(i);
      const id = key.toString("latin1"), bytes = value.toString("latin1");
      keep.add(id);
      if (had.get(id) !== bytes) {
        changed.add(key, value);
        had.set(id, bytes);
      }
    }
    const stale = how.array ? [] : [...had.keys()].filter((k) => !keep.has(k));
    for (const k of stale) had.delete(k);
    if (stale.length) n.mapDeleteMany(fd, Buffer.concat(stale.map((k) => Buffer.from(k, "latin1"))), records.keySize);
    if (changed.count) n.mapUpdateMany(fd, changed.keyBuffer(), changed.valueBuffer(), records.keySize, records.valueSize, { batch: how.batch });
    return changed.count + stale.length;
  }

  /** writeMap for one of the object's maps, by name. */
  private writeNamed(map: string, records: Records, held: GenerationContents, how: { batch: boolean; array: boolean }): number {
    let had = held.maps.get(map);
    if (!had) held.maps.set(map, (had = new Map()));
    return this.writeMap(this.fd[map]!, records, had, how);
  }

  /** Brings generation `image.gen` from what `held` says it holds to the image. Returns the entries written or deleted. */
  private writeGeneration(image: GenerationImage, held: GenerationContents): number {
    const n = native();
    let written = 0;
    // String tries: the generation's own tries are updated in place (nothing reads them); a
    // dimension new to this generation gets a new trie, all of them set in one batch.
    const fresh: { slot: number; trie: TrieContents }[] = [];
    const lpm = { batch: false, array: false };
    try {
      const wanted = new Set(image.strTries.map((t) => t.slot));
      for (const t of image.strTries) {
        let trie = held.tries.get(t.slot);
        if (!trie) {
          const fd = n.mapCreate(BPF_MAP_TYPE_LPM_TRIE, STR_KEY_SIZE, 4, MAX_LPM_ENTRIES, BPF_F_NO_PREALLOC, `pal_s${t.hook}_${t.dim}`);
          trie = { fd, hook: t.hook, dim: t.dim, entries: new Map() };
          fresh.push({ slot: t.slot, trie });
        }
        written += this.writeMap(trie.fd, t.entries, trie.entries, lpm);
      }
      for (const [slot, trie] of held.tries) if (!wanted.has(slot)) written += this.writeMap(trie.fd, new Records(STR_KEY_SIZE, 4), trie.entries, lpm);
      if (fresh.length) n.outerSet(this.fd.pal_str!, Uint32Array.from(fresh.map((f) => f.slot)), Int32Array.from(fresh.map((f) => f.trie.fd)));
    } catch (e) {
      for (const f of fresh) n.closeFd(f.trie.fd);
      throw e;
    }
    for (const f of fresh) held.tries.set(f.slot, f.trie);
    written += this.writeNamed("pal_inodes", image.inodes, held, { batch: true, array: false });
    written += this.writeNamed("pal_int", image.ints, held, lpm);
    written += this.writeNamed("pal_addr", image.addrs, held, lpm);
    written += this.writeNamed("pal_classes", image.classes, held, { batch: true, array: true });
    written += this.writeNamed("pal_workloads", image.workloads, held, { batch: true, array: false });
    written += this.writeNamed("pal_bit_ranks", image.bitRanks, held, { batch: true, array: true });
    written += this.writeNamed("pal_verdicts", image.verdicts, held, { batch: true, array: true });
    written += this.writeNamed("pal_hooks", image.hooks, held, { batch: true, array: true });
    return written;
  }

  /** Empties generation `gen` (nothing may be reading it): its hooks idle, its tries the shared empty one, its keyed entries gone. */
  private clearGeneration(gen: 0 | 1): void {
    const n = native();
    const old = this.contents[gen];
    this.contents[gen] = undefined;
    const idle = this.idleHooks(gen);
    const slots: number[] = [];
    for (let h = 0; h < HOOKS; h++) for (let d = 0; d < STR_DIMS; d++) slots.push(strSlot(gen, h, d));
    n.outerSet(this.fd.pal_str!, Uint32Array.from(slots), Int32Array.from(slots.map(() => this.emptyTrie)));
    for (const t of old?.tries.values() ?? []) n.closeFd(t.fd);
    const purge = (map: string, keySize: number, genOffset: number) => {
      const mine = this.generationKeys(map, keySize, genOffset, gen);
      if (mine.length) n.mapDeleteMany(this.fd[map]!, Buffer.concat(mine), keySize);
    };
    purge("pal_int", INT_KEY_SIZE, GEN_OFFSET.int);
    purge("pal_addr", ADDR_KEY_SIZE, GEN_OFFSET.addr);
    purge("pal_workloads", WORKLOAD_KEY_SIZE, GEN_OFFSET.workload);
    purge("pal_inodes", INODE_KEY_SIZE, GEN_OFFSET.inode);
    // Arrays (classes, bit ranks, verdicts) are only reached through the hooks entries
    // just made idle: their stale values are never read, and the next plan overwrites
    // every index it uses. So the record of this generation starts with the idle hooks only.
    this.contents[gen] = { maps: new Map([["pal_hooks", idle]]), tries: new Map() };
  }

  /** Makes generation `gen`'s hooks idle (no rule: programs return after two lookups); returns their record. */
  private idleHooks(gen: 0 | 1): Map<string, string> {
    const hooks = new Records(4, HOOK_SIZE);
    for (let h = 0; h < HOOKS; h++) hooks.addAt(gen * HOOKS + h, packHook(IDLE_HOOK));
    native().mapUpdateMany(this.fd.pal_hooks!, hooks.keyBuffer(), hooks.valueBuffer(), 4, HOOK_SIZE, { batch: true });
    return new Map(hooks.entries().map(([k, v]) => [k.toString("latin1"), v.toString("latin1")]));
  }

  /** Attaches the selected programs; then drops links a previous agent pinned that this selection does not replace. */
  private attach(): void {
    this.obj.attach(this.specs.map(({ hook: _, ...spec }) => spec));
    const keys = new Set(this.specs.map((s) => s.key));
    let pinned: string[] = [];
    try {
      pinned = readdirSync(`${this.pinDir}/links`);
    } catch {
      return;
    }
    for (const name of pinned) if (!keys.has(name)) rmSync(`${this.pinDir}/links/${name}`, { force: true });
  }

  private startEvents(onEvent: (e: EnforcerEvent) => void, onError?: (e: Error) => void, unref?: boolean): void {
    const n = native();
    this.obj.startEvents("pal_events", (bytes, ends) => {
      // bpf_ktime_get_boot_ns() to wall-clock time
      const bootNow = n.bootTimeNs();
      const wallNow = Date.now();
      for (let i = 0, start = 0; i < ends.length; start = ends[i++]!) {
        try {
          const record = decodeRecord(bytes.subarray(start, ends[i]));
          const time = new Date(wallNow - Number(bootNow - record.bootTimeNs) / 1e6);
          const workload = record.workloadId === undefined ? undefined : this.workloads.get(record.workloadId);
          const out = toEnforcerEvent(record, this.plans.get(record.seq), { node: this.node, time, ...(workload && { workload }) });
          if (out) onEvent(out);
        } catch (e) {
          onError?.(e as Error);
        }
      }
    }, { unref: unref ?? false });
  }

  counters(): Record<CounterName, bigint> {
    this.assertOpen();
    const sums = native().percpuSums(this.fd.pal_counters!, COUNTERS);
    return Object.fromEntries(COUNTER_NAMES.map((name, i) => [name, sums[i]!])) as Record<CounterName, bigint>;
  }

  /**
   * How full the bounded maps are, for the metrics endpoint: each hash and LPM-trie map
   * (entries counted now; both generations share them), and each non-empty string trie of
   * the plan in force, as pal_s<hook>_<dim> like the kernel names it.
   */
  mapUsage(): { map: string; entries: number; capacity: number }[] {
    this.assertOpen();
    const n = native();
    const usage = this.obj.maps()
      .filter((m) => m.type === BPF_MAP_TYPE_HASH || m.type === BPF_MAP_TYPE_LPM_TRIE)
      .map((m) => ({ map: m.name, entries: n.mapKeys(m.fd, m.keySize).length / m.keySize, capacity: m.maxEntries }));
    for (const t of this.contents[this.activeGen]?.tries.values() ?? []) {
      if (t.entries.size) usage.push({ map: `pal_s${t.hook}_${t.dim}`, entries: t.entries.size, capacity: MAX_LPM_ENTRIES });
    }
    return usage;
  }

  programs(): ProgramInfo[] {
    this.assertOpen();
    return this.obj.programs();
  }

  links(): LinkInfo[] {
    this.assertOpen();
    return this.obj.links();
  }

  /** Hooks this enforcer enforces, with the backend and what it can do. */
  hooks(): { hook: Hook; backend: string | null; can: readonly ("deny" | "kill")[] }[] {
    return this.probe.hooks.map((h) => ({ hook: h.hook, backend: h.selected, can: this.capabilities[h.hook] ?? [] }));
  }

  /**
   * Stops. By default detaches every program and removes the pins: no rule stays in force.
   * With keepAttached, programs and maps stay pinned and keep enforcing the plan in force,
   * for an agent that restarts (it takes them over without a gap).
   */
  close(options: { keepAttached?: boolean } = {}): void {
    if (this.closed) return;
    this.closed = true;
    const n = native();
    if (options.keepAttached) {
      this.obj.close({ detach: false });
    } else {
      this.obj.close({ detach: true, unpinMaps: true });
      Enforcer.removePinned(this.pinDir);
    }
    n.closeFd(this.emptyTrie);
    n.closeFd(this.barrierInner);
    for (const held of this.contents) for (const t of held?.tries.values() ?? []) n.closeFd(t.fd);
  }

  /**
   * Detaches every program pinned under pinDir and drops the pinned maps: what an agent
   * that stopped with keepAttached (or crashed) left enforcing. Programs with no other
   * reference detach as their pins go.
   */
  static removePinned(pinDir: string = DEFAULT_PIN_DIR): void {
    for (const sub of ["links", "maps"]) {
      const path = `${pinDir}/${sub}`;
      let names: string[] = [];
      try {
        names = readdirSync(path);
      } catch {
        continue;
      }
      for (const name of names) rmSync(`${path}/${name}`, { force: true });
      try {
        rmdirSync(path);
      } catch {
        // gone already
      }
    }
    try {
      rmdirSync(pinDir);
    } catch {
      // absent, or holds something that is not ours
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("the enforcer is closed");
  }
}

