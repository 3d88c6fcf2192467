// Which workload a pod belongs to: its controller, followed up the owner chain (Pod ->
// ReplicaSet -> Deployment, Pod -> Job -> CronJob; StatefulSet and DaemonSet own their pods
// directly). Lookups are cached, by pod and by intermediate owner, so the pods of one
// Deployment cost one ReplicaSet read between them.

import type { KubernetesObject, V1OwnerReference } from "@kubernetes/client-node";
import { resourcePath, type KubeClient } from "../client.ts";
import type { ObjectReference } from "./format.ts";

export type Workload = ObjectReference & { namespace: string; uid: string };

/** Owners whose own controller we follow (with their URL resource); any other kind (a Deployment, a custom controller) is the workload. */
const FOLLOWED = new Map([
  ["apps/v1/ReplicaSet", "replicasets"],
  ["batch/v1/Job", "jobs"],
]);
const MAX_DEPTH = 4;

export interface PodLike extends KubernetesObject {
  metadata?: KubernetesObject["metadata"] & { ownerReferences?: V1OwnerReference[] };
}

/** A Map that forgets its least recently used entry beyond `capacity`. */
export class LruCache<K, V> {
  private readonly entries = new Map<K, V>();
  private readonly capacity: number;
  constructor(capacity: number) {
    this.capacity = capacity;
  }
  get(key: K): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }
  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
  }
}

export class WorkloadResolver {
  private readonly api: KubeClient;
  /** "namespace/pod/uid" -> workload */
  private readonly byPod: LruCache<string, Workload>;
  /** owner uid -> the workload at the top of its chain */
  private readonly byOwner: LruCache<string, Workload>;

  constructor(api: KubeClient, cacheSize = 10_000) {
    this.api = api;
    this.byPod = new LruCache(cacheSize);
    this.byOwner = new LruCache(cacheSize);
  }

  /**
   * The workload of a pod known by name (and uid, from the event). A pod already deleted
   * (or replaced by a namesake) is its own workload when its uid is known; without a uid,
   * undefined. Other API errors throw: the caller retries later.
   */
  async ofPodName(namespace: string, name: string, uid?: string): Promise<Workload | undefined> {
    const key = `${namespace}/${name}/${uid ?? ""}`;
    const cached = this.byPod.get(key);
    if (cached) return cached;
    const pod = await this.api.getIfExists<PodLike>(resourcePath({ apiVersion: "v1", resource: "pods", namespace, name }));
    let workload: Workload | undefined;
    if (pod && (!uid || pod.metadata?.uid === uid)) workload = await this.ofPod(pod);
    else if (uid) workload = { apiVersion: "v1", kind: "Pod", name, namespace, uid };
    if (workload) this.byPod.set(key, workload);
    return workload;
  }

  /** The workload of a pod object (from an informer, or read). */
  async ofPod(pod: PodLike): Promise<Workload> {
    const namespace = pod.metadata?.namespace ?? "default";
    const self: Workload = { apiVersion: "v1", kind: "Pod", name: pod.metadata?.name ?? "", namespace, uid: pod.metadata?.uid ?? "" };
    return this.climb(self, controllerOf(pod), namespace, 0);
  }

  private async climb(current: Workload, owner: V1OwnerReference | undefined, namespace: string, depth: number): Promise<Workload> {
    if (!owner || depth >= MAX_DEPTH) return current;
    const ownerRef: Workload = { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.name, namespace, uid: owner.uid };
    const resource = FOLLOWED.get(`${owner.apiVersion}/${owner.kind}`);
    if (!resource) return ownerRef;
    const cached = this.byOwner.get(owner.uid);
    if (cached) return cached;
    const object = await this.api.getIfExists<PodLike>(resourcePath({ apiVersion: owner.apiVersion, resource, namespace, name: owner.name }));
    // Gone, or a namesake: the reference itself is the best we know.
    const workload = object && object.metadata?.uid === owner.uid ? await this.climb(ownerRef, controllerOf(object), namespace, depth + 1) : ownerRef;
    this.byOwner.set(owner.uid, workload);
    return workload;
  }
}

function controllerOf(object: PodLike): V1OwnerReference | undefined {
  return object.metadata?.ownerReferences?.find((r) => r.controller);
}
