// `palisade run --kubernetes` as the chart's ServiceAccount, with exactly the chart's RBAC,
// against a real kube-apiserver and the real kernel: one flow from `kubectl apply` of a
// policy to a killed process in a pod, the policy's status, the node's PalisadeNode and the
// pod's PolicyReport, with no request refused. And the least privilege bites: what the
// agent never needs is refused to its token. Needs root and BPF.
//
// Only the chart's CRDs, ServiceAccount and RBAC objects are applied (as rendered by helm
// built from upstream); the DaemonSet is not (no kubelet runs it): the agent runs here as a
// process with a kubeconfig holding the ServiceAccount's token (TokenRequest through
// `kubectl create token`, as the kubelet would project it), its Lease namespace the
// release's, as the DaemonSet's POD_NAMESPACE makes it.

import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { parseAllDocuments } from "yaml";
import { Enforcer } from "../../../src/enforcer/index.ts";
import { DEFAULT_LEASE_NAME } from "../../../src/controller/status/index.ts";
import { ensureBinaries, startCluster, type Cluster } from "./cluster.ts";
import { AgentProcess, outcomeIn, PodCgroups, type TestPod } from "./pods.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const RELEASE = "p";
const NAMESPACE = "palisade";
const SERVICE_ACCOUNT = "p-palisade"; // the chart's fullname for release "p"
const SA_USER = `system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}`;
const PIN_DIR = "/sys/fs/bpf/palisade-test-rbac";
const NODE = `node-rbac-${process.pid}`;
/** What the agent needs from the API server, and nothing the cluster's kubelet would run. */
const APPLIED_KINDS = ["CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];

const dir = mkdtempSync(join(tmpdir(), "palisade-agent-rbac-"));
const eventsFile = join(dir, "events.jsonl");
const denied = join(dir, "denied"); // a copy of id(1): exec'ing it is what the policy forbids

let cluster: Cluster;
let cgroups: PodCgroups | undefined;
let pod: TestPod;
/** The chart's ServiceAccount's token, in a kubeconfig. */
let saKubeconfig: string;
const agent = new AgentProcess();

const kubectlApply = (object: unknown) => cluster.kubectl(["apply", "-f", "-"], { input: JSON.stringify(object) });
const getJson = async (...args: string[]) => JSON.parse((await cluster.kubectl(["get", "-o", "json", ...args])).stdout);
/** `kubectl` with the ServiceAccount's token: its exit code and stderr. */
const asAgent = (...args: string[]) => cluster.kubectl([...args], { kubeconfig: saKubeconfig, check: false });

/** The fail count of the PolicyReport of pod shop/api. */
async function podFails(): Promise<number> {
  const reports = (await getJson("policyreports", "-n", "shop")).items as { scope?: { name?: string }; summary?: { fail?: number } }[];
  return reports.filter((r) => r.scope?.name === "api").reduce((n, r) => n + (r.summary?.fail ?? 0), 0);
}

/** The chart as `helm template` renders it with its defaults, for release RELEASE in NAMESPACE. */
async function renderChart(helm: string, kubeVersion: string): Promise<{ kind: string; metadata: { name: string } }[]> {
  const result = spawnSync(helm, ["template", RELEASE, join(ROOT, "charts", "palisade"), "-n", NAMESPACE, "--kube-version", kubeVersion, "--set", "image.repository=registry.example.com/palisade"], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`helm template failed:\n${result.stderr}`);
  return parseAllDocuments(result.stdout).map((d) => d.toJS()).filter(Boolean);
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("the agent RBAC e2e test needs root (CAP_BPF, CAP_SYS_ADMIN): run it as root");
  copyFileSync("/usr/bin/id", denied);
  cgroups = new PodCgroups("rbac");
  const binaries = await ensureBinaries({ helm: true });
  const [rendered, started] = await Promise.all([renderChart(binaries.helm!, binaries.kubeVersion), startCluster()]);
  cluster = started;

  // The chart's API objects, applied as the admin (as `helm install` would), but no DaemonSet.
  await kubectlApply({ apiVersion: "v1", kind: "Namespace", metadata: { name: NAMESPACE } });
  const objects = rendered.filter((o) => APPLIED_KINDS.includes(o.kind));
  expect(objects.map((o) => o.kind).sort()).toEqual(expect.arrayContaining([...APPLIED_KINDS].sort()));
  await cluster.kubectl(["apply", "-n", NAMESPACE, "-f", "-"], { input: JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }) });
  const crds = objects.filter((o) => o.kind === "CustomResourceDefinition").map((o) => `crd/${o.metadata.name}`);
  await cluster.kubectl(["wait", "--for=condition=Established", "--timeout=30s", ...crds]);

  saKubeconfig = await cluster.makeServiceAccountKubeconfig(NAMESPACE, SERVICE_ACCOUNT);

  // What the agent finds on its node: the Node (the owner of its ClusterPolicyReport), and a pod.
  await kubectlApply({ apiVersion: "v1", kind: "Node", metadata: { name: NODE } });
  await kubectlApply({ apiVersion: "v1", kind: "Namespace", metadata: { name: "shop", labels: { env: "prod" } } });
  // No controller manager: the ServiceAccount admission plugin wants the default account.
  await kubectlApply({ apiVersion: "v1", kind: "ServiceAccount", metadata: { namespace: "shop", name: "default" } });
  pod = await cgroups.makePod(cluster, { namespace: "shop", name: "api", node: NODE, labels: { app: "api" } });

  agent.start([
    "run", "--kubernetes", "--kubeconfig", saKubeconfig, "--node", NODE, "--cgroup-root", cgroups.root, "--status-namespace", NAMESPACE,
    "--pin-dir", PIN_DIR, "--events-file", eventsFile, "--no-metrics", "--no-observe",
  ], { POD_NAMESPACE: NAMESPACE });
}, 180_000);

