// The agent's side of the status plane: writes this node's PalisadeNode (its NodeState) and
// renews this node's heartbeat Lease. A burst of reconciles becomes at most one write in
// flight with the latest state winning; an unchanged state is never rewritten; errors back
// off. The heartbeat is a separate ~300-byte Lease (as kubelets do with kube-node-lease) so
// that liveness never rewrites, or re-sends to the aggregator, the node's state.

import type { KubeConfig } from "@kubernetes/client-node";
import type { NodeState } from "../node-state.ts";
import { Backoff } from "../informer.ts";
import { ApiError, KubeClient, type OwnerReference } from "../client.ts";
import { heartbeatLease, HEARTBEAT_PERIOD_SECONDS, leasesPath, statusNamespace } from "./leases.ts";
import { NODES_PATH, toPalisadeNode } from "./node-object.ts";

const FIELD_MANAGER = "palisade-agent";
/** An unchanged state is still rewritten this often: a PalisadeNode deleted by hand comes back. */
const RESYNC_SECONDS = 600;

export interface NodeStatePublisherOptions {
  kubeConfig: KubeConfig;
  /** This node's name: the PalisadeNode's and the heartbeat Lease's name. */
  node: string;
  log: (line: string) => void;
  /** How often the heartbeat Lease is renewed (default 20 s); the node counts as gone after 3 periods. */
  heartbeatSeconds?: number;
  /** Where the heartbeat Lease lives (default: $POD_NAMESPACE, else palisade-system). */
  namespace?: string;
  /** How often an unchanged state is rewritten anyway (default 600 s, plus up to 20% jitter). */
  resyncSeconds?: number;
  /** A client to share (the scale benchmark runs hundreds of publishers in one process). */
  client?: KubeClient;
}

export class NodeStatePublisher {
  private readonly client: KubeClient;
  private readonly ownsClient: boolean;
  private readonly node: string;
  private readonly namespace: string;
  private readonly heartbeatSeconds: number;
  private readonly resyncMillis: number;
  private readonly log: (line: string) => void;

  private latest: NodeState | undefined;
  /** The last state published, for the periodic resync. */
  private last: NodeState | undefined;
  private writtenAt = 0;
  /** JSON of the last object the server accepted; an equal state is not written again. */
  private written: string | undefined;
  /** A write() loop is running (set before its first await, so publish() never starts a second). */
  private busy = false;
  private writing: Promise<void> | undefined;
  private readonly backoff = new Backoff();
  private retryTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly heartbeatBackoff = new Backoff();
  private closed = false;
  /** The Node object, so that its PalisadeNode and Lease are garbage-collected with it. */
  private owner: Promise<OwnerReference[]> | undefined;

  constructor(options: NodeStatePublisherOptions) {
    this.client = options.client ?? new KubeClient(options.kubeConfig, `palisade-agent/${options.node}`);
    this.ownsClient = !options.client;
    this.node = options.node;
    this.namespace = options.namespace ?? statusNamespace();
    this.heartbeatSeconds = options.heartbeatSeconds ?? HEARTBEAT_PERIOD_SECONDS;
    this.resyncMillis = (options.resyncSeconds ?? RESYNC_SECONDS) * 1000;
    this.log = options.log;
    this.heartbeat();
  }

  /** Records the node's latest state; it is written soon, once, unless it equals what is stored. */
  publish(state: NodeState): void {
    if (this.closed) return;
    this.latest = state;
    this.last = state;
    if (!this.busy && !this.retryTimer) this.writing = this.write();
  }

  /** Stops heartbeats and writes the last published state if it is not stored yet. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.heartbeatTimer);
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.writing = this.write();
    }
    await this.writing;
    if (this.ownsClient) this.client.close();
  }

  private async write(): Promise<void> {
    this.busy = true;
    try {
      // Coalesce: whatever was published while a write was in flight goes in the next one.
      while (this.latest) {
        const state = this.latest;
        const object = toPalisadeNode(state);
        // reportTime changes on every reconcile; the state is "unchanged" when the rest is.
        const comparable = JSON.stringify({ ...object.status, reportTime: undefined });
        this.latest = undefined;
        if (comparable === this.written) continue;
        try {
          object.metadata.ownerReferences = await this.ownerReferences();
          await this.client.apply(`${NODES_PATH}/${encodeURIComponent(this.node)}`, object, FIELD_MANAGER);
          this.written = comparable;
          // Jittered, so that a fleet started together does not resync together.
          this.writtenAt = Date.now() + Math.random() * this.resyncMillis * 0.2;
          this.backoff.reset();
        } catch (err) {
          this.log(`status: writing PalisadeNode ${this.node}: ${(err as Error).message}`);
          this.latest ??= state;
          if (this.closed) return;
          // Retry later with whatever is latest then.
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.writing = this.write();
          }, this.backoff.next());
          return;
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /** The node's Node object as owner; none where there is no such Node (or no right to read it). */
  private ownerReferences(): Promise<OwnerReference[]> {
    this.owner ??= this.client.get<{ metadata: { uid: string } }>(`/api/v1/nodes/${encodeURIComponent(this.node)}`).then(
      (node) => [{ apiVersion: "v1", kind: "Node", name: this.node, uid: node.metadata.uid }],
      (err: Error) => {
        if (!(err instanceof ApiError && (err.status === 404 || err.status === 403))) {
          this.owner = undefined; // a transient failure: ask again next time
          throw err;
        }
        this.log(`status: no Node ${this.node} to own its PalisadeNode and heartbeat Lease (${err.message}); they will outlive the node`);
        return [];
      },
    );
    return this.owner;
  }

  private heartbeat() {
    if (this.last && Date.now() - this.writtenAt > this.resyncMillis) {
      this.written = undefined;
      this.publish({ ...this.last, heartbeatTime: new Date().toISOString() });
    }
    this.ownerReferences()
      .then((owners) => {
        const lease = heartbeatLease(this.namespace, this.node, this.heartbeatSeconds);
        lease.metadata.ownerReferences = owners;
        return this.client.apply(`${leasesPath(this.namespace)}/${lease.metadata.name}`, lease, FIELD_MANAGER);
      })
      .then(
        () => {
          this.heartbeatBackoff.reset();
          return this.heartbeatSeconds * 1000;
        },
        (err: Error) => {
          this.log(`status: renewing heartbeat Lease of ${this.node}: ${err.message}`);
          return Math.min(this.heartbeatSeconds * 1000, this.heartbeatBackoff.next());
        },
      )
      .then((delay) => {
        if (!this.closed) this.heartbeatTimer = setTimeout(() => this.heartbeat(), delay);
      });
  }
}
