// The Argo CD health check (argocd/resource_customizations/palisade.dev/*/health.lua) run by
// a real Lua 5.1 interpreter (the Lua version Argo CD embeds) on every case of Argo CD's
// health test layout: health_test.yaml lists input objects (testdata/) and the health they
// must get. The inputs include the statuses the real status e2e run saved
// (test/fixtures/status-snapshots/), kept equal here; hand-written inputs must fit the CRD's
// status schema. The check's copies (the namespaced kind, argocd-cm.yaml) must equal it.
// docs/gitops.md's YAML parses, and its `kubectl patch` of argocd-cm works on a real API server.

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv } from "ajv";
import { afterAll, describe, expect, it } from "vitest";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { startCluster } from "../e2e/kube/cluster.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const ARGOCD = join(ROOT, "argocd");
const CUSTOMIZATIONS = join(ARGOCD, "resource_customizations", "palisade.dev");
const SNAPSHOTS = join(ROOT, "test", "fixtures", "status-snapshots");
const DRIVER = join(import.meta.dirname, "driver.lua");
const KINDS = ["TracingPolicy", "TracingPolicyNamespaced"] as const;
const LUA = "lua5.1";

interface HealthTest {
  healthStatus: { status: string; message: string };
  inputPath: string;
}

interface Resource {
  kind: string;
  metadata: { name: string; namespace?: string; generation?: number };
  status?: unknown;
}

