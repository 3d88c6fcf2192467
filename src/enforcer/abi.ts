// The kernel ABI as TypeScript sees it: every number of bpf/lsm/abi.h, and the byte
// layout of each map key, value and event record. test/enforcer/abi.test.ts holds these
// equal to what the C compiler says (the addon reports sizeof/offsetof).
// docs/kernel-abi.md describes the maps.

export const ABI_VERSION = 3;

export const GENS = 2;
export const HOOKS = 3;
export const DIMS = 22;
export const STR_DIMS = 14;
export const NONE = 0xffffffff;
export const STR_BYTES = 256;
export const MAX_BIT_WORDS = 16;
export const MAX_BITS = MAX_BIT_WORDS * 64;
export const MAX_RANKS = 65536;
export const MAX_CLASSES = 32768;
export const MAX_LPM_ENTRIES = 262144;
export const INT_HEADER_BITS = 24;
/** Levels above its own cgroup at which a process finds its workload (PAL_WORKLOAD_DEPTH). */
export const WORKLOAD_DEPTH = 8;
export const PATH_MAX = 4096;

export const V_NONE = 0;
export const V_KILL = 1;
export const V_DENY = 2;
export const V_MONITOR = 3;
export const V_AUDIT = 4;
export const V_MASK = 0x0f;
export const V_USERSPACE = 0x80;

export const PATH_UNRESOLVED = 1;
export const PATH_DETACHED = 2;
export const PATH_NONE = 4;
export const PATH_ALIAS = 8;

export const ARGS_MAX = 1024;
export const ARGS_COUNT = 16;
export const ARGS_TRUNCATED = 1;
export const ARGS_UNREAD = 2;

export const EV_ACTED = 1;
export const EV_SIGNAL_FAILED = 2;
export const EV_MAPPED_V4 = 4;
export const EV_PROC_LAZY = 8;

/** PAL_C_* in order; counters beyond these are reserved. */
export const COUNTER_NAMES = [
  "events", "ringbufDrops", "unresolvedPaths", "procLazy", "procMapFull", "scratchBusy",
  "classMissing", "kills", "denies", "signalFailed", "decisions", "fdUnreadable",
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];
export const COUNTERS = 16;

/** Sizes and offsets (bytes) of the ABI structs. */
export const LAYOUT = {
  "sizeof pal_config": 16,
  "sizeof pal_hook": 192,
  "sizeof pal_class": 136,
  "sizeof pal_str_key": 260,
  "sizeof pal_int_key": 12,
  "sizeof pal_addr_key": 24,
  "sizeof pal_workload_key": 16,
  "sizeof pal_inode_key": 16,
  "sizeof pal_alias": 264,
  "sizeof pal_bin": 784,
  "sizeof pal_proc": 1576,
  "sizeof pal_event_path": 520,
  "sizeof pal_event": 5504,
  "pal_hook.default_class": 16,
  "pal_hook.unknown_class": 104,
  "pal_class.bits": 8,
  "pal_event.gen": 8,
  "pal_event.hook": 9,
  "pal_event.verdict": 10,
  "pal_event.rank": 12,
  "pal_event.flags": 16,
  "pal_event.seq": 20,
  "pal_event.ktime": 24,
  "pal_event.cgroup_id": 32,
  "pal_event.workload_id": 40,
  "pal_event.pid": 48,
  "pal_event.tgid": 52,
  "pal_event.ppid": 56,
  "pal_event.uid": 60,
  "pal_event.gid": 64,
  "pal_event.family": 68,
  "pal_event.protocol": 69,
  "pal_event.dport": 70,
  "pal_event.daddr": 72,
  "pal_event.binary": 88,
  "pal_event.parent": 608,
  "pal_event.ino": 1128,
  "pal_event.dev": 1136,
  "pal_event.alias_len": 1140,
  "pal_event.alias": 1144,
  "pal_event.path_len": 1400,
  "pal_event.path_flags": 1404,
  "pal_event.path": 1408,
  "pal_event.args": 1408,
  "sizeof pal_args": 1032,
  "pal_event_path.prefix": 8,
  "pal_event_path.suffix": 264,
} as const;

export const CONFIG_SIZE = LAYOUT["sizeof pal_config"];
export const HOOK_SIZE = LAYOUT["sizeof pal_hook"];
export const CLASS_SIZE = LAYOUT["sizeof pal_class"];
export const STR_KEY_SIZE = LAYOUT["sizeof pal_str_key"];
export const INT_KEY_SIZE = LAYOUT["sizeof pal_int_key"];
export const ADDR_KEY_SIZE = LAYOUT["sizeof pal_addr_key"];
export const WORKLOAD_KEY_SIZE = LAYOUT["sizeof pal_workload_key"];
export const INODE_KEY_SIZE = LAYOUT["sizeof pal_inode_key"];
export const ALIAS_SIZE = LAYOUT["sizeof pal_alias"];

