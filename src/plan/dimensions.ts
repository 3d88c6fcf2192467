// Kernel dimensions: each is one map lookup per event. A rule constrains some of them;
// the kernel looks up only those that some rule of the hook constrains.
// Ids are part of the kernel ABI (bpf/lsm shares them): append, never renumber.

import type { Hook } from "../policy/model.ts";
import { NET_FAMILIES, NET_PROTOCOLS } from "../policy/fields.ts";

/**
 * - prefix: LPM trie over the string's bytes; exact values are stored as prefixes ending in NUL.
 * - suffix: LPM trie over the reversed string, for endsWith.
 * - int: LPM trie over the big-endian u32, ranges stored as aligned blocks.
 * - addr: LPM trie over [family, 16 address bytes].
 * - workload: the process's cgroup, classified in user space against Kubernetes metadata.
 */
export type DimensionKind = "prefix" | "suffix" | "int" | "addr" | "workload";

export interface Dimension {
  id: number;
  name: string;
  /** The CEL field it reads; "" for workload. */
  field: string;
  kind: DimensionKind;
  /** For enum-like string fields (net.family, net.protocol): text -> kernel number. */
  values?: Readonly<Record<string, number>>;
}

const stringDimensions = (field: string, id: number): Dimension[] => [
  { id, name: field, field, kind: "prefix" },
  { id: id + 1, name: `${field}:suffix`, field, kind: "suffix" },
];

export const DIMENSIONS: readonly Dimension[] = [
  ...stringDimensions("process.binary", 0),
  ...stringDimensions("process.name", 2),
  ...stringDimensions("process.parent.binary", 4),
  ...stringDimensions("process.parent.name", 6),
  ...stringDimensions("file.path", 8),
  ...stringDimensions("file.name", 10),
  ...stringDimensions("file.dir", 12),
  { id: 14, name: "process.uid", field: "process.uid", kind: "int" },
  { id: 15, name: "process.gid", field: "process.gid", kind: "int" },
  { id: 16, name: "process.pid", field: "process.pid", kind: "int" },
  { id: 17, name: "net.dport", field: "net.dport", kind: "int" },
  { id: 18, name: "net.family", field: "net.family", kind: "int", values: NET_FAMILIES },
  { id: 19, name: "net.protocol", field: "net.protocol", kind: "int", values: NET_PROTOCOLS },
  { id: 20, name: "net.daddr", field: "net.daddr", kind: "addr" },
  { id: 21, name: "workload", field: "", kind: "workload" },
];

export const HOOK_IDS: Record<Hook, number> = { "process.exec": 0, "file.open": 1, "net.connect": 2 };

export function dimensionByName(name: string): Dimension {
  const d = DIMENSIONS.find((x) => x.name === name);
  if (!d) throw new Error(`unknown dimension ${name}`);
  return d;
}

/** The dimension a field's exact/prefix tests use, and the one its suffix tests use. */
export function dimensionsOfField(field: string): Dimension[] {
  return DIMENSIONS.filter((d) => d.field === field);
}

/** Longest string the kernel compares, in bytes (key buffers are 256 bytes; exact values need a NUL). */
export const MAX_STRING_BYTES = 255;
