// Pods without a kubelet, and the agent as a process, for the e2e tests of
// `palisade run --kubernetes` (test/e2e/kube/*.test.ts, test/policies/library-pods.test.ts).
//
// There is no kubelet or container runtime: a test creates the Pod object itself (bound to
// the agent's node, its container's ID written through the status subresource), makes the
// cgroups containerd would make for it on this host (systemd driver's layout or cgroupfs')
// under a cgroup v2 directory unique to the run, and starts real processes inside them.

import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { cgroup2Root } from "../../../src/enforcer/system.ts";
import type { Cluster } from "./cluster.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");

export interface TestPod {
  namespace: string;
  name: string;
  uid: string;
  containerId: string;
  /** The container's cgroup directory: processes are put there. */
  cgroup: string;
}

export interface PodOptions {
  namespace: string;
  name: string;
  /** The agent's node: spec.nodeName. */
  node: string;
  labels?: Record<string, string>;
  /** The kubelet's cgroup driver: where containerd puts the container's cgroup. */
  layout?: "systemd" | "cgroupfs";
}

/** A cgroup v2 directory of the run's own (the agent's --cgroup-root), and the pods' cgroups in it. */
export class PodCgroups {
  readonly root: string;
  private readonly made: string[] = [];

  /** Makes `<cgroup2 root>/palisade-test-<label>-<pid>-<random>`. */
  constructor(label: string) {
    const mount = cgroup2Root();
    if (!mount) throw new Error("no cgroup v2 hierarchy mounted");
    this.root = join(mount, `palisade-test-${label}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
    mkdirSync(this.root);
    this.made.push(this.root);
  }

  /** A running Pod object with one container ("app"), and that container's cgroup on this host. */
  async makePod(cluster: Cluster, pod: PodOptions): Promise<TestPod> {
    const { namespace, name } = pod;
    await cluster.kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "v1", kind: "Pod", metadata: { namespace, name, labels: pod.labels ?? {} },
        spec: { nodeName: pod.node, containers: [{ name: "app", image: "registry.example/app:1" }] },
      }),
    });
    const uid = (await cluster.kubectl(["get", "pod", "-n", namespace, name, "-o", "jsonpath={.metadata.uid}"])).stdout;
    const containerId = Array.from({ length: 64 }, () => "0123456789abcdef"[Math.floor(Math.random() * 16)]).join("");
    const systemd = (pod.layout ?? "systemd") === "systemd";
    const qosDir = systemd ? join(this.root, "kubepods.slice", "kubepods-besteffort.slice") : join(this.root, "kubepods", "besteffort");
    const podDir = join(qosDir, systemd ? `kubepods-besteffort-pod${uid.replaceAll("-", "_")}.slice` : `pod${uid}`);
    const cgroup = join(podDir, systemd ? `cri-containerd-${containerId}.scope` : containerId);
    mkdirSync(cgroup, { recursive: true });
    this.made.push(join(qosDir, ".."), qosDir, podDir, cgroup);
    await cluster.kubectl(["patch", "pod", "-n", namespace, name, "--subresource=status", "--type=merge", "-p", JSON.stringify({
      status: {
        phase: "Running", qosClass: "BestEffort",
        containerStatuses: [{ name: "app", image: "registry.example/app:1", imageID: "", containerID: `containerd://${containerId}`, ready: true, restartCount: 0, state: { running: {} } }],
      },
    })]);
    return { namespace, name, uid, containerId, cgroup };
  }

  /** Removes every directory made, deepest first (a cgroup goes only once its children have). */
  remove(): void {
    for (const d of [...new Set(this.made)].sort((a, b) => b.length - a.length)) {
      try {
        if (existsSync(d)) rmdirSync(d);
      } catch {
        // a process still inside: the kernel removes it with the last one
      }
    }
  }
}

/** Runs argv in `cgroup` (a pod's container) or, without one, on the host. */
export function execIn(cgroup: string | undefined, argv: string[]): SpawnSyncReturns<string> {
  const exec = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const script = cgroup ? `echo $$ > "${cgroup}/cgroup.procs" && exec ${exec}` : `exec ${exec}`;
  return spawnSync("/bin/sh", ["-c", script], { encoding: "utf8", timeout: 15_000 });
}

/** Runs `binary` in `cgroup` (or on the host): "killed" by SIGKILL, or "ran" to a clean exit. */
export function outcomeIn(cgroup: string | undefined, binary: string): "killed" | "ran" {
  const result = execIn(cgroup, [binary]);
  if (result.signal === "SIGKILL") return "killed";
  if (result.status !== 0) throw new Error(`${binary} in ${cgroup ?? "the host"}: exit ${result.status}, ${result.stderr}`);
  return "ran";
}

/** bin/palisade as a child process; its stderr accumulates in `log` across restarts. */
export class AgentProcess {
  log = "";
  private child: ChildProcess | undefined;

  start(args: string[], env: Record<string, string> = {}): void {
    const child = spawn(join(ROOT, "bin", "palisade"), args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (this.log += d));
    this.child = child;
  }

  /** Waits until the log from offset `after` matches; rejects, with the log, on timeout or exit. */
  async waitForLog(pattern: RegExp, after = 0, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.log.slice(after))) {
      if (Date.now() > deadline || this.child?.exitCode != null) throw new Error(`agent never logged ${pattern}; log:\n${this.log.slice(after)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** SIGTERM, and waits for the exit. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }
}
