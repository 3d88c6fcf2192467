// The pod-scoped policies of the library, exactly as shipped (kubectl apply -f policies/…),
// enforced by `palisade run --kubernetes` against a real kube-apiserver and the real kernel:
// their selectors reach processes in pods and leave the host alone. Needs root and BPF.
//
// There is no kubelet or container runtime here (as in test/e2e/kube/controller.test.ts):
// the test creates the Pod objects, bound to the agent's node with container IDs in their
// status, makes the cgroups containerd would make for them under a cgroup v2 directory of
// its own, and starts real processes inside them.
//
// The shipped container-shells kills shells in every pod. If its selector leaked to the
// host it would kill every shell on this shared machine, so it is applied last, only once
// the other three have shown that the host is out of reach.

import { copyFileSync, existsSync, mkdtempSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Enforcer } from "../../src/enforcer/index.ts";
import { ROOT } from "../support/cli.ts";
import { startCluster, type Cluster } from "../e2e/kube/cluster.ts";
import { AgentProcess, execIn, PodCgroups } from "../e2e/kube/pods.ts";

const PIN_DIR = "/sys/fs/bpf/palisade-test-library-pods";
const NODE = `node-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const dir = mkdtempSync(join(tmpdir(), "palisade-library-pods-"));
const eventsFile = join(dir, "events.jsonl");
const aptGet = join(dir, "apt-get"); // a copy of true(1) named like a package manager

let cluster: Cluster;
let cgroups: PodCgroups | undefined;
const agent = new AgentProcess();
let listener: Server;
let listenerPort = 0;
/** Container cgroups: `restricted` carries the pod-egress opt-in label, `plain` does not. */
const pods: Record<"restricted" | "plain", string> = { restricted: "", plain: "" };

const applyLibrary = (name: string) => cluster.kubectl(["apply", "-f", join(ROOT, "policies", `${name}.yaml`)]);

/** Connects to host:port from a process in `cgroup`: "connected", "timeout" or the error code. */
function connectFrom(cgroup: string | undefined, host: string, port: number): string {
  const script = `const s = require("node:net").connect({host: "${host}", port: ${port}});
    s.setTimeout(1500, () => { console.log("timeout"); process.exit(); });
    s.on("connect", () => { console.log("connected"); process.exit(); });
    s.on("error", (e) => { console.log(e.code); process.exit(); });`;
  const result = execIn(cgroup, [process.execPath, "-e", script]);
  return result.stdout.trim() || `no output: ${result.stderr}`;
}

interface Event {
  action: string;
  policy?: string;
  rule?: string;
  process: { pid: number };
  k8s?: { namespace?: string; pod?: string };
}
const events = (): Event[] => (existsSync(eventsFile) ? readFileSync(eventsFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)) : []);
const eventOf = (pid: number) => expect.poll(() => events().find((e) => e.process.pid === pid), { timeout: 15_000 });

const kubectlApply = (object: unknown) => cluster.kubectl(["apply", "-f", "-"], { input: JSON.stringify(object) });

/** A Pod in "shop" bound to the agent's node, running; returns its container's cgroup (systemd layout). */
const makePod = async (name: string, labels: Record<string, string>) =>
  (await cgroups!.makePod(cluster, { namespace: "shop", name, node: NODE, labels })).cgroup;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("the library pod tests need root (CAP_BPF, CAP_SYS_ADMIN): run them as root");
  copyFileSync("/usr/bin/true", aptGet);
  listener = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  listenerPort = (listener.address() as { port: number }).port;

  cgroups = new PodCgroups("library");

  cluster = await startCluster();
  await cluster.kubectl(["apply", "-f", join(ROOT, "api", "crds")]);
  await cluster.kubectl(["wait", "--for=condition=Established", "--timeout=30s", "crd/tracingpolicies.palisade.dev", "crd/tracingpoliciesnamespaced.palisade.dev"]);
  for (const ns of ["palisade-system", "shop"]) await kubectlApply({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
  // No controller manager: the ServiceAccount admission plugin wants the default account.
  await kubectlApply({ apiVersion: "v1", kind: "ServiceAccount", metadata: { namespace: "shop", name: "default" } });
  pods.restricted = await makePod("api", { app: "api", "palisade.dev/egress": "restricted" });
  pods.plain = await makePod("batch", { app: "batch" });
  for (const name of ["package-managers", "cloud-metadata", "pod-egress"]) await applyLibrary(name);

  agent.start([
    "run", "--kubernetes", "--kubeconfig", cluster.kubeconfig, "--node", NODE, "--cgroup-root", cgroups.root,
    "--pin-dir", PIN_DIR, "--events-file", eventsFile, "--no-metrics", "--no-observe",
  ]);
  await agent.waitForLog(/enforcing plan [0-9a-f]{12}: 3 policies,/, 0, 60_000);
}, 240_000);

afterAll(async () => {
  await agent.stop();
  Enforcer.removePinned(PIN_DIR);
  listener?.close();
  await cluster?.stop();
  cgroups?.remove();
}, 60_000);

describe("the library's pod-scoped policies, as shipped, in pods", () => {
  it("package-managers: stopped in a pod, not on the host", async () => {
    // The selector's pods are resolved from the API server: poll until the pod is in scope.
    await expect.poll(() => execIn(pods.plain, [aptGet, "install"]).signal, { timeout: 30_000, interval: 200 }).toBe("SIGKILL");
    const inPod = execIn(pods.plain, [aptGet, "install", "nmap"]);
    expect(inPod.signal).toBe("SIGKILL");
    await eventOf(inPod.pid).toMatchObject({ action: "killed", policy: "package-managers", rule: "package-manager-exec", k8s: { namespace: "shop", pod: "batch" } });
    expect(execIn(undefined, [aptGet, "install"]).status).toBe(0);
  });

  it("cloud-metadata: a pod's connection to 169.254.169.254 fails with EPERM, the host's does not", () => {
    expect(connectFrom(pods.plain, "169.254.169.254", 80)).toBe("EPERM");
    expect(connectFrom(undefined, "169.254.169.254", 80)).not.toBe("EPERM");
  });

  it("pod-egress: only the opted-in pod is held to the allow-list", () => {
    expect(connectFrom(pods.restricted, "198.51.100.7", 4444)).toBe("EPERM");
    expect(connectFrom(pods.restricted, "127.0.0.1", listenerPort)).toBe("connected");
    expect(connectFrom(pods.restricted, "198.51.100.7", 443)).not.toBe("EPERM");
    expect(connectFrom(pods.plain, "198.51.100.7", 4444)).not.toBe("EPERM");
    expect(connectFrom(undefined, "198.51.100.7", 4444)).not.toBe("EPERM");
  });

  it("container-shells: a shell in a pod is killed, the host's shells run", async () => {
    const mark = agent.log.length;
    await applyLibrary("container-shells");
    await expect.poll(() => /enforcing plan [0-9a-f]{12}: 4 policies,/.test(agent.log.slice(mark)), { timeout: 30_000 }).toBe(true);
    const inPod = execIn(pods.restricted, ["/bin/sh", "-c", "echo ran"]);
    expect(inPod.signal).toBe("SIGKILL");
    expect(inPod.stdout).toBe("");
    await eventOf(inPod.pid).toMatchObject({ action: "killed", policy: "container-shells", rule: "shell-exec", k8s: { namespace: "shop", pod: "api" } });
    const onHost = execIn(undefined, ["/bin/sh", "-c", "echo ran"]);
    expect(onHost.stdout).toBe("ran\n");
  });
});