afterAll(async () => {
  await agent.stop();
  Enforcer.removePinned(PIN_DIR);
  await cluster?.stop();
  cgroups?.remove();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("palisade run --kubernetes with the chart's RBAC only", () => {
  it("enforces a policy applied with kubectl, and writes its status, the PalisadeNode and the PolicyReport, never refused", async () => {
    onTestFailed(() => console.error(`agent log:\n${agent.log}`));
    await kubectlApply({
      apiVersion: "palisade.dev/v1alpha1", kind: "TracingPolicy", metadata: { name: "no-denied-in-prod" },
      spec: {
        selector: { namespaceSelector: { matchLabels: { env: "prod" } }, podSelector: { matchLabels: { app: "api" } } },
        rules: [{ name: "no-denied", hook: "process.exec", match: `process.binary == "${denied}"`, action: "kill", severity: "high" }],
      },
    });
    await agent.waitForLog(/enforcing plan [0-9a-f]{12}: 1 policy, 1 rule/, 0, 60_000);
    // Reaches the kernel: killed in the selected pod, not on the host.
    await expect.poll(() => outcomeIn(pod.cgroup, denied), { timeout: 30_000, interval: 100 }).toBe("killed");
    expect(outcomeIn(undefined, denied)).toBe("ran");
    const events = () => (existsSync(eventsFile) ? readFileSync(eventsFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)) : []);
    await expect.poll(events, { timeout: 15_000 }).toContainEqual(expect.objectContaining({ action: "killed", policy: "no-denied-in-prod", k8s: expect.objectContaining({ namespace: "shop", pod: "api" }) }));

    // The aggregator took the Lease in the release's namespace and wrote /status.
    await expect.poll(async () => (await getJson("tracingpolicy", "no-denied-in-prod")).status ?? {}, { timeout: 30_000, interval: 250 }).toMatchObject({
      observedGeneration: 1,
      conditions: expect.arrayContaining([expect.objectContaining({ type: "Ready", status: "True" })]),
    });
    expect((await getJson("lease", "-n", NAMESPACE, DEFAULT_LEASE_NAME)).spec.holderIdentity).toBe(NODE);
    // The node's own state object.
    expect((await getJson("palisadenode", NODE)).metadata.name).toBe(NODE);
    // The pod's PolicyReport shows the kill as a fail.
    await expect.poll(podFails, { timeout: 30_000, interval: 500 }).toBeGreaterThan(0);

    expect(agent.log.split("\n").filter((line) => /forbidden|\b403\b/i.test(line))).toEqual([]);
  });

  it("is refused what it never needs: secrets, deleting policies, writing their spec, other namespaces' Leases", async () => {
    const can = async (...args: string[]) => (await cluster.kubectl(["auth", "can-i", "--as", SA_USER, ...args], { check: false })).stdout.trim();
    expect(await can("list", "secrets", "-A")).toBe("no");
    expect(await can("delete", "tracingpolicies.palisade.dev")).toBe("no");
    expect(await can("update", "policyreports.wgpolicyk8s.io", "-n", "shop")).toBe("no");
    expect(await can("delete", "policyreports.wgpolicyk8s.io", "-n", "shop")).toBe("no");
    expect(await can("create", "leases.coordination.k8s.io", "-n", "kube-system")).toBe("no");
    // And the API server refuses the token itself, not only the authorizer's dry answer.
    const secrets = await asAgent("get", "secrets", "-n", NAMESPACE);
    expect(secrets.code).not.toBe(0);
    expect(secrets.stderr).toMatch(/Forbidden.*cannot list resource "secrets"/);
    const deletion = await asAgent("delete", "tracingpolicy", "no-denied-in-prod");
    expect(deletion.stderr).toMatch(/Forbidden.*cannot delete resource "tracingpolicies"/);
    const specEdit = await asAgent("patch", "tracingpolicy", "no-denied-in-prod", "--type=merge", "-p", '{"spec":{"rules":[]}}');
    expect(specEdit.stderr).toMatch(/Forbidden.*cannot patch resource "tracingpolicies"/);
    // The refused deletion left the policy in force.
    expect(outcomeIn(pod.cgroup, denied)).toBe("killed");
  });

  it("takes a policy deleted with kubectl out of the kernel and out of the pod's PolicyReport, still never refused", async () => {
    onTestFailed(() => console.error(`agent log:\n${agent.log}`));
    await cluster.kubectl(["delete", "tracingpolicy", "no-denied-in-prod"]);
    await expect.poll(() => outcomeIn(pod.cgroup, denied), { timeout: 30_000, interval: 100 }).toBe("ran");
    // Pruning lists the node's reports cluster-wide and patches the result away.
    await expect.poll(podFails, { timeout: 30_000, interval: 500 }).toBe(0);
    expect(agent.log.split("\n").filter((line) => /forbidden|\b403\b/i.test(line))).toEqual([]);
  });
});
