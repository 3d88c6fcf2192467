// The typed variables a rule's `match` can use, per hook, and how an event provides them.
// One table, read by the CEL environment, the compiler and the reference evaluator.

import type { RuntimeEvent } from "../events/event.ts";
import type { Hook } from "./model.ts";

export type FieldType = "string" | "int" | "list<string>" | "map<string, string>";

export interface FieldSpec {
  /** CEL path, e.g. "process.parent.binary". */
  path: string;
  type: FieldType;
  doc: string;
}

export const VARIABLES = ["process", "file", "net", "k8s"] as const;
export type Variable = (typeof VARIABLES)[number];

export const FIELDS: readonly FieldSpec[] = [
  { path: "process.pid", type: "int", doc: "thread-group id, in the node's pid namespace" },
  { path: "process.uid", type: "int", doc: "real user id" },
  { path: "process.gid", type: "int", doc: "real group id" },
  { path: "process.binary", type: "string", doc: "absolute, resolved path of the executable (for process.exec: the one being executed)" },
  { path: "process.name", type: "string", doc: "last component of process.binary" },
  { path: "process.args", type: "list<string>", doc: "argv; checked in user space only" },
  { path: "process.parent.binary", type: "string", doc: "absolute path of the parent's executable" },
  { path: "process.parent.name", type: "string", doc: "last component of process.parent.binary" },
  { path: "file.path", type: "string", doc: "absolute, resolved path of the opened file" },
  { path: "file.name", type: "string", doc: "last component of file.path" },
  { path: "file.dir", type: "string", doc: "file.path without its last component" },
  { path: "net.family", type: "string", doc: '"ipv4" or "ipv6"' },
  { path: "net.protocol", type: "string", doc: '"tcp" or "udp"' },
  { path: "net.daddr", type: "string", doc: "destination address, canonical text form" },
  { path: "net.dport", type: "int", doc: "destination port" },
  { path: "k8s.namespace", type: "string", doc: 'pod namespace ("" for host processes)' },
  { path: "k8s.pod", type: "string", doc: "pod name" },
  { path: "k8s.container", type: "string", doc: "container name" },
  { path: "k8s.image", type: "string", doc: "container image" },
  { path: "k8s.labels", type: "map<string, string>", doc: "pod labels" },
];

/** Which variables each hook provides. */
export const HOOK_VARIABLES: Record<Hook, readonly Variable[]> = {
  "process.exec": ["process", "k8s"],
  "file.open": ["process", "file", "k8s"],
  "net.connect": ["process", "net", "k8s"],
};

export const NET_FAMILIES = { ipv4: 2, ipv6: 10 } as const;
export const NET_PROTOCOLS = { tcp: 6, udp: 17 } as const;

export function fieldsOf(variable: Variable): FieldSpec[] {
  return FIELDS.filter((f) => f.path.startsWith(variable + "."));
}

export function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

export function dirname(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash <= 0 ? "/" : path.slice(0, slash);
}

/** The value of a field for an event, as the kernel sees it; undefined when the hook lacks it. */
export function fieldValue(event: RuntimeEvent, path: string): string | number | undefined {
  const p = event.process;
  switch (path) {
    case "process.pid": return p.pid;
    case "process.uid": return p.uid;
    case "process.gid": return p.gid ?? 0;
    case "process.binary": return p.binary;
    case "process.name": return basename(p.binary);
    case "process.parent.binary": return event.parent?.binary ?? "";
    case "process.parent.name": return basename(event.parent?.binary ?? "");
    case "file.path": return event.file?.path;
    case "file.name": return event.file && basename(event.file.path);
    case "file.dir": return event.file && dirname(event.file.path);
    case "net.family": return event.net?.family;
    case "net.protocol": return event.net?.protocol;
    case "net.daddr": return event.net?.daddr;
    case "net.dport": return event.net?.dport;
    default: return undefined;
  }
}

/** The CEL activation (variable values) for an event; CEL ints are bigints. */
export function activation(event: RuntimeEvent): Record<Variable, Record<string, unknown>> {
  const str = (path: string) => String(fieldValue(event, path) ?? "");
  const int = (path: string) => BigInt(fieldValue(event, path) ?? 0);
  const k = event.k8s ?? {};
  return {
    process: {
      pid: int("process.pid"),
      uid: int("process.uid"),
      gid: int("process.gid"),
      binary: str("process.binary"),
      name: str("process.name"),
      args: event.process.args ?? [],
      parent: { binary: str("process.parent.binary"), name: str("process.parent.name") },
    },
    file: { path: str("file.path"), name: str("file.name"), dir: str("file.dir") },
    net: { family: str("net.family"), protocol: str("net.protocol"), daddr: str("net.daddr"), dport: int("net.dport") },
    k8s: {
      namespace: k.namespace ?? "",
      pod: k.pod ?? "",
      container: k.container ?? "",
      image: k.image ?? "",
      labels: k.labels ?? {},
    },
  };
}
