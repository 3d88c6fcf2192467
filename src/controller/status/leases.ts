// coordination.k8s.io/v1 Leases: each node's heartbeat, and the election of the one agent
// that aggregates status. The election follows client-go's leaderelection: a candidate
// takes the Lease when it is free or its holder has not renewed it for leaseDurationSeconds
// as measured on the candidate's own clock (so clock skew between nodes does not matter),
// writes are optimistic (resourceVersion), and the leader steps down when it cannot renew
// within renewDeadlineSeconds, which is shorter than the lease, so two leaders never overlap.

import { ApiError, type KubeClient, type ObjectBody } from "../client.ts";
import type { KubeObject } from "../informer.ts";

export const HEARTBEAT_PERIOD_SECONDS = 20;
/** A node whose heartbeat Lease is older than this many periods counts as gone. */
export const HEARTBEAT_MISSES = 3;
export const HEARTBEAT_LABEL = "palisade.dev/heartbeat";
const HEARTBEAT_PREFIX = "node-";

export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}

/** As the server returns it. */
export interface Lease extends KubeObject {
  spec: LeaseSpec;
}

/** As we write it. */
export interface LeaseBody extends ObjectBody {
  spec: LeaseSpec;
}

/** The agent's namespace: the status plane's Leases live there. */
export function statusNamespace(): string {
  return process.env.POD_NAMESPACE || "palisade-system";
}

export function leasesPath(namespace: string): string {
  return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
}

/** A Lease's MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(date = new Date()): string {
  return date.toISOString().replace(/Z$/, "000Z");
}

export function heartbeatLease(namespace: string, node: string, periodSeconds: number): LeaseBody {
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { name: HEARTBEAT_PREFIX + node, namespace, labels: { [HEARTBEAT_LABEL]: "node" } },
    spec: { holderIdentity: node, leaseDurationSeconds: periodSeconds * HEARTBEAT_MISSES, renewTime: microTime() },
  };
}

/** The node a heartbeat Lease speaks for, and until when (epoch ms) it counts as alive. */
export function readHeartbeat(lease: Lease): { node: string; aliveUntil: number } | undefined {
  const node = lease.spec.holderIdentity;
  const renewed = Date.parse(lease.spec.renewTime ?? "");
  if (!node || !lease.metadata.name.startsWith(HEARTBEAT_PREFIX) || Number.isNaN(renewed)) return undefined;
  return { node, aliveUntil: renewed + (lease.spec.leaseDurationSeconds ?? HEARTBEAT_PERIOD_SECONDS * HEARTBEAT_MISSES) * 1000 };
}

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  log: (line: string) => void;
  onStartedLeading(): void;
  /** Called before another candidate can take over: stop writing at once. */
  onStoppedLeading(): void;
  leaseDurationSeconds?: number;
  renewDeadlineSeconds?: number;
  retryPeriodSeconds?: number;
}

export class LeaderElection {
  private readonly options: Required<LeaderElectionOptions>;
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** The holder and renewTime last seen, and when we saw them change (our clock). */
  private observed: { holder: string; renewTime: string; at: number } | undefined;
  private lastRenewed = 0;

  constructor(options: LeaderElectionOptions) {
    this.options = {
      ...options,
      leaseDurationSeconds: options.leaseDurationSeconds ?? 15,
      renewDeadlineSeconds: options.renewDeadlineSeconds ?? 10,
      retryPeriodSeconds: options.retryPeriodSeconds ?? 2,
    };
    if (this.options.renewDeadlineSeconds >= this.options.leaseDurationSeconds) throw new Error("renewDeadlineSeconds must be shorter than leaseDurationSeconds");
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start() {
    this.tick();
  }

  /** Stops campaigning; a leader steps down and frees the Lease so another takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    if (!this.leading) return;
    this.stepDown();
    try {
      const lease = await this.options.client.get<LeaseBody>(this.path());
      if (lease.spec.holderIdentity !== this.options.identity) return;
      const now = microTime();
      lease.spec = { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: now, acquireTime: now };
      await this.options.client.replace(this.path(), lease);
    } catch (err) {
      this.options.log(`status: releasing Lease ${this.options.name}: ${(err as Error).message}`);
    }
  }

  private path(): string {
    return `${leasesPath(this.options.namespace)}/${this.options.name}`;
  }

  private tick() {
    if (this.stopped) return;
    this.running = this.tryAcquireOrRenew().then(
      (held) => {
        if (held) {
          this.lastRenewed = Date.now();
          if (!this.leading && !this.stopped) {
            this.leading = true;
            this.options.log(`status: ${this.options.identity} leads the status aggregation (Lease ${this.options.namespace}/${this.options.name})`);
            this.options.onStartedLeading();
          }
        } else if (this.leading) {
          this.stepDown();
        }
      },
      (err: Error) => {
        if (this.leading && Date.now() - this.lastRenewed > this.options.renewDeadlineSeconds * 1000) {
          this.options.log(`status: cannot renew Lease ${this.options.name} (${err.message}); stepping down`);
          this.stepDown();
        } else if (!(err instanceof ApiError && err.status === 409)) {
          this.options.log(`status: Lease ${this.options.name}: ${err.message}`);
        }
      },
    );
    void this.running.then(() => {
      if (this.stopped) return;
      // A leader renews about three times per renew deadline; a candidate polls every retry period.
      const seconds = this.leading ? this.options.renewDeadlineSeconds / 3 : this.options.retryPeriodSeconds;
      this.timer = setTimeout(() => this.tick(), seconds * 1000 * (0.9 + Math.random() * 0.2));
    });
  }

  private stepDown() {
    if (!this.leading) return;
    this.leading = false;
    this.options.log(`status: ${this.options.identity} no longer leads the status aggregation`);
    this.options.onStoppedLeading();
  }

  /** True when we hold the Lease after this call. Rejects on errors (a 409 when another won the race). */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { client, identity, leaseDurationSeconds, namespace, name } = this.options;
    const now = microTime();
    let lease: LeaseBody;
    try {
      lease = await client.get<LeaseBody>(this.path());
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
      await client.create(leasesPath(namespace), {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name, namespace },
        spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
      } satisfies LeaseBody);
      return true;
    }
    const holder = lease.spec.holderIdentity ?? "";
    const renewTime = lease.spec.renewTime ?? "";
    if (!this.observed || this.observed.holder !== holder || this.observed.renewTime !== renewTime) {
      this.observed = { holder, renewTime, at: Date.now() };
    }
    const duration = (lease.spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    if (holder && holder !== identity && this.observed.at + duration > Date.now()) return false;
    const taking = holder !== identity;
    lease.spec = {
      ...lease.spec,
      holderIdentity: identity,
      leaseDurationSeconds,
      renewTime: now,
      acquireTime: taking ? now : lease.spec.acquireTime,
      leaseTransitions: (lease.spec.leaseTransitions ?? 0) + (taking && holder ? 1 : 0),
    };
    await client.replace(this.path(), lease);
    return true;
  }
}
