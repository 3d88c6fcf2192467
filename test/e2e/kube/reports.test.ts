// PolicyReports against a real kube-apiserver: recorded runtime events (RuntimeEvent objects,
// as the agent emits them) are fed to the PolicyReporter, with real Pod, ReplicaSet,
// Deployment, Job, CronJob and Node objects in the API server for it to resolve. No kubelet
// or controller-manager runs (see README.md here), so the objects are created by the test
// and garbage collection itself cannot happen: the ownerReferences it would follow are asserted.

import { join } from "node:path";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyReporter, type PolicyReporterOptions } from "../../../src/controller/reports/index.ts";
import type { RuntimeEvent } from "../../../src/events/event.ts";
import { startCluster, type Cluster } from "./cluster.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const REPORT_CRDS = ["wgpolicyk8s.io_policyreports", "wgpolicyk8s.io_clusterpolicyreports", "openreports.io_reports", "openreports.io_clusterreports"];
const NS = "shop";

let cluster: Cluster;
let kubeConfig: KubeConfig;
const uids: Record<string, string> = {};
const reporters: PolicyReporter[] = [];
let crdWarnings: string;

/** API objects as kubectl prints them: read loosely, asserted precisely. */
type Json = any;

async function kubectlJson(args: string[]): Promise<Json> {
  return JSON.parse((await cluster.kubectl([...args, "-o", "json"])).stdout);
}

async function create(object: Json): Promise<string> {
  const created = JSON.parse((await cluster.kubectl(["create", "-o", "json", "-f", "-"], { input: JSON.stringify(object) })).stdout);
  return created.metadata.uid;
}

const owner = (apiVersion: string, kind: string, name: string) => [{ apiVersion, kind, name, uid: uids[name]!, controller: true }];
const template = { metadata: { labels: { app: "x" } }, spec: { containers: [{ name: "app", image: "registry.example/app:1" }] } };
const podSpec = (node: string) => ({ nodeName: node, containers: [{ name: "app", image: "registry.example/app:1" }] });

function reporter(options: Partial<PolicyReporterOptions> = {}): PolicyReporter {
  const r = new PolicyReporter({ kubeConfig, node: "node-a", flushIntervalMs: 0, ...options });
  reporters.push(r);
  return r;
}

let seconds = 0;
/** A recorded event; each gets a later time (12:00:01.250, 12:00:02.250, ...). */
function event(overrides: Partial<RuntimeEvent> & { pod?: string | null } = {}): RuntimeEvent {
  const { pod = "api-7c9d-x1", ...rest } = overrides;
  seconds++;
  return {
    time: new Date(Date.UTC(2026, 10, 24, 12, 0, seconds, 250)).toISOString(),
    node: "node-a",
    hook: "process.exec",
    action: "killed",
    policy: "no-shells",
    rule: "shells",
    severity: "high",
    process: { pid: 100 + seconds, uid: 0, binary: "/bin/sh" },
    parent: { pid: 99, binary: "/usr/bin/python3" },
    ...(pod === null ? {} : { k8s: { namespace: NS, pod, podUid: uids[pod], container: "app", image: "registry.example/app:1" } }),
    ...rest,
  };
}

