// The pods on this node -> their cgroup v2 ids and identities, for the enforcer's workload
// scoping. The pod-level cgroup is classified (it exists, named after the pod's UID, before
// any container starts, so a container's first instruction already runs classified), and
// each container's own cgroup too once the runtime made it, with the container's name,
// image and id. The kernel finds a process's workload by its cgroup or its nearest
// classified ancestor.
//
// Layouts (containerd; the kubelet's cgroup driver decides):
//   systemd:  <root>/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid, - as _>.slice/cri-containerd-<id>.scope
//             Guaranteed pods: <root>/kubepods.slice/kubepods-pod<uid>.slice/...
//   cgroupfs: <root>/kubepods/<qos>/pod<uid>/<id>      Guaranteed: <root>/kubepods/pod<uid>/<id>
// A pod's QoS class is not trusted to pick one: every candidate directory is looked at.

import { statSync, watch, type FSWatcher } from "node:fs";
import { join } from "node:path";
import type { KubernetesInfo } from "../events/event.ts";
import type { KubeObject } from "./informer.ts";

export interface PodObject extends KubeObject {
  spec?: { nodeName?: string; containers?: { name: string; image?: string }[]; initContainers?: { name: string; image?: string }[] };
  status?: {
    phase?: string;
    containerStatuses?: ContainerStatus[];
    initContainerStatuses?: ContainerStatus[];
    ephemeralContainerStatuses?: ContainerStatus[];
  };
}

interface ContainerStatus {
  name: string;
  image?: string;
  containerID?: string;
  state?: { running?: object };
}

export type NamespaceObject = KubeObject;

/** A workload as the enforcer classifies it. */
export type Workload = KubernetesInfo;

const QOS = ["burstable", "besteffort"] as const;

/** Where a pod's own cgroup may be, for each layout: [pod dir, container dir name]. */
function podCgroupCandidates(root: string, uid: string): { dir: string; container: (id: string) => string }[] {
  const systemdUid = uid.replaceAll("-", "_");
  const systemd = (dir: string) => ({ dir, container: (id: string) => `cri-containerd-${id}.scope` });
  const cgroupfs = (dir: string) => ({ dir, container: (id: string) => id });
  return [
    systemd(join(root, "kubepods.slice", `kubepods-pod${systemdUid}.slice`)),
    ...QOS.map((q) => systemd(join(root, "kubepods.slice", `kubepods-${q}.slice`, `kubepods-${q}-pod${systemdUid}.slice`))),
    cgroupfs(join(root, "kubepods", `pod${uid}`)),
    ...QOS.map((q) => cgroupfs(join(root, "kubepods", q, `pod${uid}`))),
  ];
}

/** The cgroup id of a cgroup v2 directory: its inode number, as bpf_get_current_cgroup_id() returns it. */
function cgroupId(dir: string): bigint | undefined {
  try {
    const st = statSync(dir, { bigint: true });
    return st.isDirectory() ? st.ino : undefined;
  } catch {
    return undefined;
  }
}

/** "containerd://abc" -> "abc" */
export const runtimeId = (containerID: string): string => containerID.replace(/^[a-z0-9.-]+:\/\//, "");

export interface WorkloadScan {
  workloads: Map<bigint, Workload>;
  /** Pods or running containers whose cgroup is not (yet) on this host. */
  missing: number;
}

/** The cgroups of `pods` under the cgroup v2 root `root`. */
export function scanWorkloads(root: string, pods: Iterable<PodObject>, namespaces: ReadonlyMap<string, NamespaceObject>): WorkloadScan {
  const workloads = new Map<bigint, Workload>();
  let missing = 0;
  for (const pod of pods) {
    const { name, namespace, uid, labels } = pod.metadata;
    if (!namespace || pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") continue;
    const identity: Workload = {
      namespace, pod: name, podUid: uid, labels: labels ?? {},
      namespaceLabels: namespaces.get(namespace)?.metadata.labels ?? {},
    };
    const found = podCgroupCandidates(root, uid).flatMap((c) => {
      const id = cgroupId(c.dir);
      return id === undefined ? [] : [{ ...c, id }];
    });
    if (!found.length) {
      missing++;
      continue;
    }
    const images = new Map([...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].map((c) => [c.name, c.image]));
    for (const c of found) {
      workloads.set(c.id, identity);
      const statuses = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.ephemeralContainerStatuses ?? [])];
      for (const s of statuses) {
        if (!s.containerID) continue;
        const containerId = runtimeId(s.containerID);
        const id = cgroupId(join(c.dir, c.container(containerId)));
        if (id === undefined) continue;
        const image = s.image ?? images.get(s.name);
        workloads.set(id, { ...identity, container: s.name, containerId, ...(image && { image }) });
      }
    }
    // Containers reported running whose cgroup we have not seen yet: look again soon.
    const statuses = pod.status?.containerStatuses ?? [];
    for (const s of statuses) {
      if (s.containerID && s.state?.running && !found.some((c) => cgroupId(join(c.dir, c.container(runtimeId(s.containerID!)))) !== undefined)) missing++;
    }
  }
  return { workloads, missing };
}

/** The directories a pod's cgroup is made in, for each layout and QoS class. */
const POD_PARENTS = [
  ["kubepods.slice"], ...QOS.map((q) => ["kubepods.slice", `kubepods-${q}.slice`]),
  ["kubepods"], ...QOS.map((q) => ["kubepods", q]),
];

/**
 * Tells when a pod cgroup appears or goes (inotify on the directories they are made in), so
 * that a new pod is classified before its containers start rather than at the next look.
 * refresh() starts watching parents that appeared since (the first pod of a QoS class).
 */
export class PodCgroupWatch {
  private readonly root: string;
  private readonly onChange: () => void;
  private readonly watchers = new Map<string, FSWatcher>();

  constructor(root: string, onChange: () => void) {
    this.root = root;
    this.onChange = onChange;
    this.refresh();
  }

  refresh(): void {
    for (const parts of POD_PARENTS) {
      const dir = join(this.root, ...parts);
      if (this.watchers.has(dir)) continue;
      try {
        const watcher = watch(dir, () => this.onChange());
        watcher.on("error", () => {
          watcher.close();
          this.watchers.delete(dir); // removed: watched again should it come back
        });
        this.watchers.set(dir, watcher);
      } catch {
        // not there (yet)
      }
    }
  }

  close(): void {
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}
