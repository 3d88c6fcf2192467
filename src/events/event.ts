// The event format of the brief: one JSON object per line, produced by the agent and
// consumed by `palisade test`, sinks and `observe`.

import type { Hook } from "../policy/model.ts";

export type EventAction = "denied" | "killed" | "audited" | "monitor";

export interface ProcessInfo {
  pid: number;
  ppid?: number;
  uid: number;
  gid?: number;
  binary: string;
  args?: string[];
  cgroupId?: string;
}

export interface KubernetesInfo {
  namespace?: string;
  pod?: string;
  container?: string;
  image?: string;
  /** Pod labels; not in the agent's output, accepted in recorded test events to exercise selectors. */
  labels?: Record<string, string>;
  /** Namespace labels; likewise only for recorded test events. */
  namespaceLabels?: Record<string, string>;
  /** metadata.uid of the pod. */
  podUid?: string;
  /** The container runtime's id, as in the pod's status (`containerd://…` prefix removed or kept as given). */
  containerId?: string;
}

export interface RuntimeEvent {
  time?: string;
  node?: string;
  hook: Hook;
  action?: EventAction;
  policy?: string;
  rule?: string;
  severity?: string;
  process: ProcessInfo;
  parent?: { pid?: number; binary?: string };
  k8s?: KubernetesInfo;
  file?: { path: string };
  net?: { family: "ipv4" | "ipv6"; protocol: "tcp" | "udp"; daddr: string; dport: number };
}
