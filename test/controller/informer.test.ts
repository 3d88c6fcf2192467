// The controller's informer against a real kube-apiserver (test/e2e/kube/cluster.ts):
// paginated lists, watch changes, and recovery from an API server restart (a dropped
// connection, then 410 Gone for a resourceVersion etcd has compacted meanwhile) without
// losing a change and without flooding the server. The apiserver runs without its watch
// cache and compacts every second, so that an old resourceVersion is gone for sure.

import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeClient, loadKubeConfig } from "../../src/controller/client.ts";
import { Backoff, Informer, type ChangeType, type KubeObject } from "../../src/controller/informer.ts";
import { startCluster, type Cluster } from "../e2e/kube/cluster.ts";

let cluster: Cluster;
let client: KubeClient;
const NS = "informer-test";

beforeAll(async () => {
  cluster = await startCluster({ apiServerArgs: ["--watch-cache=false", "--etcd-compaction-interval=1s"] });
  client = new KubeClient(loadKubeConfig(cluster.kubeconfig));
  await cluster.kubectl(["create", "namespace", NS]);
  await cluster.kubectl(["create", "namespace", "elsewhere"]);
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

const configMap = (name: string, value: string) => JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: NS }, data: { value } });
const apply = (name: string, value: string) => cluster.kubectl(["apply", "-f", "-"], { input: configMap(name, value) });
const remove = (name: string) => cluster.kubectl(["delete", "configmap", "-n", NS, name]);

function watchConfigMaps(options: { labelSelector?: string; pageSize?: number } = {}) {
  const changes: [ChangeType, string, string | undefined][] = [];
  const log: string[] = [];
  const informer = new Informer<KubeObject & { data?: { value?: string } }>(client, {
    path: `/api/v1/namespaces/${NS}/configmaps`,
    ...options,
    onChange: (type, o) => changes.push([type, o.metadata.name, o.data?.value]),
    log: (line) => log.push(line),
  });
  informer.start();
  const values = () => Object.fromEntries([...informer.store.values()].filter((o) => o.metadata.name.startsWith("cm-")).map((o) => [o.metadata.name, o.data?.value]));
  return { informer, changes, log, values };
}

describe("Informer", () => {
  it("lists page by page, then reports each change the watch brings", async () => {
    for (let i = 0; i < 5; i++) await apply(`cm-${i}`, "v1");
    const { informer, changes, values } = watchConfigMaps({ pageSize: 2 });
    try {
      await informer.synced;
      expect(informer.stats.lists).toBeGreaterThanOrEqual(3); // 5 objects (and kube-root-ca.crt, if any) 2 at a time
      expect(values()).toEqual({ "cm-0": "v1", "cm-1": "v1", "cm-2": "v1", "cm-3": "v1", "cm-4": "v1" });
      changes.length = 0;
      await apply("cm-1", "v2");
      await remove("cm-2");
      await apply("cm-5", "v1");
      await expect.poll(() => changes).toEqual([["modified", "cm-1", "v2"], ["deleted", "cm-2", "v1"], ["added", "cm-5", "v1"]]);
      expect(values()).toEqual({ "cm-0": "v1", "cm-1": "v2", "cm-3": "v1", "cm-4": "v1", "cm-5": "v1" });
    } finally {
      await informer.stop();
    }
  });

  it("recovers from an API server crash and misses nothing changed meanwhile, without flooding it", async () => {
    const { informer, changes, log, values } = watchConfigMaps();
    try {
      await informer.synced;
      const before = { ...informer.stats };
      // Writes this informer does not see move etcd's revision past its resourceVersion,
      // and compaction (every second) drops the revisions it would resume from.
      for (let i = 0; i < 3; i++) await cluster.kubectl(["create", "configmap", "-n", "elsewhere", `other-${i}`]);
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      await cluster.restartApiServer({ signal: "SIGKILL" });
      // Changed after the restart, while the informers may still be backing off.
      await apply("cm-0", "after-restart");
      await remove("cm-3");
      await expect.poll(values, { timeout: 40_000, interval: 200 }).toMatchObject({ "cm-0": "after-restart" });
      await expect.poll(() => "cm-3" in values(), { timeout: 40_000 }).toBe(false);
      expect(changes).toContainEqual(["modified", "cm-0", "after-restart"]);
      expect(changes).toContainEqual(["deleted", "cm-3", "v1"]);
      // Later changes still arrive through the new watch.
      await apply("cm-6", "late");
      await expect.poll(values).toMatchObject({ "cm-6": "late" });
      expect(log.join("\n")).toMatch(/retrying/);
      // Resuming from a compacted resourceVersion: 410 Gone, and a relist.
      expect(informer.stats.expired - before.expired).toBeGreaterThanOrEqual(1);
      // The outage (a few seconds) cost a handful of requests, not a loop.
      const failures = informer.stats.failures - before.failures;
      const requests = informer.stats.lists + informer.stats.watches - before.lists - before.watches;
      expect(failures).toBeGreaterThanOrEqual(1);
      expect(failures).toBeLessThanOrEqual(6);
      expect(requests).toBeLessThanOrEqual(10);
    } finally {
      await informer.stop();
    }
  }, 120_000);
});

describe("Informer of a resource not served yet", () => {
  it("says the CRD may be missing, backs off, and syncs once it is installed", async () => {
    const log: string[] = [];
    const informer = new Informer(client, { path: "/apis/palisade.dev/v1alpha1/tracingpolicies", onChange: () => {}, log: (line) => log.push(line) });
    informer.start();
    try {
      await expect.poll(() => log.join("\n"), { timeout: 10_000 }).toMatch(/is its CustomResourceDefinition installed\?.*; retrying/);
      await cluster.kubectl(["apply", "-f", join(import.meta.dirname, "..", "..", "api", "crds", "palisade.dev_tracingpolicies.yaml")]);
      await informer.synced;
      expect(informer.stats.failures).toBeLessThanOrEqual(6);
    } finally {
      await informer.stop();
    }
  }, 60_000);
});

describe("Backoff", () => {
  it("doubles from the first step to the ceiling, each wait jittered between half and all of its step", () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000 });
    const steps = Array.from({ length: 7 }, () => b.next());
    const ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
    steps.forEach((ms, i) => {
      expect(ms).toBeGreaterThanOrEqual(ceilings[i]! / 2);
      expect(ms).toBeLessThanOrEqual(ceilings[i]!);
    });
    b.reset();
    expect(b.next()).toBeLessThanOrEqual(100);
  });
});
