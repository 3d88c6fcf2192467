// The elected status aggregator: one agent in the cluster (the holder of a Lease) watches
// every PalisadeNode, every node heartbeat Lease and every policy, and writes each policy's
// /status. It writes only a status that differs from the stored one, at most once a second
// per policy unless a condition flips, and no faster than a cluster-wide rate, so 5,000
// nodes reporting at once become a bounded number of status writes, not a storm.

import type { KubeConfig } from "@kubernetes/client-node";
import { HOOKS, type Hook, type PolicyKind } from "../../policy/model.ts";
import { sameStatus, significantChange, StatusAggregation, type PolicyStatus } from "./aggregation.ts";
import { ApiError, KubeClient } from "../client.ts";
import { Backoff, Informer, type KubeObject } from "../informer.ts";
import { HEARTBEAT_LABEL, LeaderElection, leasesPath, readHeartbeat, statusNamespace, type Lease } from "./leases.ts";
import { GROUP, NODES_PATH, readNodeReport, VERSION, type PalisadeNode } from "./node-object.ts";

const FIELD_MANAGER = "palisade-status-aggregator";
export const DEFAULT_LEASE_NAME = "palisade-status-aggregator";
/** Collects a burst of node reports into one recomputation. */
const FLUSH_DELAY_MILLIS = 100;
/** A status whose only change is a count (a rollout's progress) is rewritten at most this often per policy. */
const COUNT_ONLY_INTERVAL_MILLIS = 5000;
const LIVENESS_CHECK_MILLIS = 2000;
const WRITE_CONCURRENCY = 4;

const POLICY_RESOURCES: { kind: PolicyKind; plural: string }[] = [
  { kind: "TracingPolicy", plural: "tracingpolicies" },
  { kind: "TracingPolicyNamespaced", plural: "tracingpoliciesnamespaced" },
];

interface WatchedPolicy extends KubeObject {
  spec?: { rules?: { hook?: string }[] };
  status?: PolicyStatus;
}

export interface StatusAggregatorOptions {
  kubeConfig: KubeConfig;
  /** This candidate's name in the Lease: the pod or node name. */
  identity: string;
  /** Where the election and heartbeat Leases live (default: $POD_NAMESPACE, else palisade-system). */
  namespace?: string;
  log: (line: string) => void;
  leaseName?: string;
  /** Cluster-wide ceiling on status writes (default 50 per second). */
  writesPerSecond?: number;
  leaseDurationSeconds?: number;
}

export interface StatusAggregator {
  readonly isLeader: boolean;
  /** Stops campaigning; a leader stops writing and frees the Lease for the next candidate. */
  stop(): Promise<void>;
}

export function startStatusAggregator(options: StatusAggregatorOptions): StatusAggregator {
  const namespace = options.namespace ?? statusNamespace();
  const client = new KubeClient(options.kubeConfig, `palisade-status-aggregator/${options.identity}`);
  let run: AggregationRun | undefined;
  const election = new LeaderElection({
    client,
    namespace,
    name: options.leaseName ?? DEFAULT_LEASE_NAME,
    identity: options.identity,
    log: options.log,
    leaseDurationSeconds: options.leaseDurationSeconds,
    renewDeadlineSeconds: options.leaseDurationSeconds && Math.max(1, Math.floor((options.leaseDurationSeconds * 2) / 3)),
    onStartedLeading: () => {
      run = new AggregationRun(client, namespace, options.writesPerSecond ?? 50, options.log);
    },
    onStoppedLeading: () => {
      void run?.stop();
      run = undefined;
    },
  });
  election.start();
  return {
    get isLeader() {
      return election.isLeader;
    },
    async stop() {
      // Stop writing while still holding the Lease, then free it: the next leader never
      // overlaps with a write of ours still in flight.
      await run?.stop();
      await election.stop();
      client.close();
    },
  };
}

