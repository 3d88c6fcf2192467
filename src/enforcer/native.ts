// The native addon (src/enforcer/native/enforcer.cc), typed. It is built by
// scripts/build-enforcer into build/enforcer/; PALISADE_ENFORCER_BUILD overrides where.

import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const BUILD_DIR = process.env.PALISADE_ENFORCER_BUILD ?? resolve(dirname(fileURLToPath(import.meta.url)), "../../build/enforcer");

export interface MapInfo {
  name: string;
  fd: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export interface ProgramInfo {
  name: string;
  section: string;
  fd: number;
  id?: number;
  runCount?: bigint;
  runTimeNs?: bigint;
  recursionMisses?: bigint;
  verifiedInsns?: number;
  xlatedBytes?: number;
}

export interface AttachSpec {
  program: string;
  /** "auto": where the program's section says (lsm/*, fmod_ret/*, kprobe/*); target is for reports. */
  kind: "raw_tp" | "tracepoint" | "cgroup" | "auto";
  target: string;
  /** Pin name under <pinDir>/links. */
  key: string;
}

export interface LinkInfo {
  program: string;
  target: string;
  pin: string;
}

export interface BpfObject {
  mapFd(name: string): number;
  maps(): MapInfo[];
  programs(): ProgramInfo[];
  attach(specs: AttachSpec[]): LinkInfo[];
  links(): LinkInfo[];
  detach(): void;
  /** Each call: one batch of records, back to back in `bytes`, record i ending at ends[i]. */
  startEvents(map: string, onRecords: (bytes: Buffer, ends: Uint32Array) => void, options?: { unref?: boolean }): void;
  stopEvents(): void;
  close(options?: { detach?: boolean; unpinMaps?: boolean }): void;
}

export interface ProbeAttempt {
  ok: boolean;
  error?: string;
  log?: string;
}

export interface Native {
  /** maxEntries: sizes set before loading, by map name (a pinned map taken over keeps its own). */
  BpfObject: new (path: string, options?: { pinDir?: string; reuseMaps?: boolean; programs?: string[]; maxEntries?: Record<string, number> }) => BpfObject;
  mapUpdate(fd: number, key: Uint8Array, value: Uint8Array, flags?: number): void;
  mapUpdateMany(fd: number, keys: Uint8Array, values: Uint8Array, keySize: number, valueSize: number, options?: { batch?: boolean; flags?: number }): number;
  mapDeleteMany(fd: number, keys: Uint8Array, keySize: number): number;
  mapLookup(fd: number, key: Uint8Array, valueSize: number): Buffer | null;
  mapKeys(fd: number, keySize: number): Buffer;
  mapCreate(type: number, keySize: number, valueSize: number, maxEntries: number, flags: number, name?: string): number;
  outerSet(fd: number, slots: Uint32Array, innerFds: Int32Array): void;
  outerGetId(fd: number, slot: number): number;
  mapFdById(id: number): number;
  objGet(path: string): number;
  closeFd(fd: number): void;
  percpuSums(fd: number, entries: number): bigint[];
  probeProgram(objectPath: string, program: string, options?: { attach?: "auto" | "none" }): ProbeAttempt;
  layout(): Record<string, number>;
  libbpfVersion(): string;
  mount(source: string, target: string, fstype: string): void;
  bootTimeNs(): bigint;
}

/** Error from libbpf: the message carries libbpf's lines and the verifier log's tail. */
export interface BpfError extends Error {
  errno?: number;
  libbpfLog?: string;
  verifierLogTail?: string;
}

let cached: Native | undefined;

export function native(): Native {
  if (cached) return cached;
  const path = join(BUILD_DIR, "palisade_enforcer.node");
  if (!existsSync(path)) {
    throw new Error(`the enforcer's native addon is not built (${path} is missing): run scripts/setup (or scripts/build-enforcer)`);
  }
  cached = createRequire(import.meta.url)(path) as Native;
  return cached;
}

export function bpfObjectPath(name: string): string {
  const path = join(BUILD_DIR, `${name}.bpf.o`);
  if (!existsSync(path)) throw new Error(`BPF object ${path} is missing: run scripts/setup (or scripts/build-enforcer)`);
  return path;
}

// BPF map types and flags the enforcer creates itself (linux/bpf.h).
export const BPF_MAP_TYPE_HASH = 1;
export const BPF_MAP_TYPE_ARRAY = 2;
export const BPF_MAP_TYPE_LPM_TRIE = 11;
export const BPF_F_NO_PREALLOC = 1;
export const BPF_ANY = 0;