/** Index of a generation's string trie for (hook, dimension) in the outer array pal_str. */
export function strSlot(gen: number, hook: number, dim: number): number {
  return (gen * HOOKS + hook) * STR_DIMS + dim;
}

export function hookIndex(gen: number, hook: number): number {
  return gen * HOOKS + hook;
}

export function classIndex(gen: number, cls: number): number {
  return gen * MAX_CLASSES + cls;
}

export function bitRankIndex(gen: number, hook: number, bit: number): number {
  return (gen * HOOKS + hook) * MAX_BITS + bit;
}

export function verdictIndex(gen: number, hook: number, rank: number): number {
  return (gen * HOOKS + hook) * MAX_RANKS + rank;
}

// Map values are in the host's byte order; every machine Palisade supports is little-endian.
const LE = true;

export function u32(value: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value >>> 0, LE);
  return b;
}

export function readU32(bytes: Uint8Array, offset = 0): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset, LE);
}

export interface HookValue {
  dims: number;
  alwaysRank: number;
  bitWords: number;
  defaultClass: number[];
  unknownClass: number[];
}

export function packHook(h: HookValue): Uint8Array {
  const b = new Uint8Array(HOOK_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, h.dims >>> 0, LE);
  v.setUint32(4, h.alwaysRank >>> 0, LE);
  v.setUint32(8, h.bitWords, LE);
  for (let d = 0; d < DIMS; d++) {
    v.setUint32(LAYOUT["pal_hook.default_class"] + 4 * d, h.defaultClass[d] ?? 0, LE);
    v.setUint32(LAYOUT["pal_hook.unknown_class"] + 4 * d, h.unknownClass[d] ?? 0, LE);
  }
  return b;
}

export function unpackHook(b: Uint8Array): HookValue {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const at = (base: number) => Array.from({ length: DIMS }, (_, d) => v.getUint32(base + 4 * d, LE));
  return {
    dims: v.getUint32(0, LE),
    alwaysRank: v.getUint32(4, LE),
    bitWords: v.getUint32(8, LE),
    defaultClass: at(LAYOUT["pal_hook.default_class"]),
    unknownClass: at(LAYOUT["pal_hook.unknown_class"]),
  };
}

export const IDLE_HOOK: HookValue = { dims: 0, alwaysRank: NONE, bitWords: 0, defaultClass: [], unknownClass: [] };

export interface ClassValue {
  bestSingle: number;
  /** MAX_BIT_WORDS words. */
  bits: bigint[];
}

export function packClass(c: ClassValue): Uint8Array {
  const b = new Uint8Array(CLASS_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, c.bestSingle >>> 0, LE);
  c.bits.forEach((w, i) => v.setBigUint64(LAYOUT["pal_class.bits"] + 8 * i, w, LE));
  return b;
}

/** packClass without BigInts: bit b of the little-endian u64 words is bit b & 7 of byte b >> 3. */
export function packClassBits(bestSingle: number, bits: Iterable<number>): Uint8Array {
  const b = new Uint8Array(CLASS_SIZE);
  new DataView(b.buffer).setUint32(0, bestSingle >>> 0, LE);
  const at = LAYOUT["pal_class.bits"];
  for (const bit of bits) b[at + (bit >> 3)]! |= 1 << (bit & 7);
  return b;
}

export function unpackClass(b: Uint8Array): ClassValue {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    bestSingle: v.getUint32(0, LE),
    bits: Array.from({ length: MAX_BIT_WORDS }, (_, i) => v.getBigUint64(LAYOUT["pal_class.bits"] + 8 * i, LE)),
  };
}

export function packConfig(activeGen: number, flips: bigint): Uint8Array {
  const b = new Uint8Array(CONFIG_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, activeGen, LE);
  v.setUint32(4, ABI_VERSION, LE);
  v.setBigUint64(8, flips, LE);
  return b;
}

export function unpackConfig(b: Uint8Array): { activeGen: number; abiVersion: number; flips: bigint } {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { activeGen: v.getUint32(0, LE), abiVersion: v.getUint32(4, LE), flips: v.getBigUint64(8, LE) };
}

/** pal_str_key: prefixlen (host order) then 256 data bytes. */
export function strKey(bits: number, bytes: Uint8Array): Uint8Array {
  const k = new Uint8Array(STR_KEY_SIZE);
  new DataView(k.buffer).setUint32(0, bits, LE);
  k.set(bytes.subarray(0, STR_BYTES), 4);
  return k;
}

/** An LPM key whose data starts with [gen, hook, dim]: prefixlen = 24 + entry bits, then the payload. */
function headerKey(size: number, gen: number, hook: number, dim: number, bits: number, payload: Uint8Array): Uint8Array {
  const k = new Uint8Array(size);
  new DataView(k.buffer).setUint32(0, INT_HEADER_BITS + bits, LE);
  k[4] = gen;
  k[5] = hook;
  k[6] = dim;
  k.set(payload.subarray(0, size - 7), 7);
  return k;
}