const scratch = mkdtempSync(join(tmpdir(), "palisade-argocd-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const readYaml = (path: string): unknown => parseYaml(readFileSync(path, "utf8"));
const healthTests = (kind: string) => (readYaml(join(CUSTOMIZATIONS, kind, "health_test.yaml")) as { tests: HealthTest[] }).tests;

/** A Lua 5.1 literal for a JSON value: objects and arrays become tables (arrays 1-based). */
function toLua(value: unknown): string {
  if (value === null || value === undefined) return "nil";
  if (typeof value === "boolean" || typeof value === "number") return String(value);
  if (typeof value === "string") return luaString(value);
  if (Array.isArray(value)) return `{${value.map(toLua).join(", ")}}`;
  return `{${Object.entries(value as Record<string, unknown>).map(([k, v]) => `[${luaString(k)}] = ${toLua(v)}`).join(", ")}}`;
}

// Lua 5.1 string escapes: \\ and \", and \ddd (decimal) for control bytes; UTF-8 passes as bytes.
function luaString(s: string): string {
  const escaped = s.replace(/[\\"]/g, "\\$&").replace(/[\x00-\x1f\x7f]/g, (c) => `\\${c.charCodeAt(0).toString().padStart(3, "0")}`);
  return `"${escaped}"`;
}

/** The health Argo CD would show for this object: the check run by lua5.1 through driver.lua. */
function health(kind: string, object: unknown): { status: string; message: string } {
  const objectFile = join(mkdtempSync(join(scratch, "obj-")), "object.lua");
  writeFileSync(objectFile, `return ${toLua(object)}\n`);
  const result = spawnSync(LUA, [DRIVER, join(CUSTOMIZATIONS, kind, "health.lua"), objectFile], { encoding: "utf8" });
  if (result.error) throw new Error(`cannot run ${LUA} (Debian package lua5.1; run scripts/setup): ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${LUA} exited ${result.status}: ${result.stderr}`);
  const newline = result.stdout.indexOf("\n");
  return { status: result.stdout.slice(0, newline), message: result.stdout.slice(newline + 1) };
}

describe("the Argo CD health check", () => {
  it("runs on a real Lua 5.1", () => {
    const version = spawnSync(LUA, ["-v"], { encoding: "utf8" });
    expect(version.error).toBeUndefined();
    expect(version.stdout + version.stderr).toMatch(/^Lua 5\.1\./);
  });

  for (const kind of KINDS) {
    it.each(healthTests(kind).map((t) => [t.inputPath, t] as const))(`${kind}: %s`, (inputPath, test) => {
      const object = readYaml(join(CUSTOMIZATIONS, kind, inputPath)) as Resource;
      expect(object.kind).toBe(kind);
      expect(health(kind, object)).toEqual(test.healthStatus);
    });
  }

  it("gives every health status Argo CD knows that applies (Healthy, Progressing, Degraded) a case of each kind", () => {
    for (const kind of KINDS) {
      expect(new Set(healthTests(kind).map((t) => t.healthStatus.status))).toEqual(new Set(["Healthy", "Progressing", "Degraded"]));
    }
  });

  it("is tested on every status snapshot of the e2e run, copied unchanged into testdata", () => {
    const snapshots = readdirSync(SNAPSHOTS).filter((f) => f.endsWith(".json"));
    expect(snapshots.length).toBeGreaterThan(0);
    const inputs = healthTests("TracingPolicy").map((t) => t.inputPath);
    for (const file of snapshots) {
      const copy = `testdata/${file.replace(/\.json$/, ".yaml")}`;
      expect(inputs, `health_test.yaml uses ${copy}`).toContain(copy);
      expect(readYaml(join(CUSTOMIZATIONS, "TracingPolicy", copy)), `${copy} equals test/fixtures/status-snapshots/${file}`).toEqual(
        JSON.parse(readFileSync(join(SNAPSHOTS, file), "utf8")),
      );
    }
  });

  it("has no testdata that health_test.yaml does not use, and only statuses the CRD allows", () => {
    const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
    for (const kind of KINDS) {
      const crdFile = readdirSync(join(ROOT, "api", "crds")).find((f) => (readYaml(join(ROOT, "api", "crds", f)) as { spec: { names: { kind: string } } }).spec.names.kind === kind)!;
      const crd = readYaml(join(ROOT, "api", "crds", crdFile)) as { spec: { scope: string; versions: { schema: { openAPIV3Schema: { properties: { status: object } } } }[] } };
      const validateStatus = ajv.compile(crd.spec.versions[0]!.schema.openAPIV3Schema.properties.status);
      const used = healthTests(kind).map((t) => t.inputPath).sort();
      expect(readdirSync(join(CUSTOMIZATIONS, kind, "testdata")).map((f) => `testdata/${f}`).sort()).toEqual(used);
      for (const input of used) {
        const object = readYaml(join(CUSTOMIZATIONS, kind, input)) as Resource;
        expect(object.metadata.namespace !== undefined, `${kind}/${input}: namespace only on the namespaced kind`).toBe(crd.spec.scope === "Namespaced");
        if (object.status !== undefined) expect(validateStatus(object.status) ? [] : validateStatus.errors, `${kind}/${input}`).toEqual([]);
      }
    }
  });

  it("is one check: the namespaced kind's copy and argocd-cm.yaml equal TracingPolicy/health.lua (argocd/generate)", () => {
    const original = readFileSync(join(CUSTOMIZATIONS, "TracingPolicy", "health.lua"), "utf8");
    const regenerate = "run argocd/generate after editing TracingPolicy/health.lua";
    expect(readFileSync(join(CUSTOMIZATIONS, "TracingPolicyNamespaced", "health.lua"), "utf8"), regenerate).toBe(original);
    const cm = readYaml(join(ARGOCD, "argocd-cm.yaml")) as { kind: string; metadata: { name: string }; data: Record<string, string> };
    expect(cm.kind).toBe("ConfigMap");
    expect(cm.metadata.name).toBe("argocd-cm");
    expect(Object.keys(cm.data).sort()).toEqual(KINDS.map((k) => `resource.customizations.health.palisade.dev_${k}`));
    for (const lua of Object.values(cm.data)) expect(lua, regenerate).toBe(original);
    expect(existsSync(join(ARGOCD, "generate"))).toBe(true);
  });

  it("sees the object as Argo CD passes it: a missing field is nil, not an error", () => {
    expect(health("TracingPolicy", { kind: "TracingPolicy", metadata: { name: "x" } })).toEqual({
      status: "Progressing",
      message: "Waiting for the Palisade agents to report on this policy",
    });
    // Lua 5.1 strings are bytes: non-ASCII messages and quotes arrive intact.
    const message = 'règle "x": \\ échec';
    const object = {
      kind: "TracingPolicy",
      metadata: { name: "x", generation: 1 },
      status: { observedGeneration: 1, conditions: [{ type: "Ready", status: "False", reason: "CompileError", message }] },
    };
    expect(health("TracingPolicy", object)).toEqual({ status: "Degraded", message: `CompileError: ${message}` });
  });
});

describe("docs/gitops.md", () => {
  const doc = readFileSync(join(ROOT, "docs", "gitops.md"), "utf8");
  const yamlBlocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);

  it("shows YAML that parses: two Applications, the argocd-cm keys, the exclusions", () => {
    const objects = yamlBlocks.map((b) => parseAllDocuments(b).map((d) => d.toJS()));
    for (const docs of objects) for (const d of docs) expect(d).toBeTypeOf("object");
    const apps = objects.flat().filter((o) => o.kind === "Application");
    expect(apps.map((a) => a.metadata.name)).toEqual(["palisade", "palisade-policies"]);
    expect(apps[0].spec.source.path).toBe("charts/palisade");
    expect(apps[1].spec.syncPolicy.syncOptions).toContain("SkipDryRunOnMissingResource=true");
    const exclusions = parseYaml(objects.flat().find((o) => o.data?.["resource.exclusions"]).data["resource.exclusions"]);
    expect(exclusions.flatMap((e: { kinds: string[] }) => e.kinds)).toEqual(["PolicyReport", "ClusterPolicyReport", "Report", "ClusterReport", "PalisadeNode"]);
  });

  it("gives CI commands that pass on a policies directory (this repository's library)", () => {
    const block = /```sh\n(bin\/palisade validate[\s\S]*?)```/.exec(doc)?.[1];
    expect(block).toBeDefined();
    const result = spawnSync("bash", ["-euo", "pipefail", "-c", block!], { cwd: ROOT, encoding: "utf8" });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^valid: \d+ policies/m);
    expect(result.stdout).toMatch(/^(\d+) of \1 policy tests passed$/m);
  });

  it("installs the health check with its kubectl patch command, keeping argocd-cm's other keys (real API server)", async () => {
    const command = /^kubectl -n argocd patch configmap argocd-cm .*$/m.exec(doc)?.[0];
    expect(command).toBeDefined();
    const cluster = await startCluster();
    try {
      await cluster.kubectl(["create", "namespace", "argocd"]);
      await cluster.kubectl(["-n", "argocd", "create", "configmap", "argocd-cm", "--from-literal=url=https://argocd.example.com"]);
      // The documented command, run from the repository root as written.
      await cluster.kubectl(command!.split(/\s+/).slice(1));
      const { data } = JSON.parse((await cluster.kubectl(["-n", "argocd", "get", "configmap", "argocd-cm", "-o", "json"])).stdout);
      const original = readFileSync(join(CUSTOMIZATIONS, "TracingPolicy", "health.lua"), "utf8");
      expect(data).toEqual({
        url: "https://argocd.example.com",
        "resource.customizations.health.palisade.dev_TracingPolicy": original,
        "resource.customizations.health.palisade.dev_TracingPolicyNamespaced": original,
      });
    } finally {
      await cluster.stop();
    }
  }, 10 * 60_000);
});
