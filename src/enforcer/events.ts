// Ring buffer records (struct pal_event) decoded, and turned into the events of the brief
// with the plan of the generation that decided them.

import type { EventAction, KubernetesInfo, RuntimeEvent } from "../events/event.ts";
import { HOOKS, policyId, type Hook } from "../policy/model.ts";
import { formatIp } from "../policy/ip.ts";
import { evaluate } from "../plan/evaluate.ts";
import type { KernelPlan, Slot } from "../plan/types.ts";
import {
  ABI_VERSION, ARGS_TRUNCATED, ARGS_UNREAD, EV_ACTED, EV_MAPPED_V4, EV_PROC_LAZY, EV_SIGNAL_FAILED, LAYOUT, PATH_DETACHED, PATH_NONE, PATH_UNRESOLVED,
  PATH_ALIAS, STR_BYTES, V_AUDIT, V_DENY, V_KILL, V_MASK, V_MONITOR, V_USERSPACE,
} from "./abi.ts";

export type KernelVerdict = "kill" | "deny" | "monitor" | "audit";

export interface KernelPath {
  /** The path; when longer than 512 bytes its middle is unknown and shown as "…". */
  path: string;
  length: number;
  /** The whole path is known (<= 512 bytes, or read in full). */
  complete: boolean;
  /** The kernel could not resolve it (too deep or too long): decided as the unknown class. */
  unresolved: boolean;
  /** Not reachable from the process's root (pseudo files such as memfd or pipes, other mount trees). */
  detached: boolean;
  /** The file is one a rule names exactly (same inode): `path` is that name, `openedAs` the name used. */
  openedAs?: string;
}

/** One record as the kernel wrote it. */
export interface KernelRecord {
  gen: number;
  /** Low 32 bits of the generation flip counter when the event began: which plan decided. */
  seq: number;
  hook: Hook;
  rank: number;
  verdict: KernelVerdict;
  /** The slot's rule is only partly decidable in the kernel: user space confirms. */
  userspaceCheck: boolean;
  /** The kernel carried out kill or deny. */
  acted: boolean;
  signalFailed: boolean;
  mappedIpv4: boolean;
  lazyProcess: boolean;
  bootTimeNs: bigint;
  cgroupId: bigint;
  /** The classified cgroup (the process's own or an ancestor) that made it a workload. */
  workloadId?: bigint;
  tid: number;
  pid: number;
  ppid: number;
  uid: number;
  gid: number;
  binary: KernelPath;
  parent: KernelPath;
  /** process.exec: the arguments as the caller passed them to execve (bounded: ARGS_COUNT, ARGS_MAX bytes). */
  args?: { values: string[]; truncated: boolean };
  file?: KernelPath;
  /** The opened file's inode and device (kernel encoding). */
  inode?: { ino: bigint; dev: number };
  net?: { family: 4 | 6; protocol: number; daddr: string; dport: number };
}

const VERDICTS: Record<number, KernelVerdict> = { [V_KILL]: "kill", [V_DENY]: "deny", [V_MONITOR]: "monitor", [V_AUDIT]: "audit" };

function text(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
}

function pathFlags(flags: number) {
  return { unresolved: (flags & PATH_UNRESOLVED) !== 0, detached: (flags & PATH_DETACHED) !== 0, none: (flags & PATH_NONE) !== 0 };
}

/** A path from its 256-byte prefix and reversed 256-byte suffix: whole up to 512 bytes. */
export function joinPath(length: number, prefix: Uint8Array, reversedSuffix: Uint8Array): { path: string; complete: boolean } {
  if (length <= STR_BYTES) return { path: text(prefix.subarray(0, length)), complete: true };
  const tail = Uint8Array.from(reversedSuffix).reverse();
  if (length <= 2 * STR_BYTES) {
    return { path: text(Buffer.concat([prefix, tail.subarray(2 * STR_BYTES - length)])), complete: true };
  }
  return { path: `${text(prefix)}…${text(tail)}`, complete: false };
}

function eventPath(record: Uint8Array, at: number): KernelPath {
  const v = new DataView(record.buffer, record.byteOffset, record.byteLength);
  const length = v.getUint32(at, true);
  const flags = v.getUint32(at + 4, true);
  const prefix = record.subarray(at + LAYOUT["pal_event_path.prefix"], at + LAYOUT["pal_event_path.prefix"] + STR_BYTES);
  const suffix = record.subarray(at + LAYOUT["pal_event_path.suffix"], at + LAYOUT["pal_event_path.suffix"] + STR_BYTES);
  const f = pathFlags(flags);
  const { path, complete } = f.none ? { path: "", complete: true } : joinPath(length, prefix, suffix);
  return { path, length, complete, unresolved: f.unresolved, detached: f.detached };
}

