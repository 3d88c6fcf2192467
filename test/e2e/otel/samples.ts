// Events of every hook and action with the log record each must become, written out by
// hand (not computed by the code under test). The unit tests check the mapping against
// them; the e2e tests check what a real collector received. The rule UUIDs come from
// Python: uuid5(uuid5(NAMESPACE_DNS, "rules.palisade.dev"), "<policy>/<rule>").

import type { RuntimeEvent } from "../../../src/events/event.ts";

export interface Expected {
  eventName: string;
  /** Nanoseconds since the epoch, as OTLP JSON writes them. */
  timeUnixNano: string;
  severityNumber: number;
  severityText: string;
  body: string;
  attributes: Record<string, unknown>;
}

export const RULE_VERSION = "plan-3f9a2c";
export const BACKENDS = { "process.exec": "tracepoint", "file.open": "tracepoint", "net.connect": "cgroup" } as const;

const pod = {
  namespace: "prod", pod: "api-7d9f-xk2", container: "api", image: "registry.example:5000/team/api:1.4.2",
  podUid: "0b9d6c3e-1f4a-4c8e-9a77-3d2b1e5f6a90", containerId: "containerd://4f1c2a9e8b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e",
};
const podAttributes = {
  "k8s.namespace.name": "prod",
  "k8s.pod.name": "api-7d9f-xk2",
  "k8s.pod.uid": "0b9d6c3e-1f4a-4c8e-9a77-3d2b1e5f6a90",
  "k8s.container.name": "api",
  "container.id": "4f1c2a9e8b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e",
  "container.image.name": "registry.example:5000/team/api",
  "container.image.tags": ["1.4.2"],
};

