// The Helm chart (charts/palisade) with helm built from upstream (test/e2e/kube/build
// --helm) and judged by a real kube-apiserver: lint, render with several values sets, the
// schema's refusals, the shape of what the agent needs (mounts, hostPID, privileges,
// least-privilege RBAC), server-side dry runs of every rendered object, and a real
// `helm install`, `upgrade` and `uninstall` (CRDs upgraded with the release, kept after).
// The agent's own Kubernetes code (informers, status plane, reports) runs with the chart's
// service account token, so an RBAC rule the code needs and the chart lacks fails here; and
// the DaemonSet's rendered command line and env run as a process (loads BPF: needs root).
// docs/installation.md's install, adoption, upgrade and uninstall commands run as written.

import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeClient } from "../../../src/controller/client.ts";
import { Informer } from "../../../src/controller/informer.ts";
import { PolicyReporter } from "../../../src/controller/reports/index.ts";
import { NodeStatePublisher, startStatusAggregator } from "../../../src/controller/status/index.ts";
import { otlpLogsConfigFromEnv } from "../../../src/sinks/otel-config.ts";
import { ensureBinaries, startCluster, type Binaries, type Cluster } from "./cluster.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const CHART = join(ROOT, "charts", "palisade");
const RELEASE = "p";
const NAMESPACE = "palisade";
const FULLNAME = "p-palisade";

// Kubernetes objects as the tests read them: loosely typed, checked field by field.
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  rules?: any[];
}

// The values sets the chart is rendered, linted and dry-run with.
const VALUES_SETS: Record<string, Record<string, unknown>> = {
  defaults: {},
  "otel, events file and ServiceMonitor": {
    otel: {
      endpoint: "http://otel-collector.observability:4317",
      protocol: "grpc",
      headersSecret: { name: "otlp-auth", key: "headers" },
      timeout: "5000",
      compression: "gzip",
      resourceAttributes: { "deployment.environment": "prod", "k8s.cluster.name": "eu-1" },
    },
    eventsFile: { enabled: true },
    metrics: { serviceMonitor: { enabled: true, labels: { release: "kube-prometheus-stack" }, interval: "15s" } },
  },
  "PolicyReport CRDs owned by another producer": { crds: { policyReports: false } },
  openreports: { reports: { format: "openreports" } },
  "capabilities instead of privileged, custom scheduling and resources": {
    image: { repository: "registry.example.com/sec/palisade", digest: `sha256:${"ab".repeat(32)}` },
    crds: { install: false, policyReports: false, keep: false },
    metrics: { enabled: false },
    agent: {
      privileged: false,
      keepAttached: false,
      priorityClassName: "",
      resources: { requests: { cpu: "250m", memory: "512Mi" }, limits: { cpu: "2", memory: "2Gi" } },
      tolerations: [{ key: "dedicated", operator: "Equal", value: "security", effect: "NoSchedule" }],
      nodeSelector: { "node-role.example.com/secure": "true" },
      podLabels: { team: "security" },
      extraArgs: ["--pin-dir=/sys/fs/bpf/palisade-b"],
    },
    serviceAccount: { create: false, name: "palisade-agent" },
  },
};

let helm: string;
let binaries: Binaries;
let scratch: string;

beforeAll(async () => {
  binaries = await ensureBinaries({ helm: true });
  helm = binaries.helm!;
  scratch = mkdtempSync(join(tmpdir(), "palisade-helm-"));
}, 60 * 60_000); // a cold build of helm takes minutes

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...options.env }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(options.input ?? "");
  });
}

// The image a user builds and pushes (the chart has no default: none is published).
const IMAGE_REPOSITORY = "registry.example.com/security/palisade";

/** A values file: `values`, with IMAGE_REPOSITORY unless they name an image repository. */
function valuesFile(values: Record<string, unknown>): string {
  const file = join(mkdtempSync(join(scratch, "values-")), "values.yaml");
  const image = (values.image ?? {}) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...values, image: { repository: IMAGE_REPOSITORY, ...image } })); // JSON is YAML
  return file;
}