beforeAll(async () => {
  cluster = await startCluster();
  crdWarnings = (await cluster.kubectl(["apply", "--validate=strict", ...REPORT_CRDS.flatMap((c) => ["-f", join(ROOT, "api", "crds", `${c}.yaml`)])])).stderr;
  await cluster.kubectl(["apply", "-f", join(ROOT, "api", "crds", "palisade.dev_tracingpolicies.yaml")]);
  await cluster.kubectl(["wait", "--for=condition=Established", "--timeout=60s", "crd/policyreports.wgpolicyk8s.io", "crd/clusterpolicyreports.wgpolicyk8s.io", "crd/reports.openreports.io", "crd/clusterreports.openreports.io", "crd/tracingpolicies.palisade.dev"]);
  kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(cluster.kubeconfig);

  for (const node of ["node-a", "node-b"]) uids[node] = await create({ apiVersion: "v1", kind: "Node", metadata: { name: node } });
  await create({ apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });
  await create({ apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default", namespace: NS } });
  const ns = { namespace: NS };
  uids.api = await create({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "api", ...ns }, spec: { selector: { matchLabels: { app: "x" } }, template } });
  uids["api-7c9d"] = await create({ apiVersion: "apps/v1", kind: "ReplicaSet", metadata: { name: "api-7c9d", ...ns, ownerReferences: owner("apps/v1", "Deployment", "api") }, spec: { selector: { matchLabels: { app: "x" } }, template } });
  for (const pod of ["api-7c9d-x1", "api-7c9d-x2"]) {
    uids[pod] = await create({ apiVersion: "v1", kind: "Pod", metadata: { name: pod, ...ns, ownerReferences: owner("apps/v1", "ReplicaSet", "api-7c9d") }, spec: podSpec("node-a") });
  }
  const jobTemplate = { spec: { template: { spec: { restartPolicy: "Never", containers: [{ name: "app", image: "registry.example/app:1" }] } } } };
  uids.nightly = await create({ apiVersion: "batch/v1", kind: "CronJob", metadata: { name: "nightly", ...ns }, spec: { schedule: "0 3 * * *", jobTemplate } });
  uids["nightly-29000"] = await create({ apiVersion: "batch/v1", kind: "Job", metadata: { name: "nightly-29000", ...ns, ownerReferences: owner("batch/v1", "CronJob", "nightly") }, spec: { ...jobTemplate.spec, manualSelector: false } });
  uids["nightly-29000-q"] = await create({ apiVersion: "v1", kind: "Pod", metadata: { name: "nightly-29000-q", ...ns, ownerReferences: owner("batch/v1", "Job", "nightly-29000") }, spec: { ...podSpec("node-a"), restartPolicy: "Never" } });
  uids.debug = await create({ apiVersion: "v1", kind: "Pod", metadata: { name: "debug", ...ns }, spec: podSpec("node-a") });
}, 60 * 60_000);

afterAll(async () => {
  for (const r of reporters) await r.close();
  await cluster?.stop();
});

const getReport = (name: string, kind = "policyreport") => kubectlJson(["get", kind, "-n", NS, name]);
const resultOf = (report: Json, binary: string) => report.results.find((r: Json) => r.properties.binary === binary);

describe("PolicyReports (wgpolicyk8s.io/v1alpha2) from runtime events", () => {
  it("installs the upstream report CRDs from api/crds/ without warnings", () => {
    expect(crdWarnings).toBe("");
  });

  it("writes one report for a Deployment's pods, scoped to and owned by the Deployment, with aggregated results", async () => {
    const r = reporter();
    r.record(event());
    r.record(event({ pod: "api-7c9d-x2" }));
    r.record(event());
    r.record(event({ hook: "file.open", action: "denied", process: { pid: 7, uid: 0, binary: "/bin/cat" }, file: { path: "/etc/shadow" }, policy: "secrets", rule: "shadow", severity: "critical" }));
    r.record(event({ action: "audited", policy: "audit-exec", rule: "all", severity: "info", process: { pid: 8, uid: 0, binary: "/usr/bin/id" } }));
    r.record(event({ policy: undefined, rule: undefined })); // no policy decided it: not a result
    await r.flush();
    expect(r.stats).toMatchObject({ recorded: 5, dropped: 0, writes: 1, writeErrors: 0 });

    const reports = await kubectlJson(["get", "policyreports", "-n", NS]);
    expect(reports.items.map((i: Json) => i.metadata.name)).toEqual(["palisade-deployment-api-node-a"]);
    const report = reports.items[0];
    expect(report.scope).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: "api", namespace: NS, uid: uids.api });
    expect(report.metadata.ownerReferences).toEqual([{ apiVersion: "apps/v1", kind: "Deployment", name: "api", uid: uids.api }]);
    expect(report.summary).toEqual({ pass: 0, fail: 2, warn: 1, error: 0, skip: 0 });
    expect(report.results).toHaveLength(3);

    const shells = resultOf(report, "/bin/sh");
    expect(shells).toMatchObject({ policy: "no-shells", rule: "shells", result: "fail", severity: "high", source: "palisade", category: "process.exec", message: "exec of /bin/sh: killed" });
    expect(shells.properties).toMatchObject({ action: "killed", count: "3", firstSeen: "2026-11-24T12:00:01.250Z", lastSeen: "2026-11-24T12:00:03.250Z", pod: "api-7c9d-x1", container: "app", parent: "/usr/bin/python3" });
    expect(shells.properties.resultID).toMatch(/^[0-9a-f]{20}$/);
    // The timestamp is the last occurrence's own time, not the write's.
    expect(shells.timestamp).toEqual({ seconds: Date.UTC(2026, 10, 24, 12, 0, 3) / 1000, nanos: 250_000_000 });
    expect(resultOf(report, "/bin/cat")).toMatchObject({ result: "fail", severity: "critical", properties: { path: "/etc/shadow", action: "denied", count: "1" } });
    expect(resultOf(report, "/usr/bin/id")).toMatchObject({ result: "warn", severity: "info", properties: { action: "audited" } });

    // Written by server-side apply, as field manager palisade.
    const managed = await kubectlJson(["get", "policyreport", "-n", NS, report.metadata.name, "--show-managed-fields"]);
    expect(managed.metadata.managedFields.map((f: Json) => [f.manager, f.operation])).toEqual([["palisade", "Apply"]]);
  });

  it("shows the fail count in `kubectl get policyreports -A`", async () => {
    const table = (await cluster.kubectl(["get", "policyreports", "-A"])).stdout.trim().split("\n");
    expect(table[0]).toMatch(/^NAMESPACE\s+NAME\s+PASS\s+FAIL\s+WARN\s+ERROR\s+SKIP\s+AGE$/);
    expect(table[1]).toMatch(/^shop\s+palisade-deployment-api-node-a\s+0\s+2\s+1\s+0\s+0\s+\S+$/);
  });

  it("adds repeats to the stored counts after an agent restart: nothing lost, nothing duplicated", async () => {
    const restarted = reporter();
    restarted.record(event());
    await restarted.close();
    const report = await getReport("palisade-deployment-api-node-a");
    expect(report.results).toHaveLength(3);
    expect(resultOf(report, "/bin/sh").properties).toMatchObject({ count: "4", firstSeen: "2026-11-24T12:00:01.250Z" });
    expect(report.summary.fail).toBe(2);
  });

  it("gives each node its own report for the same workload, with the same result ids", async () => {
    const onB = reporter({ node: "node-b" });
    onB.record(event({ node: "node-b" }));
    await onB.flush();
    const a = await getReport("palisade-deployment-api-node-a");
    const b = await getReport("palisade-deployment-api-node-b");
    expect(resultOf(a, "/bin/sh").properties.count).toBe("4"); // untouched by node-b
    expect(resultOf(b, "/bin/sh").properties.count).toBe("1");
    expect(resultOf(b, "/bin/sh").properties.resultID).toBe(resultOf(a, "/bin/sh").properties.resultID);
    expect(b.metadata.labels).toEqual({ "app.kubernetes.io/managed-by": "palisade", "palisade.dev/node": "node-b", "palisade.dev/workload-uid": uids.api });
    expect(b.scope.uid).toBe(uids.api);
  });

  it("follows Pod -> Job -> CronJob, stops at a bare Pod, and reports a deleted pod by the uid in its events", async () => {
    const r = reporter();
    r.record(event({ pod: "nightly-29000-q" }));
    r.record(event({ pod: "debug" }));
    await cluster.kubectl(["delete", "pod", "-n", NS, "debug", "--wait=false"]);
    const goneUid = uids.debug!;
    r.record({ ...event({ pod: "debug" }), k8s: { namespace: NS, pod: "debug", podUid: goneUid } });
    r.record({ ...event({ pod: "debug" }), k8s: { namespace: NS, pod: "ghost" } }); // no uid, no object: dropped
    await r.flush();
    expect(r.stats.dropped).toBe(1);
    const cron = await getReport("palisade-cronjob-nightly-node-a");
    expect(cron.scope).toMatchObject({ kind: "CronJob", name: "nightly", uid: uids.nightly });
    // The bare pod was resolved (cached) before its deletion; its report is owned by the pod itself.
    const debug = await getReport("palisade-pod-debug-node-a");
    expect(debug.scope).toMatchObject({ apiVersion: "v1", kind: "Pod", name: "debug", uid: goneUid });
    expect(debug.metadata.ownerReferences[0].uid).toBe(goneUid);
    expect(resultOf(debug, "/bin/sh").properties.count).toBe("2");
  });

  it("reports host processes in a ClusterPolicyReport per node, owned by the Node", async () => {
    const r = reporter();
    r.record(event({ pod: null, hook: "net.connect", action: "denied", process: { pid: 5, uid: 1000, binary: "/usr/bin/curl" }, net: { family: "ipv4", protocol: "tcp", daddr: "169.254.169.254", dport: 80 }, policy: "metadata", rule: "imds" }));
    await r.flush();
    const report = await kubectlJson(["get", "clusterpolicyreport", "palisade-node-node-a"]);
    expect(report.scope).toEqual({ apiVersion: "v1", kind: "Node", name: "node-a", uid: uids["node-a"] });
    expect(report.metadata.ownerReferences).toEqual([{ apiVersion: "v1", kind: "Node", name: "node-a", uid: uids["node-a"] }]);
    expect(report.results).toHaveLength(1);
    expect(report.results[0]).toMatchObject({ policy: "metadata", result: "fail", properties: { address: "169.254.169.254:80/tcp", binary: "/usr/bin/curl", uid: "1000" } });
    expect(report.results[0].properties.pod).toBeUndefined();
    expect((await kubectlJson(["get", "policyreports", "-A"])).items.map((i: Json) => i.metadata.name)).not.toContain("palisade-node-node-a");
  });

  it("stays bounded: at most N results, the least severe and oldest evicted first, summary recomputed", async () => {
    const r = reporter({ maxResultsPerReport: 3 });
    const severities = ["low", "critical", "info", "high", "low", "medium"];
    severities.forEach((severity, i) => r.record(event({ pod: "nightly-29000-q", policy: "bounded", rule: "r", severity, process: { pid: i, uid: 0, binary: `/opt/tool-${i}` } })));
    await r.flush();
    const report = await getReport("palisade-cronjob-nightly-node-a");
    // The report already held /bin/sh (high, from the earlier test): 7 results, 3 kept.
    expect(report.results.map((x: Json) => [x.properties.binary, x.severity])).toEqual([
      ["/opt/tool-1", "critical"],
      ["/opt/tool-3", "high"],
      ["/bin/sh", "high"],
    ]);
    expect(report.summary).toEqual({ pass: 0, fail: 3, warn: 0, error: 0, skip: 0 });
    expect(report.metadata.annotations["palisade.dev/evicted-results"]).toBe("4");
  });

  it("never copies a policy's labels or annotations (Argo CD's tracking ones) onto reports", async () => {
    await cluster.kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "palisade.dev/v1alpha1",
        kind: "TracingPolicy",
        metadata: {
          name: "no-shells",
          labels: { "app.kubernetes.io/instance": "security-policies", team: "sec" },
          annotations: { "argocd.argoproj.io/tracking-id": "security-policies:palisade.dev/TracingPolicy:/no-shells", "argocd.argoproj.io/sync-wave": "2" },
        },
        spec: { rules: [{ name: "shells", hook: "process.exec", match: 'process.binary == "/bin/sh"', action: "kill" }] },
      }),
    });
    const r = reporter();
    r.record(event());
    await r.flush();
    for (const report of [...(await kubectlJson(["get", "policyreports", "-A"])).items, ...(await kubectlJson(["get", "clusterpolicyreports"])).items]) {
      expect(report.metadata.labels["app.kubernetes.io/managed-by"]).toBe("palisade");
      for (const label of Object.keys(report.metadata.labels)) expect(["app.kubernetes.io/managed-by", "palisade.dev/node", "palisade.dev/workload-uid"]).toContain(label);
      expect(Object.keys(report.metadata.annotations).sort()).toEqual(["palisade.dev/evicted-results", "palisade.dev/node"]);
    }
  });

  it("reports a privileged container started, from the pod spec, once per container start", async () => {
    await create({ apiVersion: "v1", kind: "Pod", metadata: { name: "priv", namespace: NS }, spec: { nodeName: "node-a", hostPID: true, containers: [{ name: "tool", image: "registry.example/tool:2", securityContext: { privileged: true } }] } });
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const r = reporter();
    r.recordPod(await core.readNamespacedPod({ name: "priv", namespace: NS })); // not started yet: nothing
    await cluster.kubectl(["patch", "pod", "priv", "-n", NS, "--subresource=status", "--type=merge", "-p", JSON.stringify({ status: { containerStatuses: [{ name: "tool", image: "registry.example/tool:2", imageID: "", ready: true, restartCount: 0, state: { running: { startedAt: "2026-11-24T12:30:00Z" } } }] } })]);
    const started = await core.readNamespacedPod({ name: "priv", namespace: NS });
    r.recordPod(started);
    r.recordPod(started); // an informer resync: the same start
    r.recordPod({ ...started, spec: { ...started.spec!, nodeName: "node-b" } }); // another node's pod: not ours
    await r.flush();
    const report = await getReport("palisade-pod-priv-node-a");
    expect(report.results.map((x: Json) => [x.policy, x.rule, x.result, x.severity, x.category, x.properties.count])).toEqual([
      ["pod-privileges", "privileged-container", "warn", "high", "pod.spec", "1"],
      ["pod-privileges", "host-pid", "warn", "high", "pod.spec", "1"],
    ]);
    expect(report.results[0].properties).toMatchObject({ action: "observed", container: "tool", image: "registry.example/tool:2", firstSeen: "2026-11-24T12:30:00.000Z" });
    expect(report.summary.warn).toBe(2);

    // An agent restart lists the pod again: the start it counted does not count twice; a
    // container restart (a new start) does.
    const restarted = reporter();
    restarted.recordPod(started);
    await restarted.flush();
    const counts = async () => (await getReport("palisade-pod-priv-node-a")).results.map((x: Json) => [x.rule, x.properties.count]);
    expect(await counts()).toEqual([["privileged-container", "1"], ["host-pid", "1"]]);
    await cluster.kubectl(["patch", "pod", "priv", "-n", NS, "--subresource=status", "--type=merge", "-p", JSON.stringify({ status: { containerStatuses: [{ name: "tool", image: "registry.example/tool:2", imageID: "", ready: true, restartCount: 1, state: { running: { startedAt: "2026-11-24T12:31:00Z" } } }] } })]);
    restarted.recordPod(await core.readNamespacedPod({ name: "priv", namespace: NS }));
    await restarted.flush();
    expect(await counts()).toEqual([["privileged-container", "2"], ["host-pid", "1"]]);
  });
});