/** One term as leader: the watches, the aggregation and the writes; dropped on stepping down. */
class AggregationRun {
  private readonly aggregation = new StatusAggregation();
  private readonly informers: { stop(): Promise<void> }[] = [];
  private readonly unsynced = new Set<string>();
  /** Per policy uid: the status stored (from the watch) and the one we last wrote. */
  private readonly stored = new Map<string, PolicyStatus | undefined>();
  private readonly written = new Map<string, PolicyStatus>();
  private readonly lastWrite = new Map<string, number>();
  private readonly paths = new Map<string, string>();
  /** Heartbeat renewTimes seen, so later renewals are timed on our clock (skew-proof). */
  private readonly renewTimes = new Map<string, string>();
  /** Statuses to write: condition flips and new generations first, then progress counts. */
  private readonly urgent = new Set<string>();
  private readonly routine = new Set<string>();
  private readonly deferred = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | undefined;
  private flushAt = 0;
  private readonly livenessTimer: NodeJS.Timeout;
  private workers = 0;
  private writing: Promise<void>[] = [];
  private tokens: number;
  private tokensAt = Date.now();
  private readonly backoff = new Backoff();
  private stopped = false;

  private readonly client: KubeClient;
  private readonly log: (line: string) => void;
  private readonly writesPerSecond: number;

  constructor(client: KubeClient, namespace: string, writesPerSecond: number, log: (line: string) => void) {
    this.client = client;
    this.log = log;
    this.writesPerSecond = writesPerSecond;
    this.tokens = writesPerSecond;
    const watch = <T extends KubeObject>(path: string, upsert: (o: T) => void, remove: (o: T) => void, labelSelector?: string) => {
      this.unsynced.add(path);
      const informer = new Informer<T>(client, {
        path,
        labelSelector,
        log,
        onChange: (type, o) => {
          if (type === "deleted") remove(o);
          else upsert(o);
          this.schedule();
        },
        onSynced: () => {
          this.unsynced.delete(path);
          this.schedule();
        },
      });
      informer.start();
      this.informers.push(informer);
    };
    watch<PalisadeNode>(
      NODES_PATH,
      (o) => this.aggregation.setReport(o.metadata.name, readNodeReport(o)),
      (o) => this.aggregation.setReport(o.metadata.name, undefined),
    );
    watch<Lease>(
      leasesPath(namespace),
      (lease) => this.heartbeat(lease),
      (lease) => {
        const heartbeat = readHeartbeat(lease);
        if (!heartbeat) return;
        this.renewTimes.delete(heartbeat.node);
        this.aggregation.setHeartbeat(heartbeat.node, undefined);
      },
      HEARTBEAT_LABEL,
    );
    for (const { kind, plural } of POLICY_RESOURCES) {
      watch<WatchedPolicy>(
        `/apis/${GROUP}/${VERSION}/${plural}`,
        (o) => this.upsertPolicy(kind, plural, o),
        (o) => this.removePolicy(o.metadata.uid!),
      );
    }
    this.livenessTimer = setInterval(() => {
      this.aggregation.expireHeartbeats();
      this.schedule();
    }, LIVENESS_CHECK_MILLIS);
  }

  /** Stops watching and writing; resolves when no write is in flight. */
  async stop() {
    this.stopped = true;
    clearInterval(this.livenessTimer);
    clearTimeout(this.flushTimer);
    await Promise.all([...this.informers.map((i) => i.stop()), ...this.writing]);
  }

  private heartbeat(lease: Lease) {
    const heartbeat = readHeartbeat(lease);
    if (!heartbeat) return;
    const renewTime = lease.spec.renewTime ?? "";
    const seen = this.renewTimes.get(heartbeat.node);
    this.renewTimes.set(heartbeat.node, renewTime);
    // First sight: trust the node's clock; a renewal we watch happen: now plus the duration.
    const durationMillis = (lease.spec.leaseDurationSeconds ?? 0) * 1000;
    const aliveUntil = seen === undefined || seen === renewTime ? heartbeat.aliveUntil : Date.now() + durationMillis;
    this.aggregation.setHeartbeat(heartbeat.node, aliveUntil);
  }

  private upsertPolicy(kind: PolicyKind, plural: string, object: WatchedPolicy) {
    const { uid, name, namespace, generation } = object.metadata;
    if (!uid) return;
    const hooks = new Set<Hook>();
    for (const rule of object.spec?.rules ?? []) if (HOOKS.includes(rule.hook as Hook)) hooks.add(rule.hook as Hook);
    this.aggregation.upsertPolicy({ kind, namespace, name, uid, generation: generation ?? 1, hooks: HOOKS.filter((h) => hooks.has(h)) });
    this.stored.set(uid, object.status);
    const scope = namespace ? `namespaces/${encodeURIComponent(namespace)}/` : "";
    this.paths.set(uid, `/apis/${GROUP}/${VERSION}/${scope}${plural}/${encodeURIComponent(name)}/status`);
  }

