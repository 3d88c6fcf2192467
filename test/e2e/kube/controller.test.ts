// `palisade run --kubernetes` against a real kube-apiserver and the real kernel.
//
// There is no kubelet or container runtime here: the test creates the Namespace and Pod
// objects itself (spec.nodeName = the agent's node, container IDs written through the status
// subresource), makes the cgroups containerd would make for them on this host (one pod in the
// systemd driver's layout, one in cgroupfs'), under a cgroup v2 directory unique to this run,
// and starts real processes inside them (their pid written to cgroup.procs). Policies and
// their edits go through kubectl, as a user's would. Needs root and BPF.

import { copyFileSync, mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Enforcer } from "../../../src/enforcer/index.ts";
import { startCluster, type Cluster } from "./cluster.ts";
import { AgentProcess, outcomeIn, PodCgroups, type TestPod } from "./pods.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const PIN_DIR = "/sys/fs/bpf/palisade-test-b1-controller";
const NODE = `node-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const dir = mkdtempSync(join(tmpdir(), "palisade-controller-"));
const eventsFile = join(dir, "events.jsonl");
// Copies of id(1): exec'ing them is what the policies forbid.
const forbidden = join(dir, "forbidden");
const forbidden2 = join(dir, "forbidden2");
const forbidden3 = join(dir, "forbidden3");

let cluster: Cluster;
let cgroups: PodCgroups | undefined;
const agent = new AgentProcess();
const pods: Record<string, TestPod> = {};

function startAgent(extra: string[] = []): void {
  agent.start([
    "run", "--kubernetes", "--kubeconfig", cluster.kubeconfig, "--node", NODE, "--cgroup-root", cgroups!.root,
    "--pin-dir", PIN_DIR, "--events-file", eventsFile, "--no-metrics", "--no-observe", ...extra,
  ]);
}
const stopAgent = () => agent.stop();
const waitForLog = (pattern: RegExp, after = 0) => agent.waitForLog(pattern, after);

/** Polls until running `binary` in `cgroup` ends as `outcome` (a change has reached the kernel). */
const eventually = (cgroup: string | undefined, binary: string, outcome: "killed" | "ran") =>
  expect.poll(() => outcomeIn(cgroup, binary), { timeout: 20_000, interval: 100 }).toBe(outcome);

const events = () => (existsSync(eventsFile) ? readFileSync(eventsFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)) : []);

/** A TracingPolicy's status, as the elected aggregator wrote it. */
const status = async (name: string) => JSON.parse((await cluster.kubectl(["get", "tracingpolicy", name, "-o", "json"])).stdout).status ?? {};

const kubectlApply = (object: unknown) => cluster.kubectl(["apply", "-f", "-"], { input: JSON.stringify(object) });

function tracingPolicy(name: string, binary: string, selector?: unknown) {
  return {
    apiVersion: "palisade.dev/v1alpha1", kind: "TracingPolicy", metadata: { name },
    spec: { ...(selector ? { selector } : {}), rules: [{ name: "no-forbidden", hook: "process.exec", match: `process.binary == "${binary}"`, action: "kill", severity: "high" }] },
  };
}

const PROD_API = { namespaceSelector: { matchLabels: { env: "prod" } }, podSelector: { matchLabels: { app: "api" } } };

/** A Pod object labelled app=api, bound to the agent's node, and its container's cgroup on this host. */
const makePod = (namespace: string, name: string, layout: "systemd" | "cgroupfs") =>
  cgroups!.makePod(cluster, { namespace, name, node: NODE, labels: { app: "api" }, layout });

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("the controller e2e test needs root (CAP_BPF, CAP_SYS_ADMIN): run it as root");
  for (const f of [forbidden, forbidden2, forbidden3]) copyFileSync("/usr/bin/id", f);
  cgroups = new PodCgroups("b1");

  cluster = await startCluster();
  await cluster.kubectl(["apply", "-f", join(ROOT, "api", "crds")]);
  await cluster.kubectl(["wait", "--for=condition=Established", "--timeout=30s", "crd/tracingpolicies.palisade.dev", "crd/tracingpoliciesnamespaced.palisade.dev"]);
  // The heartbeat and status-aggregator Leases live in palisade-system.
  await kubectlApply({ apiVersion: "v1", kind: "Namespace", metadata: { name: "palisade-system" } });
  for (const [ns, env] of [["shop", "prod"], ["lab", "dev"]] as const) {
    await kubectlApply({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns, labels: { env } } });
    // No controller manager: the ServiceAccount admission plugin wants the default account.
    await kubectlApply({ apiVersion: "v1", kind: "ServiceAccount", metadata: { namespace: ns, name: "default" } });
  }
  pods.prod = await makePod("shop", "api", "systemd");
  pods.dev = await makePod("lab", "api", "cgroupfs");
  await kubectlApply(tracingPolicy("no-forbidden-in-prod", forbidden, PROD_API));

  startAgent(["--keep-attached"]);
  await waitForLog(/enforcing plan [0-9a-f]{12}: 1 policy, 1 rule on node/);
}, 180_000);

afterAll(async () => {
  await stopAgent();
  Enforcer.removePinned(PIN_DIR);
  await cluster?.stop();
  cgroups?.remove();
}, 60_000);

describe("palisade run --kubernetes", () => {
  it("kills a forbidden exec in a selected pod, and the event names the pod", async () => {
    await eventually(pods.prod!.cgroup, forbidden, "killed");
    await expect.poll(events).toContainEqual(expect.objectContaining({
      hook: "process.exec", action: "killed", policy: "no-forbidden-in-prod", rule: "no-forbidden",
      k8s: expect.objectContaining({ namespace: "shop", pod: "api", container: "app" }),
    }));
  });

  it("reports the policy Ready on its status, and the kill in the pod's PolicyReport", async () => {
    await expect.poll(() => status("no-forbidden-in-prod"), { timeout: 20_000, interval: 250 }).toMatchObject({
      observedGeneration: 1,
      conditions: expect.arrayContaining([expect.objectContaining({ type: "Ready", status: "True" })]),
    });
    // What `kubectl get` shows: Mode, Ready, Nodes (enforcing), Age.
    const table = (await cluster.kubectl(["get", "ptp", "no-forbidden-in-prod", "--no-headers"])).stdout.trim().split(/\s+/);
    expect(table.slice(0, 4)).toEqual(["no-forbidden-in-prod", "enforce", "True", "1"]);
    await expect.poll(async () => {
      const reports = JSON.parse((await cluster.kubectl(["get", "policyreports", "-n", "shop", "-o", "json"])).stdout).items;
      return reports.reduce((n: number, r: { summary?: { fail?: number } }) => n + (r.summary?.fail ?? 0), 0);
    }, { timeout: 30_000, interval: 500 }).toBeGreaterThan(0);
  });

  it("leaves an unselected pod and the host alone", () => {
    expect(outcomeIn(pods.dev!.cgroup, forbidden)).toBe("ran");
    expect(outcomeIn(undefined, forbidden)).toBe("ran");
  });

  it("follows label changes: a namespace that comes to match is enforced", async () => {
    await cluster.kubectl(["label", "namespace", "lab", "env=prod", "--overwrite"]);
    await eventually(pods.dev!.cgroup, forbidden, "killed");
    await cluster.kubectl(["label", "namespace", "lab", "env=dev", "--overwrite"]);
    await eventually(pods.dev!.cgroup, forbidden, "ran");
  });

  it("refuses an invalid policy with its field path and CEL position, and the others still update", async () => {
    const mark = agent.log.length;
    const bad = tracingPolicy("broken", forbidden3);
    bad.spec.rules[0]!.match = `process.binnary == "${forbidden3}"`;
    await kubectlApply(bad);
    await waitForLog(/TracingPolicy\/broken: not applied .*spec\.rules\[0\]\.match:1:9: .*binnary/, mark);
    await expect.poll(() => status("broken"), { timeout: 20_000, interval: 250 }).toMatchObject({
      conditions: expect.arrayContaining([expect.objectContaining({
        type: "Ready", status: "False", reason: "CompileError", message: expect.stringMatching(/spec\.rules\[0\]\.match:1:9: `process\.binnary`: no such field/),
      })]),
    });
    // Another policy applied after it is in force; the broken one never is.
    await kubectlApply(tracingPolicy("host-too", forbidden2));
    await eventually(undefined, forbidden2, "killed");
    expect(outcomeIn(undefined, forbidden3)).toBe("ran");
    await eventually(pods.prod!.cgroup, forbidden, "killed");
  });

  it("puts an edit (a new generation) in force", async () => {
    const edited = tracingPolicy("host-too", forbidden3);
    await kubectlApply(edited);
    await eventually(undefined, forbidden3, "killed");
    expect(outcomeIn(undefined, forbidden2)).toBe("ran");
    await expect.poll(() => status("host-too"), { timeout: 20_000, interval: 250 }).toMatchObject({
      observedGeneration: 2,
      conditions: expect.arrayContaining([expect.objectContaining({ type: "Ready", status: "True", observedGeneration: 2 })]),
    });
  });

  it("scopes a TracingPolicyNamespaced to its own namespace's pods", async () => {
    const namespaced = { ...tracingPolicy("lab-only", forbidden2), kind: "TracingPolicyNamespaced", metadata: { name: "lab-only", namespace: "lab" } };
    await kubectlApply(namespaced);
    await eventually(pods.dev!.cgroup, forbidden2, "killed");
    expect(outcomeIn(pods.prod!.cgroup, forbidden2)).toBe("ran");
    expect(outcomeIn(undefined, forbidden2)).toBe("ran");
    await cluster.kubectl(["delete", "tracingpolicynamespaced", "-n", "lab", "lab-only"]);
    await eventually(pods.dev!.cgroup, forbidden2, "ran");
  });

  it("takes a deleted policy's rule out of the kernel", async () => {
    await cluster.kubectl(["delete", "tracingpolicy", "host-too", "broken"]);
    await eventually(undefined, forbidden3, "ran");
    expect(outcomeIn(pods.prod!.cgroup, forbidden)).toBe("killed");
  });

  it("recovers its watches when the API server restarts, and later changes reach the kernel", async () => {
    const mark = agent.log.length;
    await cluster.restartApiServer({ signal: "SIGKILL" });
    await kubectlApply(tracingPolicy("after-restart", forbidden2));
    await eventually(undefined, forbidden2, "killed");
    expect(agent.log.slice(mark)).toMatch(/watch .*retrying|watch .*listing again/);
    // Pods too: a pod created after the restart is classified, and unclassified once deleted.
    pods.late = await makePod("shop", "late", "systemd");
    await eventually(pods.late.cgroup, forbidden, "killed");
    await cluster.kubectl(["delete", "pod", "-n", "shop", "late", "--grace-period=0", "--force"]);
    await eventually(pods.late.cgroup, forbidden, "ran");
  });

  it("keeps the rules in force across an agent restart, and is right afterwards", async () => {
    await stopAgent();
    // Stopped with --keep-attached: the kernel still enforces what was in force.
    expect(outcomeIn(pods.prod!.cgroup, forbidden)).toBe("killed");
    expect(outcomeIn(undefined, forbidden2)).toBe("killed");
    // Changed while no agent runs: the next one must catch up.
    await cluster.kubectl(["delete", "tracingpolicy", "after-restart"]);
    const mark = agent.log.length;
    startAgent();
    await waitForLog(/enforcing plan [0-9a-f]{12}: 1 policy, 1 rule on node/, mark);
    await eventually(undefined, forbidden2, "ran");
    expect(outcomeIn(pods.prod!.cgroup, forbidden)).toBe("killed");
    expect(outcomeIn(pods.dev!.cgroup, forbidden)).toBe("ran");
  });
});
