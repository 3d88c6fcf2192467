// What the enforcer needs of the host before it loads anything: privileges, the BPF,
// trace and security file systems, and the cgroup v2 hierarchy the connect hooks attach to.

import { existsSync, readFileSync } from "node:fs";
import { native } from "./native.ts";

export interface Mount {
  source: string;
  target: string;
  type: string;
}

export function mounts(): Mount[] {
  return readFileSync("/proc/self/mounts", "utf8").split("\n").filter(Boolean).map((line) => {
    const [source, target, type] = line.split(" ");
    // /proc/mounts escapes spaces and other bytes as \ooo
    const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    return { source: unescape(source!), target: unescape(target!), type: type! };
  });
}

const FILESYSTEMS = [
  { type: "bpf", target: "/sys/fs/bpf" },
  { type: "tracefs", target: "/sys/kernel/tracing" },
  { type: "securityfs", target: "/sys/kernel/security" },
] as const;

/** Mounts bpffs, tracefs and securityfs where they are expected, unless something already did. */
export function ensureFilesystems(): void {
  const present = mounts();
  for (const fs of FILESYSTEMS) {
    if (present.some((m) => m.type === fs.type && m.target === fs.target)) continue;
    if (!existsSync(fs.target)) continue;
    try {
      native().mount(fs.type, fs.target, fs.type);
    } catch (e) {
      throw new Error(`${fs.type} is not mounted on ${fs.target} and mounting it failed (${(e as Error).message})`, { cause: e });
    }
  }
}

/** Where cgroup v2 is mounted (the unified hierarchy), or undefined. */
export function cgroup2Root(): string | undefined {
  const v2 = mounts().filter((m) => m.type === "cgroup2");
  // Prefer the canonical location on pure v2 hosts; hybrid hosts mount it at .../unified.
  return (v2.find((m) => m.target === "/sys/fs/cgroup") ?? v2[0])?.target;
}

/** Why this process cannot load BPF programs, or undefined when it can (by all we can tell without trying). */
export function privilegeProblem(): string | undefined {
  if (process.platform !== "linux") return `BPF enforcement needs Linux (this is ${process.platform})`;
  // Capabilities, not the uid: root in a container may have none.
  const status = readFileSync("/proc/self/status", "utf8");
  const eff = /CapEff:\s*([0-9a-f]+)/.exec(status)?.[1];
  const caps = eff ? BigInt("0x" + eff) : 0n;
  const has = (bit: number) => ((caps >> BigInt(bit)) & 1n) === 1n;
  // CAP_SYS_ADMIN 21, CAP_PERFMON 38, CAP_BPF 39
  if (has(21) || (has(38) && has(39))) return undefined;
  return `loading BPF programs needs CAP_SYS_ADMIN (or CAP_BPF and CAP_PERFMON); this process runs as uid ${process.getuid?.()} with effective capabilities 0x${caps.toString(16)}`;
}

export function activeLsms(): string[] | undefined {
  try {
    return readFileSync("/sys/kernel/security/lsm", "utf8").trim().split(",").filter(Boolean);
  } catch {
    return undefined;
  }
}

export function tracepointExists(category: string, name: string): boolean {
  return existsSync(`/sys/kernel/tracing/events/${category}/${name}`);
}
