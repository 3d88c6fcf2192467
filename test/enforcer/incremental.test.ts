// Incremental apply on the real kernel: each apply writes only the difference between what
// the inactive generation held (the plan before last) and the new plan. After every apply of
// a sequence of plans that add and drop entries in every kind of map (string tries, integer
// and address tries, file identities, workloads, arrays), the generation in force must hold
// exactly what a full encoding of that plan says: read back from the kernel's maps.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lstatSync, writeFileSync } from "node:fs";
import { Enforcer, encodeGeneration, TRACEPOINT_CAPABILITIES, type Workload } from "../../src/enforcer/index.ts";
import {
  ADDR_KEY_SIZE, CLASS_SIZE, classIndex, GEN_OFFSET, HOOKS, INODE_KEY_SIZE, INT_KEY_SIZE, kernelDev, MAX_CLASSES, readU32, STR_DIMS,
  STR_KEY_SIZE, strSlot, u32, WORKLOAD_KEY_SIZE, type Records,
} from "../../src/enforcer/abi.ts";
import { native } from "../../src/enforcer/native.ts";
import type { KernelPlan } from "../../src/plan/types.ts";
import { planOf, removeDir, requireKernel, tempDir } from "./support.ts";

const PIN_DIR = "/sys/fs/bpf/palisade-test-incremental";
const canRun = requireKernel();

let dir: string;
let enforcer: Enforcer | undefined;

const audit = (name: string, hook: "process.exec" | "file.open" | "net.connect", match: string) => ({ name, hook, match, action: "audit" as const });

/** Plans that differ in every map: each rule audits something nothing on this host does. */
function plans(d: string): KernelPlan[] {
  return [
    planOf({ name: "a", rules: [
      audit("bin", "process.exec", `process.binary == "${d}/a" || process.binary.startsWith("/opt/palisade-none/")`),
      audit("suffix", "process.exec", 'process.name.endsWith(".palisade-none")'),
      audit("file", "file.open", `file.path == "${d}/watched" || file.path.startsWith("${d}/dir/")`),
      audit("net", "net.connect", 'net.dport == 4242 && cidr("10.99.0.0/16").containsIP(net.daddr)'),
      audit("uid", "file.open", `process.uid == 4242 && file.path == "${d}/other"`),
    ] }),
    planOf({ name: "b", rules: [
      audit("bin", "process.exec", `process.binary == "${d}/b"`),
      audit("file", "file.open", `file.path == "${d}/other"`),
      audit("net6", "net.connect", 'cidr("fd00:99::/32").containsIP(net.daddr)'),
    ] }),
    planOf(
      { name: "prod", kind: "TracingPolicyNamespaced", namespace: "prod", rules: [audit("bin", "process.exec", `process.binary == "${d}/a"`)] },
      { name: "api", selector: { podSelector: { matchLabels: { app: "api" } } }, rules: [audit("net", "net.connect", "net.dport == 4243")] },
    ),
    planOf(),
  ];
}

const WORKLOADS = new Map<bigint, Workload>([
  [900001n, { namespace: "prod", pod: "a", labels: { app: "api" } }],
  [900002n, { namespace: "dev", pod: "b" }],
]);

function identify(path: string) {
  try {
    const st = lstatSync(path, { bigint: true });
    return st.isFile() ? { ino: st.ino, dev: kernelDev(st.dev) } : undefined;
  } catch {
    return undefined;
  }
}

const mapFd = (name: string) => {
  const fd = native().objGet(`${PIN_DIR}/maps/${name}`);
  if (fd < 0) throw new Error(`${name} is not pinned`);
  return fd;
};

/** key hex -> value hex of the entries of generation `gen` in a keyed map (the generation byte at `genOffset`). */
function keyed(fd: number, keySize: number, valueSize: number, genOffset: number | null, gen: number): Map<string, string> {
  const n = native();
  const keys = n.mapKeys(fd, keySize);
  const out = new Map<string, string>();
  for (let at = 0; at < keys.length; at += keySize) {
    const key = keys.subarray(at, at + keySize);
    if (genOffset !== null && key[genOffset] !== gen) continue;
    out.set(key.toString("hex"), n.mapLookup(fd, key, valueSize)!.toString("hex"));
  }
  return out;
}

const recordsOf = (r: Records) => new Map(r.entries().map(([k, v]) => [k.toString("hex"), v.toString("hex")]));

/** Workload entries resolved to their class values, so class ids allocated in another order compare equal. */
function resolved(entries: Map<string, string>, classOf: (id: number) => string): Map<string, string> {
  return new Map([...entries].map(([k, v]) => {
    const id = readU32(Buffer.from(v, "hex"));
    return [k, id >= MAX_CLASSES ? "none" : classOf(id)];
  }));
}

