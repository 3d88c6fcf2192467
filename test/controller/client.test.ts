// Where the agent's Kubernetes configuration comes from, and the errors when there is none.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadKubeConfig } from "../../src/controller/client.ts";

const saved = { HOME: process.env.HOME, KUBECONFIG: process.env.KUBECONFIG, KUBERNETES_SERVICE_HOST: process.env.KUBERNETES_SERVICE_HOST };
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

const kubeconfig = (server: string, context = "c") => [
  "apiVersion: v1", "kind: Config",
  "clusters: [{name: k, cluster: {server: " + server + "}}]",
  "users: [{name: u, user: {token: t}}]",
  "contexts: [{name: c, context: {cluster: k, user: u}}]",
  `current-context: ${context}`, "",
].join("\n");

describe("loadKubeConfig", () => {
  it("says what is missing when nothing is configured, instead of trying localhost:8080", () => {
    process.env.HOME = mkdtempSync(join(tmpdir(), "palisade-home-"));
    delete process.env.KUBECONFIG;
    delete process.env.KUBERNETES_SERVICE_HOST;
    expect(() => loadKubeConfig()).toThrow(/no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, or run in a pod/);
  });

  it("reads KUBECONFIG, and a file given explicitly", () => {
    const dir = mkdtempSync(join(tmpdir(), "palisade-kubeconfig-"));
    writeFileSync(join(dir, "a"), kubeconfig("https://a.example:6443"));
    writeFileSync(join(dir, "b"), kubeconfig("https://b.example:6443"));
    process.env.KUBECONFIG = join(dir, "a");
    expect(loadKubeConfig().getCurrentCluster()?.server).toBe("https://a.example:6443");
    expect(loadKubeConfig(join(dir, "b")).getCurrentCluster()?.server).toBe("https://b.example:6443");
  });

  it("refuses a configuration whose current context names nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), "palisade-kubeconfig-"));
    writeFileSync(join(dir, "c"), kubeconfig("https://a.example:6443", "missing"));
    expect(() => loadKubeConfig(join(dir, "c"))).toThrow(/no current cluster/);
  });
});
