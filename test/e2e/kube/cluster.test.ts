// Palisade's CRDs and bundled policies against a real kube-apiserver (built from upstream by
// test/e2e/kube/build). A missing Go toolchain or a failed build fails this file: it is
// never skipped.

import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type Cluster } from "./cluster.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const CRDS = ["tracingpolicies.palisade.dev", "tracingpoliciesnamespaced.palisade.dev"];
const POLICIES = readdirSync(join(ROOT, "policies"))
  .filter((f) => f.endsWith(".yaml") && !f.endsWith(".test.yaml"))
  .sort();

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster();
  console.info(`kube-apiserver ${cluster.binaries.kubeVersion} with etcd ${cluster.binaries.etcdVersion} ready in ${cluster.startMillis} ms`);
}, 60 * 60_000); // a cold build of kube-apiserver, kubectl and etcd takes many minutes

afterAll(async () => {
  await cluster?.stop();
});

// A policy as YAML, with `rule` merged into its only rule.
function policy(name: string, rule: Record<string, unknown> = {}, spec: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: "palisade.dev/v1alpha1",
    kind: "TracingPolicy",
    metadata: { name },
    spec: { ...spec, rules: [{ name: "r", hook: "process.exec", match: 'process.binary == "/bin/sh"', action: "kill", ...rule }] },
  });
}