describe("policies removed", () => {
  it("leave every report this node wrote, those of a previous agent run included; other nodes' reports are untouched", async () => {
    const before = await getReport("palisade-deployment-api-node-b");
    const r = reporter(); // a fresh agent: nothing in memory
    r.retainPolicies(["no-shells"]);
    await r.flush();
    const policiesIn = async (name: string, kind = "policyreport") => [...new Set((await (kind === "clusterpolicyreport" ? kubectlJson(["get", kind, name]) : getReport(name, kind))).results.map((x: Json) => x.policy))];
    expect(await policiesIn("palisade-deployment-api-node-a")).toEqual(["no-shells"]);
    expect(await policiesIn("palisade-cronjob-nightly-node-a")).toEqual(["no-shells"]);
    expect(await policiesIn("palisade-pod-priv-node-a")).toEqual(["pod-privileges"]); // pod-spec results stay
    const host = await kubectlJson(["get", "clusterpolicyreport", "palisade-node-node-a"]);
    expect(host.results ?? []).toEqual([]);
    expect(host.summary).toEqual({ pass: 0, fail: 0, warn: 0, error: 0, skip: 0 });
    const deployment = await getReport("palisade-deployment-api-node-a");
    expect(deployment.summary).toEqual({ pass: 0, fail: 1, warn: 0, error: 0, skip: 0 });
    expect(resultOf(deployment, "/bin/sh").properties.count).toBe("5");
    expect((await getReport("palisade-deployment-api-node-b")).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  });
});

describe("OpenReports (openreports.io/v1alpha1) with flavor openreports", () => {
  it("writes Report and ClusterReport objects of the same shape", async () => {
    const r = reporter({ flavor: "openreports" });
    r.record(event());
    r.record(event({ pod: null }));
    await r.flush();
    const report = await getReport("palisade-deployment-api-node-a", "reports.openreports.io");
    expect(report).toMatchObject({ apiVersion: "openreports.io/v1alpha1", kind: "Report", source: "palisade", scope: { kind: "Deployment", uid: uids.api }, summary: { fail: 1 } });
    expect(resultOf(report, "/bin/sh").properties.count).toBe("1"); // its own objects: the PolicyReport's counts are not read
    const cluster_ = await kubectlJson(["get", "clusterreports.openreports.io", "palisade-node-node-a"]);
    expect(cluster_).toMatchObject({ kind: "ClusterReport", scope: { kind: "Node", name: "node-a" } });
    const table = (await cluster.kubectl(["get", "reports.openreports.io", "-n", NS])).stdout.split("\n");
    expect(table[0]).toMatch(/^NAME\s+PASS\s+FAIL\s+WARN\s+ERROR\s+SKIP\s+AGE$/);
  });
});

describe("the API server restarted", () => {
  it("loses and duplicates nothing: a write refused while it is down is retried at the next flush", async () => {
    const logs: string[] = [];
    const r = reporter({ log: (m) => logs.push(m) });
    r.record(event({ pod: "api-7c9d-x2", policy: "restart", rule: "r" }));
    await r.flush(); // the connection is open and kept alive
    r.record(event({ pod: "api-7c9d-x2", policy: "restart", rule: "r" }));
    const restarting = cluster.restartApiServer({ signal: "SIGKILL" });
    await new Promise((resolve) => setTimeout(resolve, 300));
    r.record(event({ pod: "api-7c9d-x2", policy: "restart", rule: "r" }));
    await r.flush(); // most likely while the server is down; either way nothing may be lost
    await restarting;
    await r.flush();
    const report = await getReport("palisade-deployment-api-node-a");
    expect(report.results.find((x: Json) => x.policy === "restart").properties.count).toBe("3");
    // Once the server is back, a flush writes: the dead kept-alive connection is not reused.
    r.record(event({ pod: "api-7c9d-x2", policy: "restart", rule: "r" }));
    const errorsBefore = r.stats.writeErrors;
    await r.flush();
    expect(r.stats.writeErrors).toBe(errorsBefore);
    expect((await getReport("palisade-deployment-api-node-a")).results.find((x: Json) => x.policy === "restart").properties.count).toBe("4");
    console.info(`during the restart: ${logs.join(" | ") || "no failed flush"}`);
  });
});

describe("least privilege and retries", () => {
  it("works with only the RBAC docs/policy-reports.md lists, and retries a refused write without losing counts", async () => {
    const agent = await cluster.makeUserKubeconfig("palisade-agent-test");
    const config = new KubeConfig();
    config.loadFromFile(agent);
    const logs: string[] = [];
    const r = reporter({ kubeConfig: config, log: (m) => logs.push(m) });
    r.record(event({ pod: "api-7c9d-x2", policy: "rbac", rule: "r" }));
    r.record(event({ pod: "api-7c9d-x2", policy: "rbac", rule: "r" }));
    await r.flush();
    expect(logs).toHaveLength(1);
    expect(logs[0]).toContain("policy reports: 1 failure(s), retried at the next flush");
    expect(logs[0]).toContain("forbidden");

    await cluster.kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        metadata: { name: "palisade-reports" },
        rules: [
          { apiGroups: [""], resources: ["pods", "nodes"], verbs: ["get"] },
          { apiGroups: ["apps"], resources: ["replicasets"], verbs: ["get"] },
          { apiGroups: ["batch"], resources: ["jobs"], verbs: ["get"] },
          { apiGroups: ["wgpolicyk8s.io"], resources: ["policyreports", "clusterpolicyreports"], verbs: ["get", "list", "create", "patch"] },
        ],
      }),
    });
    await cluster.kubectl(["create", "clusterrolebinding", "palisade-reports", "--clusterrole=palisade-reports", "--user=palisade-agent-test"]);
    await r.flush();
    const report = await getReport("palisade-deployment-api-node-a");
    expect(report.results.find((x: Json) => x.policy === "rbac").properties.count).toBe("2");
    expect(r.stats.writes).toBe(1);
  });
});

describe("clean-up by label, as docs/policy-reports.md says", () => {
  it("deletes one node's reports, then all of Palisade's", async () => {
    const names = async () => (await kubectlJson(["get", "policyreports,clusterpolicyreports", "-A"])).items.map((i: Json) => i.metadata.name as string);
    expect((await names()).filter((n: string) => n.endsWith("node-b"))).toEqual(["palisade-deployment-api-node-b"]);
    await cluster.kubectl(["delete", "policyreports", "-A", "-l", "palisade.dev/node=node-b"]);
    const left = await names();
    expect(left.filter((n: string) => n.endsWith("node-b"))).toEqual([]);
    expect(left).toContain("palisade-deployment-api-node-a");
    await cluster.kubectl(["delete", "policyreports,clusterpolicyreports", "-A", "-l", "app.kubernetes.io/managed-by=palisade"]);
    expect(await names()).toEqual([]);
  });
});