/** `pid` distinguishes runs that share a collector. */
export function samples(pid: number): { event: RuntimeEvent; expected: Expected }[] {
  return [
    {
      event: {
        time: "2026-11-24T10:00:00.123456789Z", node: "node-1", hook: "process.exec", action: "killed",
        policy: "no-shells-in-prod", rule: "no-shells", severity: "critical",
        process: { pid, ppid: 100, uid: 0, gid: 0, binary: "/bin/sh", args: ["sh", "-c", "id"], cgroupId: "4242" },
        parent: { pid: 100, binary: "/usr/bin/python3" }, k8s: pod,
      },
      expected: {
        eventName: "palisade.process.killed", timeUnixNano: "1795514400123456789", severityNumber: 21, severityText: "critical",
        body: `killed exec of /bin/sh (pid ${pid}): rule no-shells of policy no-shells-in-prod`,
        attributes: {
          "palisade.action": "killed", "palisade.hook": "process.exec", "palisade.backend": "tracepoint",
          "process.pid": pid, "process.parent_pid": 100, "process.executable.path": "/bin/sh", "process.command_args": ["sh", "-c", "id"],
          "process.user.id": 0, "palisade.parent.executable.path": "/usr/bin/python3", ...podAttributes,
          "security_rule.name": "no-shells", "security_rule.ruleset.name": "no-shells-in-prod",
          "security_rule.uuid": "7ac032b3-79c4-59ae-b955-83a1add915cb", "security_rule.version": RULE_VERSION,
        },
      },
    },
    {
      event: {
        time: "2026-11-24T10:00:01Z", hook: "file.open", action: "denied", policy: "prod/secrets", rule: "no-shadow", severity: "high",
        process: { pid, ppid: 101, uid: 1000, binary: "/usr/bin/cat", args: ["cat", "/etc/shadow"] },
        parent: { pid: 101, binary: "/bin/bash" }, file: { path: "/etc/shadow" }, k8s: pod,
      },
      expected: {
        eventName: "palisade.access.denied", timeUnixNano: "1795514401000000000", severityNumber: 17, severityText: "high",
        body: `denied open of /etc/shadow by /usr/bin/cat (pid ${pid}): rule no-shadow of policy prod/secrets`,
        attributes: {
          "palisade.action": "denied", "palisade.hook": "file.open", "palisade.backend": "tracepoint",
          "process.pid": pid, "process.parent_pid": 101, "process.executable.path": "/usr/bin/cat", "process.command_args": ["cat", "/etc/shadow"],
          "process.user.id": 1000, "palisade.parent.executable.path": "/bin/bash", "file.path": "/etc/shadow", ...podAttributes,
          "security_rule.name": "no-shadow", "security_rule.ruleset.name": "prod/secrets",
          "security_rule.uuid": "272cc0a5-f16e-5a5c-9898-43bb16ec9dfe", "security_rule.version": RULE_VERSION,
        },
      },
    },
    {
      // A host process (no pod), IPv6.
      event: {
        time: "2026-11-24T10:00:02.5Z", hook: "net.connect", action: "denied", policy: "egress", rule: "no-metadata", severity: "medium",
        process: { pid, uid: 33, binary: "/usr/bin/curl" }, net: { family: "ipv6", protocol: "tcp", daddr: "fd00:ec2::254", dport: 80 },
      },
      expected: {
        eventName: "palisade.access.denied", timeUnixNano: "1795514402500000000", severityNumber: 15, severityText: "medium",
        body: `denied connect to [fd00:ec2::254]:80/tcp by /usr/bin/curl (pid ${pid}): rule no-metadata of policy egress`,
        attributes: {
          "palisade.action": "denied", "palisade.hook": "net.connect", "palisade.backend": "cgroup",
          "process.pid": pid, "process.executable.path": "/usr/bin/curl", "process.user.id": 33,
          "network.peer.address": "fd00:ec2::254", "network.peer.port": 80, "network.transport": "tcp", "network.type": "ipv6",
          "security_rule.name": "no-metadata", "security_rule.ruleset.name": "egress",
          "security_rule.uuid": "e2ea1d4a-0f45-5a94-87e1-22cfd9037591", "security_rule.version": RULE_VERSION,
        },
      },
    },
    {
      event: {
        time: "2026-11-24T10:00:03Z", hook: "net.connect", action: "audited", policy: "egress", rule: "log-dns", severity: "low",
        process: { pid, uid: 0, binary: "/usr/sbin/unbound" }, net: { family: "ipv4", protocol: "udp", daddr: "9.9.9.9", dport: 53 },
      },
      expected: {
        eventName: "palisade.policy.audit", timeUnixNano: "1795514403000000000", severityNumber: 13, severityText: "low",
        body: `audited connect to 9.9.9.9:53/udp by /usr/sbin/unbound (pid ${pid}): rule log-dns of policy egress`,
        attributes: {
          "palisade.action": "audited", "palisade.hook": "net.connect", "palisade.backend": "cgroup",
          "process.pid": pid, "process.executable.path": "/usr/sbin/unbound", "process.user.id": 0,
          "network.peer.address": "9.9.9.9", "network.peer.port": 53, "network.transport": "udp", "network.type": "ipv4",
          "security_rule.name": "log-dns", "security_rule.ruleset.name": "egress",
          "security_rule.uuid": "a7ea74e6-3f37-56d1-ad62-548098e46a9e", "security_rule.version": RULE_VERSION,
        },
      },
    },
    {
      event: {
        time: "2026-11-24T10:00:04Z", hook: "file.open", action: "monitor", policy: "staging/trial", rule: "no-ssh-keys", severity: "info",
        process: { pid, ppid: 1, uid: 1000, binary: "/usr/bin/less" }, file: { path: "/home/dev/.ssh/id_ed25519" },
      },
      expected: {
        eventName: "palisade.policy.monitor", timeUnixNano: "1795514404000000000", severityNumber: 9, severityText: "info",
        body: `monitored open of /home/dev/.ssh/id_ed25519 by /usr/bin/less (pid ${pid}): rule no-ssh-keys of policy staging/trial`,
        attributes: {
          "palisade.action": "monitor", "palisade.hook": "file.open", "palisade.backend": "tracepoint",
          "process.pid": pid, "process.parent_pid": 1, "process.executable.path": "/usr/bin/less", "process.user.id": 1000,
          "file.path": "/home/dev/.ssh/id_ed25519",
          "security_rule.name": "no-ssh-keys", "security_rule.ruleset.name": "staging/trial",
          "security_rule.uuid": "49ada9d9-1d2b-55df-b689-71f1b8ce8054", "security_rule.version": RULE_VERSION,
        },
      },
    },
  ];
}
