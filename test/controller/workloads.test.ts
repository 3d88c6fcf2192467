// Pods -> cgroup ids and identities, over directories laid out as containerd makes them
// (plain directories stand in for cgroupfs here: an id is the directory's inode number
// either way; the e2e test uses real cgroups).

import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PodCgroupWatch, runtimeId, scanWorkloads, type NamespaceObject, type PodObject } from "../../src/controller/workloads.ts";

const root = mkdtempSync(join(tmpdir(), "palisade-workloads-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const ino = (path: string) => statSync(path, { bigint: true }).ino;
const mk = (...parts: string[]) => {
  const path = join(root, ...parts);
  mkdirSync(path, { recursive: true });
  return path;
};

function pod(name: string, uid: string, containers: { name: string; id?: string; running?: boolean }[], labels = { app: "api" }): PodObject {
  return {
    metadata: { namespace: "shop", name, uid, resourceVersion: "1", labels },
    spec: { nodeName: "n1", containers: containers.map((c) => ({ name: c.name, image: `img/${c.name}:1` })) },
    status: {
      phase: "Running",
      containerStatuses: containers.map((c) => ({ name: c.name, ...(c.id && { containerID: `containerd://${c.id}` }), ...(c.running !== false && { state: { running: {} } }) })),
    },
  };
}

const namespaces = new Map<string, NamespaceObject>([["shop", { metadata: { name: "shop", uid: "ns", resourceVersion: "1", labels: { env: "prod" } } }]]);

describe("scanWorkloads", () => {
  it("finds the pod and container cgroups of the systemd driver's layout, Guaranteed pods included", () => {
    const uid = "1111-2222";
    const podDir = mk("kubepods.slice", "kubepods-burstable.slice", "kubepods-burstable-pod1111_2222.slice");
    const container = mk("kubepods.slice", "kubepods-burstable.slice", "kubepods-burstable-pod1111_2222.slice", "cri-containerd-abc.scope");
    const guaranteed = mk("kubepods.slice", "kubepods-pod3333.slice");
    const { workloads, missing } = scanWorkloads(root, [pod("web", uid, [{ name: "app", id: "abc" }]), pod("db", "3333", [{ name: "db" }])], namespaces);
    expect(missing).toBe(0);
    expect(workloads.get(ino(podDir))).toEqual({ namespace: "shop", pod: "web", podUid: uid, labels: { app: "api" }, namespaceLabels: { env: "prod" } });
    expect(workloads.get(ino(container))).toMatchObject({ pod: "web", container: "app", containerId: "abc", image: "img/app:1" });
    expect(workloads.get(ino(guaranteed))).toMatchObject({ pod: "db", podUid: "3333" });
    expect(workloads.size).toBe(3);
  });

  it("finds the cgroupfs driver's layout", () => {
    const podDir = mk("kubepods", "besteffort", "pod4444");
    const container = mk("kubepods", "besteffort", "pod4444", "def");
    const { workloads } = scanWorkloads(root, [pod("batch", "4444", [{ name: "job", id: "def" }])], namespaces);
    expect(workloads.get(ino(podDir))).toMatchObject({ pod: "batch" });
    expect(workloads.get(ino(container))).toMatchObject({ container: "job", containerId: "def" });
  });

  it("counts what is not there yet (to look again), but not containers that have ended", () => {
    const { workloads, missing } = scanWorkloads(root, [
      pod("pending", "5555", [{ name: "a" }]), // no pod cgroup yet
      pod("web", "1111-2222", [{ name: "app", id: "abc" }, { name: "side", id: "notyet" }, { name: "done", id: "gone", running: false }]),
    ], namespaces);
    expect(missing).toBe(2);
    expect([...workloads.values()].map((w) => w.container ?? w.pod).sort()).toEqual(["app", "web"]);
  });

  it("leaves finished pods out", () => {
    const finished = { ...pod("web", "1111-2222", [{ name: "app", id: "abc" }]), status: { phase: "Succeeded" } };
    expect(scanWorkloads(root, [finished], namespaces).workloads.size).toBe(0);
  });

  it("strips the runtime's scheme from a container ID", () => {
    expect(runtimeId("containerd://0123abc")).toBe("0123abc");
    expect(runtimeId("cri-o://x")).toBe("x");
  });
});

describe("PodCgroupWatch", () => {
  it("tells when a pod cgroup is made, also under a QoS directory that appeared after it started", async () => {
    const base = mkdtempSync(join(tmpdir(), "palisade-podwatch-"));
    let changes = 0;
    mkdirSync(join(base, "kubepods.slice"));
    const w = new PodCgroupWatch(base, () => changes++);
    try {
      mkdirSync(join(base, "kubepods.slice", "kubepods-pod1.slice"));
      await expect.poll(() => changes).toBeGreaterThan(0);
      mkdirSync(join(base, "kubepods.slice", "kubepods-besteffort.slice"));
      w.refresh();
      const before = changes;
      mkdirSync(join(base, "kubepods.slice", "kubepods-besteffort.slice", "kubepods-besteffort-pod2.slice"));
      await expect.poll(() => changes).toBeGreaterThan(before);
    } finally {
      w.close();
      rmSync(base, { recursive: true, force: true });
    }
  });
});