export function decodeRecord(record: Uint8Array): KernelRecord {
  const v = new DataView(record.buffer, record.byteOffset, record.byteLength);
  const abi = v.getUint32(0, true);
  if (abi !== ABI_VERSION) throw new Error(`event record of ABI version ${abi}; this agent speaks ${ABI_VERSION}`);
  if (record.byteLength < LAYOUT["pal_event.path"]) throw new Error(`event record too short (${record.byteLength} bytes)`);
  const hookId = record[LAYOUT["pal_event.hook"]]!;
  const hook = HOOKS[hookId];
  if (!hook) throw new Error(`event record for unknown hook ${hookId}`);
  const verdictByte = record[LAYOUT["pal_event.verdict"]]!;
  const flags = v.getUint32(LAYOUT["pal_event.flags"], true);
  const out: KernelRecord = {
    gen: record[LAYOUT["pal_event.gen"]]!,
    seq: v.getUint32(LAYOUT["pal_event.seq"], true),
    hook,
    rank: v.getUint32(LAYOUT["pal_event.rank"], true),
    verdict: VERDICTS[verdictByte & V_MASK] ?? "audit",
    userspaceCheck: (verdictByte & V_USERSPACE) !== 0,
    acted: (flags & EV_ACTED) !== 0,
    signalFailed: (flags & EV_SIGNAL_FAILED) !== 0,
    mappedIpv4: (flags & EV_MAPPED_V4) !== 0,
    lazyProcess: (flags & EV_PROC_LAZY) !== 0,
    bootTimeNs: v.getBigUint64(LAYOUT["pal_event.ktime"], true),
    cgroupId: v.getBigUint64(LAYOUT["pal_event.cgroup_id"], true),
    tid: v.getUint32(LAYOUT["pal_event.pid"], true),
    pid: v.getUint32(LAYOUT["pal_event.tgid"], true),
    ppid: v.getUint32(LAYOUT["pal_event.ppid"], true),
    uid: v.getUint32(LAYOUT["pal_event.uid"], true),
    gid: v.getUint32(LAYOUT["pal_event.gid"], true),
    binary: eventPath(record, LAYOUT["pal_event.binary"]),
    parent: eventPath(record, LAYOUT["pal_event.parent"]),
  };
  const workloadId = v.getBigUint64(LAYOUT["pal_event.workload_id"], true);
  if (workloadId) out.workloadId = workloadId;
  if (hook === "file.open") {
    const length = v.getUint32(LAYOUT["pal_event.path_len"], true);
    const f = pathFlags(v.getUint32(LAYOUT["pal_event.path_flags"], true));
    const flags = v.getUint32(LAYOUT["pal_event.path_flags"], true);
    const opened = text(record.subarray(LAYOUT["pal_event.path"], LAYOUT["pal_event.path"] + length));
    out.file = { path: opened, length, complete: true, unresolved: f.unresolved, detached: f.detached };
    if (flags & PATH_ALIAS) {
      const aliasLength = Math.min(v.getUint32(LAYOUT["pal_event.alias_len"], true), STR_BYTES);
      const alias = text(record.subarray(LAYOUT["pal_event.alias"], LAYOUT["pal_event.alias"] + aliasLength));
      out.file = { ...out.file, path: alias, length: aliasLength, unresolved: false, openedAs: opened };
    }
    out.inode = { ino: v.getBigUint64(LAYOUT["pal_event.ino"], true), dev: v.getUint32(LAYOUT["pal_event.dev"], true) };
  }
  if (hook === "process.exec") {
    const length = Math.min(v.getUint32(LAYOUT["pal_event.path_len"], true), record.byteLength - LAYOUT["pal_event.args"]);
    const flags = v.getUint32(LAYOUT["pal_event.path_flags"], true);
    if (!(flags & ARGS_UNREAD) || length > 0) {
      const data = text(record.subarray(LAYOUT["pal_event.args"], LAYOUT["pal_event.args"] + length));
      // Each argument ends with a NUL; a cut-short last one ends with the NUL the kernel wrote.
      const values = data.endsWith("\0") ? data.slice(0, -1).split("\0") : data ? data.split("\0") : [];
      out.args = { values, truncated: (flags & (ARGS_TRUNCATED | ARGS_UNREAD)) !== 0 };
    }
  }
  if (hook === "net.connect") {
    const family = record[LAYOUT["pal_event.family"]] === 6 ? 6 : 4;
    const addr = record.subarray(LAYOUT["pal_event.daddr"], LAYOUT["pal_event.daddr"] + (family === 4 ? 4 : 16));
    out.net = {
      family,
      protocol: record[LAYOUT["pal_event.protocol"]]!,
      daddr: formatIp({ family, bytes: Uint8Array.from(addr) }),
      dport: v.getUint16(LAYOUT["pal_event.dport"], true),
    };
  }
  return out;
}