/** pal_int_key: 4 value bytes (big-endian) after the header. */
export function intKey(gen: number, hook: number, dim: number, bits: number, value: Uint8Array): Uint8Array {
  return headerKey(INT_KEY_SIZE, gen, hook, dim, bits, value.subarray(0, 4));
}

/** pal_addr_key: family and 16 address bytes after the header. */
export function addrKey(gen: number, hook: number, dim: number, bits: number, familyAndAddr: Uint8Array): Uint8Array {
  return headerKey(ADDR_KEY_SIZE, gen, hook, dim, bits, familyAndAddr);
}

/** Byte offset of the generation in int, addr, workload and inode keys (for clearing a generation). */
export const GEN_OFFSET = { int: 4, addr: 4, workload: 8, inode: 12 } as const;

/** pal_workload_key: a cgroup v2 id (the cgroup directory's inode number) for one generation and hook. */
export function workloadKey(gen: number, hook: number, cgroupId: bigint): Uint8Array {
  const k = new Uint8Array(WORKLOAD_KEY_SIZE);
  new DataView(k.buffer).setBigUint64(0, cgroupId, LE);
  k[8] = gen;
  k[9] = hook;
  return k;
}

/** A file's identity as the kernel encodes it: inode number and device (major << 20 | minor). */
export interface FileIdentity {
  ino: bigint;
  dev: number;
}

/** stat(2)'s st_dev (glibc encoding) to the kernel's internal dev_t. */
export function kernelDev(stDev: bigint): number {
  const major = ((stDev >> 8n) & 0xfffn) | ((stDev >> 32n) & ~0xfffn);
  const minor = (stDev & 0xffn) | ((stDev >> 12n) & ~0xffn);
  return Number(((major << 20n) | (minor & 0xfffffn)) & 0xffffffffn);
}

export function inodeKey(gen: number, id: FileIdentity): Uint8Array {
  const k = new Uint8Array(INODE_KEY_SIZE);
  const v = new DataView(k.buffer);
  v.setBigUint64(0, id.ino, LE);
  v.setUint32(8, id.dev >>> 0, LE);
  k[12] = gen;
  return k;
}

export function packAlias(path: Uint8Array, nameLength: number): Uint8Array {
  const b = new Uint8Array(ALIAS_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, path.length, LE);
  v.setUint32(4, nameLength, LE);
  b.set(path.subarray(0, STR_BYTES), 8);
  return b;
}

/** Fixed-size records ready for the addon's many-entries calls, packed as they are added. */
export class Records {
  readonly keySize: number;
  readonly valueSize: number;
  private keys: Buffer;
  private values: Buffer;
  private n = 0;

  constructor(keySize: number, valueSize: number) {
    this.keySize = keySize;
    this.valueSize = valueSize;
    this.keys = Buffer.allocUnsafe(keySize * 64);
    this.values = Buffer.allocUnsafe(valueSize * 64);
  }

  private grow(): void {
    if ((this.n + 1) * this.keySize <= this.keys.length) return;
    const keys = Buffer.allocUnsafe(this.keys.length * 2);
    this.keys.copy(keys, 0, 0, this.n * this.keySize);
    const values = Buffer.allocUnsafe(this.values.length * 2);
    this.values.copy(values, 0, 0, this.n * this.valueSize);
    this.keys = keys;
    this.values = values;
  }

  add(key: Uint8Array, value: Uint8Array): void {
    if (key.length !== this.keySize || value.length !== this.valueSize) throw new Error("record size mismatch");
    this.grow();
    this.keys.set(key, this.n * this.keySize);
    this.values.set(value, this.n * this.valueSize);
    this.n++;
  }

  /** A record of an array map: the key is a u32 index. */
  addAt(index: number, value: Uint8Array): void {
    if (this.keySize !== 4 || value.length !== this.valueSize) throw new Error("record size mismatch");
    this.grow();
    this.keys.writeUInt32LE(index >>> 0, this.n * 4);
    this.values.set(value, this.n * this.valueSize);
    this.n++;
  }

  get count(): number {
    return this.n;
  }

  key(i: number): Buffer {
    return this.keys.subarray(i * this.keySize, (i + 1) * this.keySize);
  }

  value(i: number): Buffer {
    return this.values.subarray(i * this.valueSize, (i + 1) * this.valueSize);
  }

  entries(): [Buffer, Buffer][] {
    return Array.from({ length: this.n }, (_, i) => [this.key(i), this.value(i)]);
  }

  keyBuffer(): Buffer {
    return this.keys.subarray(0, this.n * this.keySize);
  }

  valueBuffer(): Buffer {
    return this.values.subarray(0, this.n * this.valueSize);
  }
}