/** Everything generation `gen` holds, as the kernel has it, against a full encoding of `plan`. */
function expectHolds(plan: KernelPlan, gen: 0 | 1, workloads: ReadonlyMap<bigint, Workload>) {
  const n = native();
  const image = encodeGeneration(plan, gen, TRACEPOINT_CAPABILITIES, { identify, workloads });
  const fds = Object.fromEntries(["pal_int", "pal_addr", "pal_inodes", "pal_workloads", "pal_str", "pal_classes", "pal_hooks", "pal_verdicts", "pal_bit_ranks"].map((m) => [m, mapFd(m)]));
  try {
    expect(keyed(fds.pal_int!, INT_KEY_SIZE, 4, GEN_OFFSET.int, gen)).toEqual(recordsOf(image.ints));
    expect(keyed(fds.pal_addr!, ADDR_KEY_SIZE, 4, GEN_OFFSET.addr, gen)).toEqual(recordsOf(image.addrs));
    expect(keyed(fds.pal_inodes!, INODE_KEY_SIZE, 264, GEN_OFFSET.inode, gen)).toEqual(recordsOf(image.inodes));
    const kernelClass = (id: number) => n.mapLookup(fds.pal_classes!, u32(classIndex(gen, id)), CLASS_SIZE)!.toString("hex");
    const imageClasses = recordsOf(image.classes);
    const imageClass = (id: number) => imageClasses.get(Buffer.from(u32(classIndex(gen, id))).toString("hex"))!;
    expect(resolved(keyed(fds.pal_workloads!, WORKLOAD_KEY_SIZE, 4, GEN_OFFSET.workload, gen), kernelClass)).toEqual(resolved(recordsOf(image.workloads), imageClass));
    for (let h = 0; h < HOOKS; h++) {
      for (let d = 0; d < STR_DIMS; d++) {
        const slot = strSlot(gen, h, d);
        const want = image.strTries.find((t) => t.slot === slot);
        const id = n.outerGetId(fds.pal_str!, slot);
        if (!id) {
          expect(want, `trie ${h}/${d}`).toBeUndefined(); // an empty slot: no trie, every lookup a miss
          continue;
        }
        const inner = n.mapFdById(id);
        try {
          expect(keyed(inner, STR_KEY_SIZE, 4, null, gen), `trie ${h}/${d}`).toEqual(want ? recordsOf(want.entries) : new Map());
        } finally {
          n.closeFd(inner);
        }
      }
    }
    // Arrays: every index the image uses holds its value (others are unreachable).
    for (const [map, records, size] of [["pal_classes", image.classes, CLASS_SIZE], ["pal_hooks", image.hooks, 192], ["pal_verdicts", image.verdicts, 1], ["pal_bit_ranks", image.bitRanks, 4]] as const) {
      for (const [k, v] of records.entries()) expect(n.mapLookup(fds[map]!, k, size)!.toString("hex"), `${map}[${readU32(k)}]`).toBe(v.toString("hex"));
    }
  } finally {
    for (const fd of Object.values(fds)) n.closeFd(fd);
  }
}

beforeAll(() => {
  if (!canRun) return;
  Enforcer.removePinned(PIN_DIR);
  dir = tempDir("palisade-incr");
  for (const f of ["a", "b", "watched", "other"]) writeFileSync(`${dir}/${f}`, f);
});

afterAll(() => {
  enforcer?.close();
  if (dir) removeDir(dir);
});

describe("incremental apply", () => {
  it("the generation in force holds exactly the plan's full encoding after every apply of a sequence", () => {
    const [a, b, scoped, empty] = plans(dir);
    enforcer = Enforcer.open({ pinDir: PIN_DIR, reuse: false, plan: a! });
    expectHolds(a!, enforcer.activeGeneration, new Map());
    let workloads: ReadonlyMap<bigint, Workload> = new Map();
    const sequence = [b, scoped, a, scoped, empty, b, a, a, scoped, b, scoped, empty, a];
    sequence.forEach((plan, i) => {
      if (i === 3) {
        workloads = WORKLOADS;
        enforcer!.setWorkloads(workloads);
        expectHolds(enforcer!.plan!, enforcer!.activeGeneration, workloads);
      }
      if (i === 9) {
        workloads = new Map([[900003n, { namespace: "prod", pod: "c" }]]);
        enforcer!.setWorkloads(workloads);
      }
      const result = enforcer!.applyPlan(plan!);
      expectHolds(plan!, result.generation, workloads);
    });
  });

  it("writes only the difference: re-applying the plan before last writes nothing", () => {
    const [a, b] = plans(dir);
    enforcer!.applyPlan(a!);
    enforcer!.applyPlan(b!);
    expect(enforcer!.applyPlan(a!).written).toBe(0);
    expect(enforcer!.applyPlan(b!).written).toBe(0);
    expect(enforcer!.applyPlan(b!).written).toBeGreaterThan(0);
  });
});