describe("a real kube-apiserver", () => {
  it("serves the pinned release, with RBAC on", async () => {
    const version = JSON.parse((await cluster.kubectl(["version", "-o", "json"])).stdout);
    expect(version.serverVersion.gitVersion).toBe(cluster.binaries.kubeVersion);
    expect(version.clientVersion.gitVersion).toBe(cluster.binaries.kubeVersion);
    const versions = (await cluster.kubectl(["api-versions"])).stdout.split("\n");
    expect(versions).toContain("rbac.authorization.k8s.io/v1");
  });

  it("accepts Palisade's CRDs without warnings, and establishes them", async () => {
    const applied = await cluster.kubectl(["apply", "--validate=strict", "-f", join(ROOT, "api", "crds")]);
    expect(applied.stderr).toBe("");
    for (const crd of CRDS) expect(applied.stdout).toContain(`customresourcedefinition.apiextensions.k8s.io/${crd} created`);
    await cluster.kubectl(["wait", "--for=condition=Established", "--timeout=30s", ...CRDS.map((c) => `crd/${c}`)]);
    for (const crd of CRDS) {
      const { status } = JSON.parse((await cluster.kubectl(["get", "crd", crd, "-o", "json"])).stdout);
      const conditions = Object.fromEntries(status.conditions.map((c: { type: string; status: string }) => [c.type, c.status]));
      expect(conditions).toMatchObject({ Established: "True", NamesAccepted: "True" });
      expect(conditions.NonStructuralSchema).toBeUndefined();
    }
  });

  it("stores the bundled policies, and shows their printer columns and short name", async () => {
    expect(POLICIES.length).toBeGreaterThan(0);
    for (const file of POLICIES) {
      const applied = await cluster.kubectl(["apply", "--validate=strict", "-f", join(ROOT, "policies", file)]);
      expect(applied.stderr).toBe("");
    }
    const table = (await cluster.kubectl(["get", "tracingpolicies"])).stdout;
    expect(table.split("\n")[0]).toMatch(/^NAME\s+MODE\s+READY\s+NODES\s+AGE$/);
    const names = POLICIES.map((f) => f.replace(/\.yaml$/, ""));
    const short = (await cluster.kubectl(["get", "ptp", "-o", "name"])).stdout.trim().split("\n");
    expect(short).toEqual(names.map((n) => `tracingpolicy.palisade.dev/${n}`));
    // The category groups both kinds.
    expect((await cluster.kubectl(["get", "palisade", "-o", "name"])).stdout.trim().split("\n")).toEqual(short);
  });

  it("serves the namespaced kind in its namespace (short name ptpn)", async () => {
    await cluster.kubectl(["create", "namespace", "team-a"]);
    const namespaced = JSON.parse(policy("team-shells"));
    namespaced.kind = "TracingPolicyNamespaced";
    await cluster.kubectl(["apply", "-n", "team-a", "--validate=strict", "-f", "-"], { input: JSON.stringify(namespaced) });
    const table = (await cluster.kubectl(["get", "ptpn", "-n", "team-a"])).stdout.split("\n");
    expect(table[0]).toMatch(/^NAME\s+MODE\s+READY\s+NODES\s+AGE$/);
    expect(table[1]).toMatch(/^team-shells\s+enforce\s+/);
  });

  it("rejects an unknown field with --validate=strict", async () => {
    const result = await cluster.kubectl(["apply", "--validate=strict", "-f", "-"], { input: policy("unknown-field", { actoin: "kill" }), check: false });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('unknown field "spec.rules[0].actoin"');
    expect((await cluster.kubectl(["get", "ptp", "unknown-field"], { check: false })).stderr).toContain("NotFound");
  });

  it("rejects a value outside an enum, and other schema violations, naming the field", async () => {
    const cases: [string, string, string][] = [
      ["bad-action", policy("bad-action", { action: "explode" }), 'spec.rules[0].action: Unsupported value: "explode": supported values: "deny", "kill", "audit"'],
      ["bad-mode", policy("bad-mode", {}, { mode: "block" }), 'spec.mode: Unsupported value: "block": supported values: "enforce", "monitor"'],
      ["bad-hook", policy("bad-hook", { hook: "process.fork" }), 'spec.rules[0].hook: Unsupported value: "process.fork"'],
      ["bad-rule-name", policy("bad-rule-name", { name: "Not_A_Name" }), "spec.rules[0].name: Invalid value"],
      ["no-rules", JSON.stringify({ apiVersion: "palisade.dev/v1alpha1", kind: "TracingPolicy", metadata: { name: "no-rules" }, spec: { rules: [] } }), "spec.rules: Invalid value: 0: spec.rules in body should have at least 1 items"],
    ];
    for (const [name, input, message] of cases) {
      const result = await cluster.kubectl(["apply", "--validate=strict", "-f", "-"], { input, check: false });
      expect(result.code, name).not.toBe(0);
      expect(result.stderr, name).toContain(message);
    }
    const duplicate = JSON.parse(policy("duplicate-rules"));
    duplicate.spec.rules.push({ ...duplicate.spec.rules[0] });
    const result = await cluster.kubectl(["apply", "-f", "-"], { input: JSON.stringify(duplicate), check: false });
    expect(result.stderr).toContain('spec.rules[1]: Duplicate value: {"name":"r"}');
  });

  it("dry-runs on the server: defaults applied, nothing stored", async () => {
    const result = await cluster.kubectl(["apply", "--dry-run=server", "-o", "json", "-f", "-"], { input: policy("dry-run") });
    const object = JSON.parse(result.stdout);
    expect(object.spec.mode).toBe("enforce");
    expect(object.spec.rules[0].severity).toBe("medium");
    expect(object.metadata.uid).toBeTruthy();
    expect((await cluster.kubectl(["get", "ptp", "dry-run"], { check: false })).stderr).toContain("NotFound");
    // And a dry run of an invalid object fails like the real thing.
    const invalid = await cluster.kubectl(["apply", "--dry-run=server", "-f", "-"], { input: policy("dry-run", { action: "explode" }), check: false });
    expect(invalid.stderr).toContain("Unsupported value");
  });

  it("writes status through the status subresource only", async () => {
    const status = {
      observedGeneration: 1,
      conditions: [
        { type: "Ready", status: "True", observedGeneration: 1, lastTransitionTime: "2026-11-24T12:00:00Z", reason: "Enforcing", message: "enforced on 3 of 3 nodes" },
      ],
      nodes: { enforcing: 3, failed: 0, total: 3 },
      backends: { "process.exec": "tracepoint" },
    };
    await cluster.kubectl(["patch", "ptp", "container-shells", "--subresource=status", "--type=merge", "-p", JSON.stringify({ status })]);
    const object = JSON.parse((await cluster.kubectl(["get", "ptp", "container-shells", "-o", "json"])).stdout);
    expect(object.status).toEqual(status);
    expect(object.metadata.generation).toBe(1); // status writes do not bump the generation
    const row = (await cluster.kubectl(["get", "ptp", "container-shells", "--no-headers"])).stdout;
    expect(row).toMatch(/^container-shells\s+enforce\s+True\s+3\s+\S+\s*$/);

    // Through the main resource, status is ignored; spec changes bump the generation.
    await cluster.kubectl(["patch", "ptp", "container-shells", "--type=merge", "-p", JSON.stringify({ spec: { mode: "monitor" }, status: { nodes: { enforcing: 9 } } })]);
    const after = JSON.parse((await cluster.kubectl(["get", "ptp", "container-shells", "-o", "json"])).stdout);
    expect(after.status.nodes.enforcing).toBe(3);
    expect(after.metadata.generation).toBe(2);

    // A status that breaks the schema is refused.
    const bad = await cluster.kubectl(["patch", "ptp", "container-shells", "--subresource=status", "--type=merge", "-p", JSON.stringify({ status: { conditions: [{ type: "Ready", status: "Maybe" }] } })], { check: false });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('Unsupported value: "Maybe"');
  });

  it("enforces RBAC: no permissions means forbidden, a ClusterRole grants exactly what it says", async () => {
    const nobody = await cluster.makeUserKubeconfig("mallory");
    const denied = await cluster.kubectl(["get", "ptp"], { kubeconfig: nobody, check: false });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('User "mallory" cannot list resource "tracingpolicies" in API group "palisade.dev" at the cluster scope');

    await cluster.kubectl(["create", "clusterrole", "policy-reader", "--verb=get,list,watch", "--resource=tracingpolicies.palisade.dev"]);
    await cluster.kubectl(["create", "clusterrolebinding", "policy-readers", "--clusterrole=policy-reader", "--group=auditors"]);
    const auditor = await cluster.makeUserKubeconfig("alice", ["auditors"]);
    expect((await cluster.kubectl(["get", "ptp", "-o", "name"], { kubeconfig: auditor })).stdout).toContain("tracingpolicy.palisade.dev/container-shells");
    const del = await cluster.kubectl(["delete", "ptp", "container-shells"], { kubeconfig: auditor, check: false });
    expect(del.stderr).toContain('User "alice" cannot delete resource "tracingpolicies"');
    const status = await cluster.kubectl(["patch", "ptp", "container-shells", "--subresource=status", "--type=merge", "-p", '{"status":{}}'], { kubeconfig: auditor, check: false });
    // kubectl patch reads the subresource first: that read is what is refused.
    expect(status.stderr).toContain('User "alice" cannot get resource "tracingpolicies/status"');
  });

  it("keeps every object across an apiserver restart, graceful or a crash", async () => {
    const before = JSON.parse((await cluster.kubectl(["get", "ptp", "container-shells", "-o", "json"])).stdout);
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      await cluster.restartApiServer({ signal });
      const after = JSON.parse((await cluster.kubectl(["get", "ptp", "container-shells", "-o", "json"])).stdout);
      expect(after.metadata.uid).toBe(before.metadata.uid);
      expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
      expect(after.status).toEqual(before.status);
      // The CRDs are served again after the restart, as the short name shows.
      expect((await cluster.kubectl(["get", "ptp", "-o", "name"])).stdout.trim().split("\n")).toHaveLength(POLICIES.length);
    }
  });
});
