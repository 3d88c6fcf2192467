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
  entries: number;
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
    const st = lstatSync(path, { bigint: true });
    return st.isFile() ? { ino: st.ino, dev: kernelDev(st.dev) } : undefined;
  } catch {
    return undefined;
  }
}

/** The object built from bpf/lsm/enforcer.bpf.c, tried in this order. */
const OBJECT_FLAVOURS = ["enforcer", "enforcer.compat"];

const PLANS_KEPT = 8;

const hex = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");

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
  /** Whether the inactive generation is known empty and unread. */
  private inactiveClean = false;
  /** Plans by the low 32 bits of the flip counter at which they became active. */
  private readonly plans = new Map<number, KernelPlan>();
  private readonly node: string;
  private closed = false;
  /** Classified cgroups, as last given to setWorkloads. */
  private workloads: ReadonlyMap<bigint, Workload> = new Map();
  /**
   * What the active generation holds of them: its class ids, and its pal_workloads entries
   * (key hex -> value; an empty value when unknown, after a failed write).
   */
  private activeWorkloads?: { classes: WorkloadClasses; entries: Map<string, Uint8Array> };
  /** Entries of each string trie of the generation in force (tries are filled once, at apply). */
  private strTrieEntries: { hook: number; dim: number; entries: number }[] = [];

  private constructor(options: EnforcerOptions) {
    const problem = privilegeProblem();
    if (problem) throw new Error(`cannot start the enforcer: ${problem}`);
    ensureFilesystems();
    this.pinDir = options.pinDir ?? DEFAULT_PIN_DIR;
    this.cgroupRoot = options.cgroupRoot ?? cgroup2Root();
    this.node = options.node ?? hostname();
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
        obj = new n.BpfObject(bpfObjectPath(OBJECT_FLAVOURS[flavour]!), { pinDir: this.pinDir, reuseMaps: reuse, programs });
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

    const config = n.mapLookup(this.fd.pal_config!, u32(0), CONFIG_SIZE)!;
    const current = unpackConfig(config);
    if (current.abiVersion !== ABI_VERSION) {
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
    const enforcer = new Enforcer(options);
    try {
      if (options.workloads) enforcer.setWorkloads(options.workloads);
      if (options.plan) enforcer.applyPlan(options.plan);
      else enforcer.prepareInactive();
      enforcer.attach();
      if (options.onEvent) enforcer.startEvents(options.onEvent, options.onError, options.unrefEvents);
    } catch (e) {
      // Taking over from a previous agent: what it left enforcing stays in force.
      enforcer.close({ keepAttached: enforcer.reusedMaps });
      throw e;
    }
    return enforcer;
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
   * The old generation is cleared only after every program that could still be reading it
   * has finished.
   */
  applyPlan(plan: KernelPlan): ApplyResult {
    this.assertOpen();
    const started = performance.now();
    const target = (1 - this.activeGen) as 0 | 1;
    const image = encodeGeneration(plan, target, this.capabilities, { identify, workloads: this.workloads });
    this.prepareInactive();
    try {
      this.writeGeneration(image);
    } catch (e) {
      this.inactiveClean = false;
      try {
        this.clearGeneration(target);
        this.inactiveClean = true;
      } catch {
        // left for the next apply, which clears before writing
      }
      throw new ApplyError(`applying plan ${plan.digest.slice(0, 12)} failed; the plan in force stays in force: ${(e as Error).message}`, { cause: e });
    }
    const n = native();
    const flips = this.flips + 1n;
    this.plans.set(Number(flips & 0xffffffffn), plan);
    try {
      n.mapUpdate(this.fd.pal_config!, u32(0), packConfig(target, flips));
    } catch (e) {
      this.plans.delete(Number(flips & 0xffffffffn));
      this.inactiveClean = false;
      throw new ApplyError(`switching to plan ${plan.digest.slice(0, 12)} failed; the plan in force stays in force: ${(e as Error).message}`, { cause: e });
    }
    const old = this.activeGen;
    this.activeGen = target;
    this.flips = flips;
    this.activeWorkloads = { classes: image.workloadClasses, entries: new Map(image.workloads.entries().map(([k, v]) => [hex(k), v])) };
    this.strTrieEntries = image.strTries.map((t) => ({ hook: t.hook, dim: t.dim, entries: t.entries.count }));
    for (const seq of this.plans.keys()) if (this.plans.size > PLANS_KEPT) this.plans.delete(seq);
    // Programs that read the old generation before the flip may still be running: wait for
    // them all (an RCU grace period), then clear it.
    this.inactiveClean = false;
    this.barrier();
    this.clearGeneration(old);
    this.inactiveClean = true;
    const entries = image.classes.count + image.workloads.count + image.ints.count + image.inodes.count + image.addrs.count + image.strTries.reduce((s, t) => s + t.entries.count, 0);
    const warnings: string[] = [];
    for (const hook of plan.hooks) {
      const probed = this.probe.hooks.find((h) => h.hook === hook.hook);
      if (hook.slots.length && !probed?.selected) {
        warnings.push(`${hook.slots.length} rule alternative(s) on ${hook.hook} are never decided here: ${probed?.notes.join("; ") ?? "no backend"}`);
      }
    }
    return { generation: target, digest: plan.digest, entries, durationMs: performance.now() - started, warnings };
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
    const active = this.activeWorkloads;
    this.workloads = next;
    if (!plan || !active) return; // the first plan carries them
    const n = native();
    const gen = this.activeGen;
    const classes = active.classes.clone();
    const fresh = new Records(4, CLASS_SIZE);
    const wanted = encodeWorkloads(plan, gen, next, classes, fresh);
    const changed = new Records(WORKLOAD_KEY_SIZE, 4);
    const entries = new Map<string, Uint8Array>();
    for (const [k, v] of wanted.entries()) {
      const key = hex(k);
      entries.set(key, v);
      const was = active.entries.get(key);
      if (!was || Buffer.compare(was, v) !== 0) changed.add(k, v);
    }
    const stale = [...active.entries.keys()].filter((k) => !entries.has(k)).map((k) => Buffer.from(k, "hex"));
    // New classes before any entry names them; an entry changes in one update.
    if (fresh.count) n.mapUpdateMany(this.fd.pal_classes!, fresh.keyBuffer(), fresh.valueBuffer(), 4, CLASS_SIZE, { batch: true });
    active.classes = classes;
    try {
      if (changed.count) n.mapUpdateMany(this.fd.pal_workloads!, changed.keyBuffer(), changed.valueBuffer(), WORKLOAD_KEY_SIZE, 4, { batch: true });
      if (stale.length) n.mapDeleteMany(this.fd.pal_workloads!, Buffer.concat(stale), WORKLOAD_KEY_SIZE);
    } catch (e) {
      // Each entry is whole, old or new; which ones changed is unknown: the next call rewrites all.
      active.entries = new Map(this.generationKeys("pal_workloads", WORKLOAD_KEY_SIZE, GEN_OFFSET.workload, gen).map((k) => [hex(k), new Uint8Array(0)]));
      throw new ApplyError(`classifying workloads failed part-way; each cgroup has its old or its new class: ${(e as Error).message}`, { cause: e });
    }
    active.entries = entries;
  }

  /** Keys of one generation in a hash or LPM map whose keys carry the generation at `genOffset`. */
  private generationKeys(map: string, keySize: number, genOffset: number, gen: 0 | 1): Buffer[] {
    const keys = native().mapKeys(this.fd[map]!, keySize);
    const mine: Buffer[] = [];
    for (let at = 0; at < keys.length; at += keySize) if (keys[at + genOffset] === gen) mine.push(keys.subarray(at, at + keySize));
    return mine;
  }

  /** Makes sure nothing reads the inactive generation and it holds nothing. */
  private prepareInactive(): void {
    if (this.inactiveClean) return;
    this.barrier();
    this.clearGeneration((1 - this.activeGen) as 0 | 1);
    this.inactiveClean = true;
  }

  /** Returns once every BPF program running now has finished (the kernel waits for an RCU grace period on map-in-map updates). */
  private barrier(): void {
    native().outerSet(this.fd.pal_barrier!, Uint32Array.of(0), Int32Array.of(this.barrierInner));
  }

  private writeGeneration(image: GenerationImage): void {
    const n = native();
    const created: number[] = [];
    try {
      for (const t of image.strTries) {
        const fd = n.mapCreate(BPF_MAP_TYPE_LPM_TRIE, STR_KEY_SIZE, 4, MAX_LPM_ENTRIES, BPF_F_NO_PREALLOC, `pal_s${t.hook}_${t.dim}`);
        created.push(fd);
        n.mapUpdateMany(fd, t.entries.keyBuffer(), t.entries.valueBuffer(), STR_KEY_SIZE, 4);
      }
      n.outerSet(this.fd.pal_str!, Uint32Array.from(image.strTries.map((t) => t.slot)), Int32Array.from(created));
    } finally {
      for (const fd of created) n.closeFd(fd); // the outer map holds them now
    }
    const many = (map: string, r: Records, batch: boolean) =>
      n.mapUpdateMany(this.fd[map]!, r.keyBuffer(), r.valueBuffer(), r.keySize, r.valueSize, { batch });
    many("pal_inodes", image.inodes, true);
    many("pal_int", image.ints, false);
    many("pal_addr", image.addrs, false);
    many("pal_classes", image.classes, true);
    many("pal_workloads", image.workloads, true);
    many("pal_bit_ranks", image.bitRanks, true);
    many("pal_verdicts", image.verdicts, true);
    many("pal_hooks", image.hooks, true);
  }

  private clearGeneration(gen: 0 | 1): void {
    const n = native();
    const hooks = new Records(4, HOOK_SIZE);
    for (let h = 0; h < HOOKS; h++) hooks.add(u32(gen * HOOKS + h), packHook(IDLE_HOOK));
    n.mapUpdateMany(this.fd.pal_hooks!, hooks.keyBuffer(), hooks.valueBuffer(), 4, HOOK_SIZE, { batch: true });
    const slots: number[] = [];
    for (let h = 0; h < HOOKS; h++) for (let d = 0; d < STR_DIMS; d++) slots.push(strSlot(gen, h, d));
    n.outerSet(this.fd.pal_str!, Uint32Array.from(slots), Int32Array.from(slots.map(() => this.emptyTrie)));
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
    // every index it uses.
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
    this.obj.startEvents("pal_events", (records) => {
      // bpf_ktime_get_boot_ns() to wall-clock time
      const bootNow = n.bootTimeNs();
      const wallNow = Date.now();
      for (const raw of records) {
        try {
          const record = decodeRecord(raw);
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
    for (const t of this.strTrieEntries) usage.push({ map: `pal_s${t.hook}_${t.dim}`, entries: t.entries, capacity: MAX_LPM_ENTRIES });
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