const PROTOCOLS: Record<number, "tcp" | "udp"> = { 6: "tcp", 17: "udp" };

/** An event as the agent reports it, with what the kernel said and did. */
export interface EnforcerEvent {
  event: RuntimeEvent;
  record: KernelRecord;
  /** The winning slot (after user-space confirmation), when the plan of that generation is known. */
  slot?: Slot;
}

const ACTIONS: Record<KernelVerdict, EventAction> = { kill: "killed", deny: "denied", monitor: "monitor", audit: "audited" };

/** The event's fields as the kernel saw them (what evaluate() needs). */
export function runtimeEventOf(record: KernelRecord): RuntimeEvent {
  const e: RuntimeEvent = {
    hook: record.hook,
    process: {
      pid: record.pid, ppid: record.ppid, uid: record.uid, gid: record.gid, binary: record.binary.path,
      ...(record.args && { args: record.args.values }), cgroupId: record.cgroupId.toString(),
    },
    parent: { pid: record.ppid, binary: record.parent.path },
  };
  if (record.file) e.file = { path: record.file.path };
  if (record.net) {
    e.net = {
      family: record.net.family === 6 ? "ipv6" : "ipv4",
      // Other protocols (ICMP sockets) are reported by number; no rule can name them.
      protocol: PROTOCOLS[record.net.protocol] ?? (String(record.net.protocol) as "tcp"),
      daddr: record.net.daddr,
      dport: record.net.dport,
    };
  }
  return e;
}

/** The workload fields events report (labels only decide selectors). */
const REPORTED_K8S = ["namespace", "pod", "container", "image", "podUid", "containerId"] as const;

/**
 * Turns a record into the reported event. Returns undefined when user space must confirm
 * the rule (userspaceCheck) and it does not hold: the kernel over-approximated.
 * `workload` is the one the record's workloadId names.
 */
export function toEnforcerEvent(
  record: KernelRecord, plan: KernelPlan | undefined, options: { node?: string; time?: Date; workload?: KubernetesInfo } = {},
): EnforcerEvent | undefined {
  const event = runtimeEventOf(record);
  if (options.time) event.time = options.time.toISOString();
  if (options.node) event.node = options.node;
  event.action = ACTIONS[record.verdict];
  // The whole workload while deciding (selectors read labels), the reported fields after.
  if (options.workload) event.k8s = options.workload;
  const result = decided(event, record, plan);
  if (result && options.workload) {
    const k8s: KubernetesInfo = {};
    for (const f of REPORTED_K8S) if (options.workload[f] !== undefined) k8s[f] = options.workload[f];
    result.event.k8s = k8s;
  }
  return result;
}

function decided(event: RuntimeEvent, record: KernelRecord, plan: KernelPlan | undefined): EnforcerEvent | undefined {
  if (!plan) return { event, record };
  const hook = plan.hooks.find((h) => h.hook === record.hook);
  let slot = hook?.slots[record.rank];
  if (!hook || !slot) return { event, record };
  if (record.userspaceCheck) {
    // Only audit and monitor slots carry a check, and they never act: deciding again in
    // user space with the event's values is safe. (Arguments beyond what the kernel keeps
    // are not seen: a test on them decides on the kept ones.)
    const decision = evaluate(plan, event).decision;
    if (!decision) return undefined;
    slot = decision.slot;
    // Ranks after a monitor or audit slot are monitor or audit too: never an action.
    if (decision.rank !== record.rank) event.action = slot.verdict;
  }
  const policy = plan.policies[slot.policy]!;
  event.policy = policyId(policy);
  event.rule = slot.rule;
  event.severity = slot.severity;
  return { event, record, slot };
}