  private removePolicy(uid: string) {
    this.aggregation.removePolicy(uid);
    for (const map of [this.stored, this.written, this.lastWrite, this.paths, this.deferred]) map.delete(uid);
    this.urgent.delete(uid);
    this.routine.delete(uid);
  }

  /** Flushes after `delay`, or sooner if a flush is already due sooner (a deferred count must not hold back a flip). */
  private schedule(delay = FLUSH_DELAY_MILLIS) {
    if (this.stopped || this.unsynced.size > 0) return;
    const at = Date.now() + delay;
    if (this.flushTimer && this.flushAt <= at) return;
    clearTimeout(this.flushTimer);
    this.flushAt = at;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flush();
    }, delay);
  }

  /** Recomputes the policies that changed and queues those whose status differs from the stored one. */
  private flush() {
    const now = Date.now();
    const uids = new Set(this.aggregation.takeDirty());
    for (const [uid, due] of this.deferred) {
      if (due > now) continue;
      this.deferred.delete(uid);
      uids.add(uid);
    }
    for (const uid of uids) {
      const before = this.written.get(uid) ?? this.stored.get(uid);
      const status = this.aggregation.statusOf(uid, before);
      if (!status || sameStatus(status, before)) continue;
      if (significantChange(before, status)) {
        this.routine.delete(uid);
        this.urgent.add(uid);
        continue;
      }
      const due = (this.lastWrite.get(uid) ?? 0) + COUNT_ONLY_INTERVAL_MILLIS;
      if (due > now) this.deferred.set(uid, due);
      else if (!this.urgent.has(uid)) this.routine.add(uid);
    }
    while (this.workers < WRITE_CONCURRENCY && this.urgent.size + this.routine.size > 0) {
      this.workers++;
      const worker = this.writeQueued().finally(() => {
        this.workers--;
        this.writing = this.writing.filter((w) => w !== worker);
      });
      this.writing.push(worker);
    }
    if (this.deferred.size > 0) this.schedule(Math.max(FLUSH_DELAY_MILLIS, Math.min(...this.deferred.values()) - now));
  }

  private async writeQueued() {
    while (!this.stopped && this.urgent.size + this.routine.size > 0) {
      await this.takeToken();
      const queue = this.urgent.size > 0 ? this.urgent : this.routine;
      const uid = queue.values().next().value;
      if (uid === undefined || this.stopped) return;
      queue.delete(uid);
      // Computed now, not when queued: the latest reports win.
      const before = this.written.get(uid) ?? this.stored.get(uid);
      const status = this.aggregation.statusOf(uid, before);
      const policy = this.aggregation.policy(uid);
      const path = this.paths.get(uid);
      if (!status || !policy || !path || sameStatus(status, before)) continue;
      const body = {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: policy.kind,
        metadata: { name: policy.name, ...(policy.namespace ? { namespace: policy.namespace } : {}) },
        status,
      };
      try {
        await this.client.apply(path, body, FIELD_MANAGER);
        this.written.set(uid, status);
        this.lastWrite.set(uid, Date.now());
        this.backoff.reset();
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) continue; // deleted meanwhile; the watch will say so
        this.log(`status: writing ${path}: ${(err as Error).message}`);
        this.aggregation.markDirty(uid);
        this.schedule(this.backoff.next());
        return;
      }
    }
  }

  /** A token bucket: bursts up to one second's worth, then writesPerSecond. */
  private async takeToken() {
    for (;;) {
      const now = Date.now();
      this.tokens = Math.min(this.writesPerSecond, this.tokens + ((now - this.tokensAt) / 1000) * this.writesPerSecond);
      this.tokensAt = now;
      if (this.tokens >= 1) {
        this.tokens--;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, ((1 - this.tokens) / this.writesPerSecond) * 1000));
    }
  }
}