// `helm template` of the chart; rejects with helm's message when it fails.
async function render(values: Record<string, unknown>, chart = CHART): Promise<K8sObject[]> {
  const result = await run(helm, ["template", RELEASE, chart, "-n", NAMESPACE, "--kube-version", binaries.kubeVersion, "-f", valuesFile(values)]);
  if (result.code !== 0) throw new Error(`helm template failed:\n${result.stderr}`);
  return parseAllDocuments(result.stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

// The labels the chart puts on everything it owns (those of its ServiceAccount).
const releaseLabels = async () => only(await render({}), "ServiceAccount").metadata.labels;

const byKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
function only(objects: K8sObject[], kind: string): K8sObject {
  const found = byKind(objects, kind);
  expect(found, `exactly one ${kind}`).toHaveLength(1);
  return found[0]!;
}

// The CRDs in api/crds/, parsed, by name.
function sourceCrds(): Map<string, K8sObject> {
  const crds = new Map<string, K8sObject>();
  for (const file of readdirSync(join(ROOT, "api", "crds")).filter((f) => f.endsWith(".yaml"))) {
    const crd = parseYaml(readFileSync(join(ROOT, "api", "crds", file), "utf8")) as K8sObject;
    crds.set(crd.metadata.name, crd);
  }
  return crds;
}
const crdNamesOfGroups = (...groups: string[]) =>
  [...sourceCrds().values()].filter((c) => groups.includes(c.spec.group)).map((c) => c.metadata.name).sort();

describe("the chart, rendered by helm", () => {
  it("keeps files/crds identical to api/crds (no silent drift)", () => {
    const source = readdirSync(join(ROOT, "api", "crds")).filter((f) => f.endsWith(".yaml")).sort();
    const copies = readdirSync(join(CHART, "files", "crds")).sort();
    const fix = "copy them again: cp api/crds/*.yaml charts/palisade/files/crds/";
    expect(copies, fix).toEqual(source);
    for (const file of source) {
      expect(readFileSync(join(CHART, "files", "crds", file), "utf8"), `${file}: ${fix}`).toBe(readFileSync(join(ROOT, "api", "crds", file), "utf8"));
    }
  });

  it("deploys the version package.json declares (the image tag defaults to the chart's appVersion)", () => {
    const chart = parseYaml(readFileSync(join(CHART, "Chart.yaml"), "utf8")) as { appVersion: string };
    expect(chart.appVersion).toBe((JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version);
  });

  it.each(Object.entries(VALUES_SETS))("passes helm lint --strict with values: %s", async (_name, values) => {
    const result = await run(helm, ["lint", "--strict", CHART, "-n", NAMESPACE, "-f", valuesFile(values)]);
    expect(result.stderr + result.stdout).toContain("1 chart(s) linted, 0 chart(s) failed");
    expect(result.code).toBe(0);
  });

  it.each([
    ["an unknown key", { agent: { hostNetwork: true } }, "at '/agent': additional properties 'hostNetwork' not allowed"],
    ["a misspelt top-level key", { otle: { endpoint: "http://c:4318" } }, "additional properties 'otle' not allowed"],
    ["an unknown report format", { reports: { format: "kyverno" } }, "at '/reports/format': value must be one of 'wgpolicyk8s', 'openreports'"],
    ["an OTLP endpoint without a scheme", { otel: { endpoint: "collector:4318" } }, "at '/otel/endpoint'"],
    ["an unknown OTLP protocol", { otel: { protocol: "http" } }, "at '/otel/protocol'"],
    ["a timeout with a unit", { otel: { timeout: "10s" } }, "at '/otel/timeout'"],
    ["a pin directory outside bpffs", { agent: { pinDir: "/var/lib/palisade" } }, "at '/agent/pinDir'"],
    ["a port out of range", { metrics: { port: 70000 } }, "at '/metrics/port'"],
    ["a privileged flag that is a string", { agent: { privileged: "false" } }, "at '/agent/privileged'"],
    ["a misspelt toleration field", { agent: { tolerations: [{ operator: "Exists", efect: "NoSchedule" }] } }, "additional properties 'efect' not allowed"],
    ["a bad scrape interval", { metrics: { serviceMonitor: { interval: "30 seconds" } } }, "at '/metrics/serviceMonitor/interval'"],
    ["a digest that is not sha256", { image: { digest: "latest" } }, "at '/image/digest'"],
  ])("refuses %s", async (_name, values, message) => {
    await expect(render(values)).rejects.toThrow(message);
  });

  it("refuses to render without an image repository, saying why", async () => {
    const result = await run(helm, ["template", RELEASE, CHART, "-n", NAMESPACE]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("image.repository is required: no Palisade image is published; build one from the Dockerfile and push it (docs/installation.md)");
  });

  it("refuses a ServiceMonitor without metrics, and a headers secret without its key", async () => {
    await expect(render({ metrics: { enabled: false, serviceMonitor: { enabled: true } } })).rejects.toThrow("metrics.serviceMonitor.enabled needs metrics.enabled");
    await expect(render({ otel: { endpoint: "http://c:4318", headersSecret: { name: "s" } } })).rejects.toThrow("otel.headersSecret.key is required");
  });

  it("renders the CRDs exactly as api/crds, plus the release's labels and the keep annotations (Helm, Argo CD)", async () => {
    const source = sourceCrds();
    const rendered = byKind(await render({}), "CustomResourceDefinition");
    expect(rendered.map((c) => c.metadata.name).sort()).toEqual(crdNamesOfGroups("palisade.dev", "wgpolicyk8s.io"));
    for (const crd of rendered) {
      const original = source.get(crd.metadata.name)!;
      expect(crd.metadata.labels).toEqual({ ...original.metadata.labels, ...(await releaseLabels()) });
      expect(crd.metadata.annotations).toEqual({ ...original.metadata.annotations, "helm.sh/resource-policy": "keep", "argocd.argoproj.io/sync-options": "Prune=false" });
      const { labels: _labels, annotations: _annotations, ...metadata } = crd.metadata;
      const { labels: _l, annotations: _a, ...originalMetadata } = original.metadata;
      expect({ ...crd, metadata }, crd.metadata.name).toEqual({ ...original, metadata: originalMetadata });
    }
  });

  it("installs the report CRDs of the chosen format only, or none when another producer owns them", async () => {
    const names = async (values: Record<string, unknown>) =>
      byKind(await render(values), "CustomResourceDefinition").map((c) => c.metadata.name).sort();
    expect(await names({ reports: { format: "openreports" } })).toEqual(crdNamesOfGroups("palisade.dev", "openreports.io"));
    expect(await names({ crds: { policyReports: false } })).toEqual(crdNamesOfGroups("palisade.dev"));
    expect(await names({ crds: { install: false, policyReports: false } })).toEqual([]);
    expect(await names({ crds: { install: false } })).toEqual(crdNamesOfGroups("wgpolicyk8s.io"));
    const kept = byKind(await render({ crds: { keep: false } }), "CustomResourceDefinition");
    for (const crd of kept) {
      expect(crd.metadata.annotations ?? {}).not.toHaveProperty("helm.sh/resource-policy");
      expect(crd.metadata.annotations ?? {}).not.toHaveProperty("argocd.argoproj.io/sync-options");
    }
  });

  it("gives the agent hostPID, privileges and the host file systems BPF needs", async () => {
    const ds = only(await render({}), "DaemonSet");
    const pod = ds.spec.template.spec;
    expect(pod.hostPID).toBe(true);
    expect(pod.hostNetwork).toBeUndefined();
    expect(pod.priorityClassName).toBe("system-node-critical");
    expect(pod.tolerations).toEqual([{ operator: "Exists" }]);
    const [agent] = pod.containers;
    expect(agent.securityContext).toEqual({ privileged: true, runAsUser: 0, readOnlyRootFilesystem: true });
    const hostPaths = Object.fromEntries(pod.volumes.filter((v: { hostPath?: unknown }) => v.hostPath).map((v: { name: string; hostPath: { path: string } }) => [v.name, v.hostPath.path]));
    const mounts = Object.fromEntries(agent.volumeMounts.map((m: { name: string }) => [m.name, m]));
    const expected: [string, string, Record<string, unknown>][] = [
      ["bpffs", "/sys/fs/bpf", { mountPropagation: "Bidirectional" }],
      ["securityfs", "/sys/kernel/security", { readOnly: true }],
      ["cgroup", "/sys/fs/cgroup", { readOnly: true, mountPropagation: "HostToContainer" }],
      ["btf", "/sys/kernel/btf", { readOnly: true }],
      ["tracefs", "/sys/kernel/tracing", { readOnly: true, mountPropagation: "HostToContainer" }],
      ["run", "/run/palisade", {}],
    ];
    for (const [name, path, how] of expected) {
      expect(hostPaths[name], name).toBe(path);
      expect(mounts[name], name).toEqual({ name, mountPath: path, ...how });
    }
    expect(agent.args).toEqual(["run", "--kubernetes", "--pin-dir=/sys/fs/bpf/palisade", "--keep-attached", "--report-format=wgpolicyk8s", "--metrics-address=0.0.0.0:9464"]);
    expect(agent.env).toEqual([
      { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
      { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
    ]);
    expect(agent.ports).toEqual([{ name: "metrics", containerPort: 9464, protocol: "TCP" }]);
    expect(agent.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "metrics" });
    expect(agent.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "metrics" });
  });

  it("passes OTel settings as the standard variables, and writes events to a host file when asked", async () => {
    const objects = await render(VALUES_SETS["otel, events file and ServiceMonitor"]!);
    const [agent] = only(objects, "DaemonSet").spec.template.spec.containers;
    expect(agent.env.slice(2)).toEqual([
      { name: "OTEL_EXPORTER_OTLP_ENDPOINT", value: "http://otel-collector.observability:4317" },
      { name: "OTEL_EXPORTER_OTLP_PROTOCOL", value: "grpc" },
      { name: "OTEL_EXPORTER_OTLP_HEADERS", valueFrom: { secretKeyRef: { name: "otlp-auth", key: "headers" } } },
      { name: "OTEL_EXPORTER_OTLP_TIMEOUT", value: "5000" },
      { name: "OTEL_EXPORTER_OTLP_COMPRESSION", value: "gzip" },
      { name: "OTEL_SERVICE_NAME", value: "palisade" },
      { name: "OTEL_RESOURCE_ATTRIBUTES", value: "deployment.environment=prod,k8s.cluster.name=eu-1" },
    ]);
    expect(agent.args).toContain("--events-file=/var/log/palisade/events.jsonl");
    const pod = only(objects, "DaemonSet").spec.template.spec;
    expect(pod.volumes).toContainEqual({ name: "events", hostPath: { path: "/var/log/palisade", type: "DirectoryOrCreate" } });
    const monitor = only(objects, "ServiceMonitor");
    expect(monitor.metadata.labels).toMatchObject({ release: "kube-prometheus-stack" });
    expect(monitor.spec.endpoints).toEqual([expect.objectContaining({ port: "metrics", path: "/metrics", interval: "15s" })]);
    // The monitor selects the metrics Service, which selects the agent's pods.
    const service = only(objects, "Service");
    expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(only(objects, "DaemonSet").spec.template.metadata.labels).toMatchObject(service.spec.selector);
    expect(service.spec.clusterIP).toBe("None");
  });

  it("renders OTel variables that the agent's own parser accepts, meaning what the values say", async () => {
    const envOf = async (values: Record<string, unknown>, secrets: Record<string, string> = {}) => {
      const [agent] = only(await render(values), "DaemonSet").spec.template.spec.containers;
      const env: Record<string, string> = {};
      for (const e of agent.env as { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[]) {
        if (e.value !== undefined) env[e.name] = e.value;
        else if (e.valueFrom?.secretKeyRef) env[e.name] = secrets[`${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`]!;
      }
      return env;
    };
    const grpc = await envOf(VALUES_SETS["otel, events file and ServiceMonitor"]!, { "otlp-auth/headers": "authorization=Bearer%20abc" });
    expect(otlpLogsConfigFromEnv(grpc)).toEqual({
      protocol: "grpc",
      url: "http://otel-collector.observability:4317/",
      headers: { authorization: "Bearer abc" },
      timeoutMillis: 5000,
      compression: "gzip",
    });
    const http = await envOf({ otel: { endpoint: "https://collector.example.com:4318", headers: "x-tenant=sec" } });
    expect(otlpLogsConfigFromEnv(http)).toMatchObject({ protocol: "http/protobuf", url: "https://collector.example.com:4318/v1/logs", headers: { "x-tenant": "sec" } });
    expect(otlpLogsConfigFromEnv(await envOf({}))).toBeUndefined(); // no endpoint: the sink is off
  });

  it("without privileged: drops everything but the listed capabilities, and cannot use Bidirectional propagation", async () => {
    const objects = await render(VALUES_SETS["capabilities instead of privileged, custom scheduling and resources"]!);
    const pod = only(objects, "DaemonSet").spec.template.spec;
    const [agent] = pod.containers;
    expect(agent.securityContext).toEqual({
      privileged: false,
      capabilities: { drop: ["ALL"], add: ["BPF", "PERFMON", "SYS_ADMIN", "SYS_RESOURCE", "NET_ADMIN"] },
      appArmorProfile: { type: "Unconfined" },
      runAsUser: 0,
      readOnlyRootFilesystem: true,
    });
    expect(agent.volumeMounts.find((m: { name: string }) => m.name === "bpffs").mountPropagation).toBe("HostToContainer");
    expect(agent.image).toBe(`registry.example.com/sec/palisade@sha256:${"ab".repeat(32)}`);
    expect(agent.resources).toEqual({ requests: { cpu: "250m", memory: "512Mi" }, limits: { cpu: "2", memory: "2Gi" } });
    expect(agent.args).toEqual(["run", "--kubernetes", "--pin-dir=/sys/fs/bpf/palisade", "--report-format=wgpolicyk8s", "--no-metrics", "--pin-dir=/sys/fs/bpf/palisade-b"]);
    expect(agent.ports).toBeUndefined();
    expect(agent.livenessProbe).toBeUndefined(); // the probes are served by the metrics endpoint
    expect(agent.readinessProbe).toBeUndefined();
    expect(pod.tolerations).toEqual([{ key: "dedicated", operator: "Equal", value: "security", effect: "NoSchedule" }]);
    // Helm merges maps with the defaults (set a key to null to remove it).
    expect(pod.nodeSelector).toEqual({ "kubernetes.io/os": "linux", "node-role.example.com/secure": "true" });
    expect(pod.priorityClassName).toBeUndefined();
    expect(pod.serviceAccountName).toBe("palisade-agent");
    expect(byKind(objects, "ServiceAccount")).toEqual([]);
    expect(byKind(objects, "Service")).toEqual([]);
    expect(byKind(objects, "CustomResourceDefinition")).toEqual([]);
  });

  it("grants exactly the RBAC the agent needs: no wildcards, no secrets, status-only writes on policies", async () => {
    const rules = (objects: K8sObject[], kind: string) =>
      only(objects, kind).rules!.map((r: { apiGroups: string[]; resources: string[]; verbs: string[] }) => `${r.apiGroups.join(",")} ${r.resources.join(",")}: ${r.verbs.join(",")}`);
    const defaults = await render({});
    expect(rules(defaults, "ClusterRole")).toEqual([
      "palisade.dev tracingpolicies,tracingpoliciesnamespaced: get,list,watch",
      "palisade.dev tracingpolicies/status,tracingpoliciesnamespaced/status: patch",
      "palisade.dev palisadenodes: list,watch,create,patch",
      " pods,namespaces: get,list,watch",
      " nodes: get",
      "apps replicasets: get",
      "batch jobs: get",
      "wgpolicyk8s.io policyreports,clusterpolicyreports: get,list,create,patch",
    ]);
    expect(rules(await render({ reports: { format: "openreports" } }), "ClusterRole").at(-1)).toBe("openreports.io reports,clusterreports: get,list,create,patch");
    const role = only(defaults, "Role");
    expect(role.metadata.namespace).toBe(NAMESPACE);
    expect(rules(defaults, "Role")).toEqual(["coordination.k8s.io leases: get,list,watch,create,update,patch"]);
    for (const binding of [only(defaults, "ClusterRoleBinding"), only(defaults, "RoleBinding")]) {
      expect((binding as unknown as { subjects: unknown[] }).subjects).toEqual([{ kind: "ServiceAccount", name: FULLNAME, namespace: NAMESPACE }]);
    }
  });

  it("is documented: docs/installation.md's values table names every value, and only values", () => {
    const values = parseYaml(readFileSync(join(CHART, "values.yaml"), "utf8")) as Record<string, unknown>;
    const leaves: string[] = [];
    const walk = (o: Record<string, unknown>, prefix: string) => {
      for (const [k, v] of Object.entries(o)) {
        const path = prefix + k;
        if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length > 0) walk(v as Record<string, unknown>, `${path}.`);
        else leaves.push(path);
      }
    };
    walk(values, "");
    const doc = readFileSync(join(ROOT, "docs", "installation.md"), "utf8");
    const table = doc.slice(doc.indexOf("### Values"), doc.indexOf("###", doc.indexOf("### Values") + 1));
    const rows = [...table.matchAll(/^\| `([\w.]+)` \|/gm)].map((m) => m[1]!);
    for (const leaf of leaves) expect(rows.some((r) => leaf === r || leaf.startsWith(`${r}.`)), `${leaf} is in the table`).toBe(true);
    for (const row of rows) expect(leaves.some((l) => l === row || l.startsWith(`${row}.`)), `${row} is a value`).toBe(true);
  });

  it("passes the agent only flags that `palisade run` accepts", async () => {
    const help = await run(join(ROOT, "bin", "palisade"), ["run", "--help"]);
    expect(help.code).toBe(0);
    const flags = new Set<string>();
    for (const values of Object.values(VALUES_SETS)) {
      const [agent] = only(await render(values), "DaemonSet").spec.template.spec.containers;
      for (const arg of agent.args.slice(1) as string[]) flags.add(arg.split("=")[0]!);
    }
    for (const flag of flags) expect(help.stdout, `palisade run --help lists ${flag}`).toMatch(new RegExp(`(^|[ ,])${flag}\\b`, "m"));
  });
});

// A ServiceMonitor CRD reduced to the fields the chart sets, typed as in the Prometheus
// Operator's monitoring.coreos.com/v1 API. It is not upstream's CRD (a 70 kB file we do not
// vendor): with --validate=strict it still rejects a misspelt or mistyped field the chart
// would send.
const SERVICE_MONITOR_CRD = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: "servicemonitors.monitoring.coreos.com" },
  spec: {
    group: "monitoring.coreos.com",
    scope: "Namespaced",
    names: { kind: "ServiceMonitor", listKind: "ServiceMonitorList", plural: "servicemonitors", singular: "servicemonitor" },
    versions: [
      {
        name: "v1",
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: "object",
            required: ["spec"],
            properties: {
              spec: {
                type: "object",
                required: ["selector"],
                properties: {
                  selector: { type: "object", properties: { matchLabels: { type: "object", additionalProperties: { type: "string" } } } },
                  namespaceSelector: { type: "object", properties: { any: { type: "boolean" }, matchNames: { type: "array", items: { type: "string" } } } },
                  endpoints: {
                    type: "array",
                    items: {
                      type: "object",
                      properties: {
                        port: { type: "string" },
                        path: { type: "string" },
                        interval: { type: "string", pattern: "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$" },
                        scrapeTimeout: { type: "string", pattern: "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$" },
                        relabelings: {
                          type: "array",
                          items: {
                            type: "object",
                            properties: { sourceLabels: { type: "array", items: { type: "string" } }, targetLabel: { type: "string" } },
                          },
                        },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
    ],
  },
};

describe("the chart, judged by a real kube-apiserver", () => {
  let cluster: Cluster;
  const helmEnv = () => ({ KUBECONFIG: cluster.kubeconfig, HELM_CACHE_HOME: join(scratch, "helm-cache"), HELM_CONFIG_HOME: join(scratch, "helm-config"), HELM_DATA_HOME: join(scratch, "helm-data") });

  beforeAll(async () => {
    cluster = await startCluster();
    // The agent is privileged: its namespace must allow that under Pod Security Admission.
    await cluster.kubectl(["create", "namespace", NAMESPACE]);
    await cluster.kubectl(["label", "namespace", NAMESPACE, "pod-security.kubernetes.io/enforce=privileged"]);
    await cluster.kubectl(["apply", "--validate=strict", "-f", "-"], { input: JSON.stringify(SERVICE_MONITOR_CRD) });
  }, 60 * 60_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  const asList = (objects: K8sObject[]) => JSON.stringify({ apiVersion: "v1", kind: "List", items: objects });

  it.each(Object.entries(VALUES_SETS))(
    "accepts every rendered object (server-side dry run, strict field validation, no warnings) with values: %s",
    async (_name, values) => {
      const objects = await render(values);
      // Dry runs of custom resources need their CRDs, so those are applied for real first.
      const crds = byKind(objects, "CustomResourceDefinition");
      if (crds.length > 0) {
        const applied = await cluster.kubectl(["apply", "--validate=strict", "-f", "-"], { input: asList(crds) });
        expect(applied.stderr).toBe("");
        await cluster.kubectl(["wait", "--for=condition=Established", "--timeout=30s", ...crds.map((c) => `crd/${c.metadata.name}`)]);
      }
      const rest = objects.filter((o) => o.kind !== "CustomResourceDefinition");
      const result = await cluster.kubectl(["apply", "--dry-run=server", "--validate=strict", "-n", NAMESPACE, "-f", "-"], { input: asList(rest), check: false });
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      for (const o of rest) expect(result.stdout).toContain(`${o.metadata.name} created (server dry run)`);
    },
  );

  it("is refused, with the reason, where Pod Security forbids privileged pods", async () => {
    await cluster.kubectl(["create", "namespace", "restricted-ns"]);
    await cluster.kubectl(["label", "namespace", "restricted-ns", "pod-security.kubernetes.io/enforce=baseline"]);
    const ds = only(await render({}), "DaemonSet");
    const result = await cluster.kubectl(["apply", "--dry-run=server", "-n", "restricted-ns", "-f", "-"], { input: JSON.stringify({ ...ds, metadata: { ...ds.metadata, namespace: "restricted-ns" } }) });
    // For a DaemonSet the admission plugin warns (pods would be refused when created).
    expect(result.stderr).toMatch(/would violate PodSecurity "baseline:latest": .*host namespaces \(hostPID=true\).*privileged/);
  });

  it("refuses Bidirectional propagation for an unprivileged agent: why the chart switches to HostToContainer", async () => {
    const ds = only(await render({ agent: { privileged: false } }), "DaemonSet");
    ds.spec.template.spec.containers[0].volumeMounts.find((m: { name: string }) => m.name === "bpffs").mountPropagation = "Bidirectional";
    const result = await cluster.kubectl(["apply", "--dry-run=server", "-n", NAMESPACE, "-f", "-"], { input: JSON.stringify(ds), check: false });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/mountPropagation: Forbidden: Bidirectional mount propagation is available only to privileged containers/);
  });

  describe("helm install, upgrade and uninstall", () => {
    const ns = "palisade-live";
    const installed = () => crdNamesOfGroups("palisade.dev", "wgpolicyk8s.io");
    const helmRun = async (args: string[]) => {
      const result = await run(helm, args, { env: helmEnv() });
      if (result.code !== 0) throw new Error(`helm ${args.join(" ")} failed:\n${result.stderr}`);
      return result;
    };

    it("installs, after adopting CRDs that kubectl applied before the chart", async () => {
      await cluster.kubectl(["create", "namespace", ns]);
      await cluster.kubectl(["label", "namespace", ns, "pod-security.kubernetes.io/enforce=privileged"]);
      // A cluster whose CRDs were applied with kubectl before the chart (as the standalone
      // docs do): Helm refuses to take over objects it does not own, until they carry the
      // release's ownership metadata (the adoption step of docs/installation.md).
      await cluster.kubectl(["apply", "-f", join(ROOT, "api", "crds")]);
      const refused = await run(helm, ["install", RELEASE, CHART, "-n", ns, "--set", `image.repository=${IMAGE_REPOSITORY}`], { env: helmEnv() });
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/exists and cannot be imported into the current release: invalid ownership metadata/);
      const crdRefs = installed().map((c) => `crd/${c}`);
      await cluster.kubectl(["label", "--overwrite", ...crdRefs, "app.kubernetes.io/managed-by=Helm"]);
      await cluster.kubectl(["annotate", "--overwrite", ...crdRefs, `meta.helm.sh/release-name=${RELEASE}`, `meta.helm.sh/release-namespace=${ns}`]);
      await helmRun(["install", RELEASE, CHART, "-n", ns, "--set", `image.repository=${IMAGE_REPOSITORY}`]);
      expect((await cluster.kubectl(["get", "daemonset", FULLNAME, "-n", ns, "-o", "name"])).stdout.trim()).toBe(`daemonset.apps/${FULLNAME}`);
      await cluster.kubectl(["wait", "--for=condition=Established", "--timeout=30s", ...crdRefs]);
    });

    it("grants the service account what it needs and nothing more (the API server's authorizer)", async () => {
      const sa = `system:serviceaccount:${ns}:${FULLNAME}`;
      const can = async (...args: string[]) => (await cluster.kubectl(["auth", "can-i", "--as", sa, ...args], { check: false })).stdout.trim();
      expect(await can("watch", "tracingpolicies.palisade.dev")).toBe("yes");
      expect(await can("patch", "tracingpolicies.palisade.dev", "--subresource=status")).toBe("yes");
      expect(await can("update", "tracingpolicies.palisade.dev")).toBe("no"); // never the spec
      expect(await can("patch", "tracingpolicies.palisade.dev")).toBe("no");
      expect(await can("delete", "palisadenodes.palisade.dev")).toBe("no");
      expect(await can("delete", "policyreports.wgpolicyk8s.io", "-n", "team-a")).toBe("no");
      expect(await can("delete", "tracingpoliciesnamespaced.palisade.dev", "-n", "team-a")).toBe("no");
      expect(await can("create", "palisadenodes.palisade.dev")).toBe("yes");
      expect(await can("list", "pods", "-A")).toBe("yes");
      expect(await can("get", "replicasets.apps", "-n", "team-a")).toBe("yes");
      expect(await can("get", "jobs.batch", "-n", "team-a")).toBe("yes");
      expect(await can("get", "nodes")).toBe("yes");
      expect(await can("list", "nodes")).toBe("no");
      expect(await can("watch", "leases.coordination.k8s.io", "-n", ns)).toBe("yes");
      expect(await can("list", "replicasets.apps", "-n", "team-a")).toBe("no");
      expect(await can("create", "policyreports.wgpolicyk8s.io", "-n", "team-a")).toBe("yes");
      expect(await can("create", "reports.openreports.io", "-n", "team-a")).toBe("no");
      expect(await can("update", "leases.coordination.k8s.io", "-n", ns)).toBe("yes");
      expect(await can("update", "leases.coordination.k8s.io", "-n", "kube-system")).toBe("no");
      expect(await can("get", "secrets", "-n", ns)).toBe("no");
      expect(await can("delete", "pods", "-n", "team-a")).toBe("no");
    });

    it("is enough for the agent's own Kubernetes code: informers, status plane and reports, run as the service account", async () => {
      const token = (await cluster.kubectl(["-n", ns, "create", "token", FULLNAME, "--duration=1h"])).stdout.trim();
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromOptions({
        clusters: [{ name: "test", server: cluster.server, caFile: cluster.caFile }],
        users: [{ name: "agent", token }],
        contexts: [{ name: "agent", cluster: "test", user: "agent" }],
        currentContext: "agent",
      });
      const node = "node-1";
      const logs: string[] = [];
      const log = (line: string) => logs.push(line);
      // What an agent finds on its node (created as the admin): the Node, a Deployment's pod
      // with a privileged container (a pod-spec finding), and a policy.
      const create = async (o: Record<string, unknown>) => JSON.parse((await cluster.kubectl(["create", "-o", "json", "-f", "-"], { input: JSON.stringify(o) })).stdout);
      await create({ apiVersion: "v1", kind: "Node", metadata: { name: node } });
      await create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "shop" } });
      await create({ apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default", namespace: "shop" } });
      const template = { metadata: { labels: { app: "api" } }, spec: { containers: [{ name: "app", image: "registry.example/app:1" }] } };
      const deployment = await create({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "api", namespace: "shop" }, spec: { selector: { matchLabels: { app: "api" } }, template } });
      const ownedBy = (o: { apiVersion: string; kind: string; metadata: { name: string; uid: string } }) => [{ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, uid: o.metadata.uid, controller: true }];
      const replicaSet = await create({ apiVersion: "apps/v1", kind: "ReplicaSet", metadata: { name: "api-7c9d", namespace: "shop", ownerReferences: ownedBy(deployment) }, spec: { selector: { matchLabels: { app: "api" } }, template } });
      const pod = await create({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "api-7c9d-x1", namespace: "shop", labels: { app: "api" }, ownerReferences: ownedBy(replicaSet) },
        spec: { nodeName: node, containers: [{ name: "app", image: "registry.example/app:1", securityContext: { privileged: true } }] },
      });
      pod.status = { containerStatuses: [{ name: "app", containerID: "containerd://abc", state: { running: { startedAt: "2026-11-24T12:00:00Z" } } }] };
      await cluster.kubectl(["apply", "-f", "-"], { input: JSON.stringify({ apiVersion: "palisade.dev/v1alpha1", kind: "TracingPolicy", metadata: { name: "sa-check" }, spec: { rules: [{ name: "r", hook: "process.exec", match: 'process.binary == "/bin/sh"', action: "kill" }] } }) });
      const policy = JSON.parse((await cluster.kubectl(["get", "tracingpolicy", "sa-check", "-o", "json"])).stdout);

      // The informers `palisade run --kubernetes` starts.
      const client = new KubeClient(kubeConfig);
      const informers = [
        ...["tracingpolicies", "tracingpoliciesnamespaced"].map((plural) => new Informer(client, { path: `/apis/palisade.dev/v1alpha1/${plural}`, onChange: () => {}, log })),
        new Informer(client, { path: "/api/v1/pods", onChange: () => {}, log, fieldSelector: `spec.nodeName=${node}` }),
        new Informer(client, { path: "/api/v1/namespaces", onChange: () => {}, log }),
      ];
      for (const informer of informers) informer.start();
      // The status plane: this node's PalisadeNode and heartbeat Lease, and the elected aggregator.
      const publisher = new NodeStatePublisher({ kubeConfig, node, namespace: ns, heartbeatSeconds: 1, log });
      const aggregator = startStatusAggregator({ kubeConfig, identity: node, namespace: ns, log, leaseDurationSeconds: 4 });
      const reporter = new PolicyReporter({ kubeConfig, node, flushIntervalMs: 0, log });
      try {
        await Promise.all(informers.map((i) => i.synced));
        publisher.publish({
          node,
          heartbeatTime: new Date().toISOString(),
          backends: { "process.exec": "tracepoint" },
          planDigest: "sha256:1",
          policies: [{ kind: "TracingPolicy", name: "sa-check", uid: policy.metadata.uid, generation: policy.metadata.generation, state: "Enforcing", reason: "Applied" }],
        });
        const deadline = Date.now() + 60_000;
        let ready: { status?: string } | undefined;
        while (Date.now() < deadline && ready?.status !== "True") {
          await new Promise((resolve) => setTimeout(resolve, 250));
          const { status } = JSON.parse((await cluster.kubectl(["get", "tracingpolicy", "sa-check", "-o", "json"])).stdout);
          ready = status?.conditions?.find((c: { type: string }) => c.type === "Ready");
        }
        expect(ready, `policy status, with the agents' log:\n${logs.join("\n")}`).toMatchObject({ status: "True" });
        // Reports: the pod's (owner chain resolved through the ReplicaSet) and the node's.
        reporter.recordPod(pod);
        reporter.record({ time: new Date().toISOString(), node, hook: "process.exec", action: "killed", policy: "sa-check", rule: "r", severity: "high", process: { pid: 42, uid: 0, binary: "/bin/sh" } });
        await reporter.flush();
        expect(reporter.stats, logs.join("\n")).toMatchObject({ writeErrors: 0, dropped: 0 });
        expect(reporter.stats.writes).toBeGreaterThanOrEqual(2);
        const reports = JSON.parse((await cluster.kubectl(["get", "policyreports", "-n", "shop", "-o", "json"])).stdout).items;
        expect(reports.map((r: { scope: { name: string } }) => r.scope.name)).toEqual(["api"]);
        expect(JSON.parse((await cluster.kubectl(["get", "clusterpolicyreports", "-o", "json"])).stdout).items).toHaveLength(1);
        expect(logs.filter((l) => /forbidden|\b403\b/i.test(l))).toEqual([]);
      } finally {
        await Promise.all(informers.map((i) => i.stop()));
        await reporter.close();
        await publisher.close();
        await aggregator.stop();
      }
    }, 120_000);

    it("runs the DaemonSet's own command line (args and env as rendered) as its service account: the policy turns Ready", async () => {
      // The agent container, started as the kubelet would start it, without the container:
      // the rendered args and env (fieldRefs resolved), the service account's token in place
      // of the in-cluster config. Shared-host safety (other tests run agents too): our own
      // pin directory, metrics port and observe socket, appended (the last flag wins), and
      // only an audit rule, on a binary nothing runs.
      const [container] = only(await render({}), "DaemonSet").spec.template.spec.containers;
      const node = "node-ds";
      const work = mkdtempSync(join(scratch, "agent-"));
      const pinDir = `/sys/fs/bpf/palisade-test-d1-${process.pid}`;
      const kubeconfig = await cluster.makeServiceAccountKubeconfig(ns, FULLNAME);
      const fieldRefs: Record<string, string> = { "spec.nodeName": node, "metadata.namespace": ns };
      const env: Record<string, string> = { KUBECONFIG: kubeconfig };
      for (const e of container.env as { name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }[]) {
        env[e.name] = e.value ?? fieldRefs[e.valueFrom!.fieldRef.fieldPath]!;
      }
      await cluster.kubectl(["apply", "-f", "-"], {
        input: JSON.stringify({ apiVersion: "palisade.dev/v1alpha1", kind: "TracingPolicy", metadata: { name: "ds-audit" }, spec: { rules: [{ name: "r", hook: "process.exec", match: 'process.binary == "/nonexistent/palisade-helm-test"', action: "audit" }] } }),
      });
      const args = [...container.args, `--pin-dir=${pinDir}`, "--metrics-address=127.0.0.1:0", `--observe-socket=${join(work, "observe.sock")}`];
      const agent = spawn(join(ROOT, "bin", "palisade"), args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
      let log = "";
      agent.stderr.setEncoding("utf8").on("data", (d: string) => (log += d));
      try {
        const deadline = Date.now() + 90_000;
        let ready: { status?: string; message?: string } | undefined;
        while (ready?.status !== "True") {
          if (Date.now() > deadline || agent.exitCode !== null) throw new Error(`the policy never turned Ready; agent log:\n${log}`);
          await new Promise((resolve) => setTimeout(resolve, 250));
          const { status } = JSON.parse((await cluster.kubectl(["get", "tracingpolicy", "ds-audit", "-o", "json"])).stdout);
          ready = status?.conditions?.find((c: { type: string }) => c.type === "Ready");
        }
        expect(log).toMatch(new RegExp(`enforcing plan [0-9a-f]{12}: .* on node ${node}`));
        expect(log).not.toMatch(/forbidden/i);
        expect((await cluster.kubectl(["get", "palisadenode", node, "-o", "name"])).stdout.trim()).toBe(`palisadenode.palisade.dev/${node}`);
      } finally {
        const exited = new Promise((resolve) => (agent.exitCode !== null ? resolve(undefined) : agent.once("exit", resolve)));
        agent.kill("SIGTERM");
        await exited;
        // --keep-attached (the chart's default) left the programs pinned: remove ours.
        rmSync(pinDir, { recursive: true, force: true });
        await cluster.kubectl(["delete", "tracingpolicy", "ds-audit"]);
      }
    }, 180_000);

    it("upgrades a changed CRD with the release (Helm never upgrades a chart's crds/ directory)", async () => {
      const changed = join(scratch, "chart-v2");
      cpSync(CHART, changed, { recursive: true });
      const crdFile = join(changed, "files", "crds", "palisade.dev_tracingpolicies.yaml");
      writeFileSync(crdFile, readFileSync(crdFile, "utf8").replace("A runtime security policy whose rules", "(v2) A runtime security policy whose rules"));
      await helmRun(["upgrade", RELEASE, changed, "-n", ns, "--reuse-values"]);
      const live = JSON.parse((await cluster.kubectl(["get", "crd", "tracingpolicies.palisade.dev", "-o", "json"])).stdout);
      expect(live.spec.versions[0].schema.openAPIV3Schema.description).toMatch(/^\(v2\) /);
      expect(live.metadata.annotations["meta.helm.sh/release-name"]).toBe(RELEASE);
    });

    it("uninstalls the agent and its RBAC, and keeps the CRDs and so every policy", async () => {
      await cluster.kubectl(["apply", "-f", join(ROOT, "policies", readdirSync(join(ROOT, "policies")).find((f) => f.endsWith(".yaml") && !f.endsWith(".test.yaml"))!)]);
      const uninstalled = await helmRun(["uninstall", RELEASE, "-n", ns]);
      expect(uninstalled.stdout).toMatch(/These resources were kept due to the resource policy:/);
      expect((await cluster.kubectl(["get", "daemonset", FULLNAME, "-n", ns], { check: false })).code).not.toBe(0);
      expect((await cluster.kubectl(["get", "clusterrole", FULLNAME], { check: false })).code).not.toBe(0);
      for (const crd of installed()) expect((await cluster.kubectl(["get", "crd", crd, "-o", "name"])).stdout.trim()).toBe(`customresourcedefinition.apiextensions.k8s.io/${crd}`);
      expect((await cluster.kubectl(["get", "tracingpolicies", "-o", "name"])).stdout.trim()).not.toBe("");
    });
  });
});

describe("docs/installation.md's Kubernetes commands, run as written on a real API server", () => {
  let cluster: Cluster;
  let env: Record<string, string>;
  const doc = readFileSync(join(ROOT, "docs", "installation.md"), "utf8");
  // The doc's sh blocks (list items indent theirs), dedented.
  const blocks = [...doc.matchAll(/^( *)```sh\n([\s\S]*?)^ *```/gm)].map((m) => m[2]!.replace(new RegExp(`^${m[1]}`, "gm"), ""));
  const block = (first: RegExp) => {
    const found = blocks.find((b) => first.test(b.split("\n")[0]!));
    expect(found, `docs/installation.md has a block starting ${first}`).toBeDefined();
    return found!;
  };
  const sh = async (script: string) => {
    const result = await run("bash", ["-euo", "pipefail", "-c", `cd ${JSON.stringify(ROOT)}\n${script}`], { env });
    if (result.code !== 0) throw new Error(`failed (${result.code}):\n${script}\n${result.stderr}`);
    return result;
  };

  beforeAll(async () => {
    cluster = await startCluster();
    // kubectl and helm on PATH, as a user has them.
    const bin = mkdtempSync(join(scratch, "bin-"));
    symlinkSync(binaries.kubectl, join(bin, "kubectl"));
    symlinkSync(helm, join(bin, "helm"));
    env = { PATH: `${bin}:${process.env.PATH}`, KUBECONFIG: cluster.kubeconfig, HELM_CACHE_HOME: join(bin, ".cache"), HELM_CONFIG_HOME: join(bin, ".config"), HELM_DATA_HOME: join(bin, ".data") };
  }, 60 * 60_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  it("adopts kubectl-applied CRDs, installs, upgrades, uninstalls and deletes the CRDs", async () => {
    // A cluster set up the standalone way first: every CRD applied with kubectl. The
    // adoption loop must name each CRD the chart installs, or helm install refuses.
    await sh("kubectl apply -f api/crds/");
    await sh(block(/^for crd in /));
    // Everything but `rollout status`: with no kubelet here, the agents' pods never run.
    const install = block(/^kubectl create namespace palisade$/).replace(/^kubectl -n palisade rollout status .*$/m, "");
    const installed = await sh(install);
    expect(installed.stdout).toContain("STATUS: deployed");
    await sh(block(/^helm upgrade palisade /));
    const ds = JSON.parse((await sh("kubectl -n palisade get daemonset palisade -o json")).stdout);
    expect(ds.spec.template.spec.containers[0].image).toBe("registry.example.com/security/palisade:0.2.0");
    await sh("kubectl apply -f policies/container-shells.yaml");
    const uninstalled = await sh(block(/^kubectl delete tracingpolicies --all$/));
    expect(uninstalled.stdout).toContain("release \"palisade\" uninstalled");
    await sh(block(/^kubectl delete crd /));
    const left = (await sh("kubectl get crd -o name")).stdout;
    expect(left).not.toContain("palisade.dev");
  });
});
