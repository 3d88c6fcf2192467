// PolicyReports from the agent: runtime events (and pod-spec findings) aggregate in memory
// per workload and are written in batches, one report per workload and node, by server-side
// apply. See docs/policy-reports.md for the design and its reasons.
//
//   const reporter = new PolicyReporter({ kubeConfig, node, flavor: "wgpolicyk8s", log });
//   reporter.record(event);   // every decided RuntimeEvent of this node
//   reporter.recordPod(pod);  // every Pod of this node, as the informer sees it
//   await reporter.close();   // writes what is pending

import type { KubeConfig, V1Pod } from "@kubernetes/client-node";
import { KubeClient, resourcePath, type ResourcePath } from "../client.ts";
import type { RuntimeEvent } from "../../events/event.ts";
import { buildReport, labelValue, MANAGED_BY_LABEL, NODE_ANNOTATION, NODE_LABEL, REPORT_FLAVORS, REPORT_KINDS, reportName, resultsOfReport, SOURCE, type ReportFlavor, type ReportObject, type ReportScope } from "./format.ts";
import { POD_CHECK_POLICY, podSpecFindings } from "./pod-checks.ts";
import { observationOfEvent, ReportResults, type Observation } from "./results.ts";
import { LruCache, WorkloadResolver, type PodLike } from "./workload.ts";

export { REPORT_FLAVORS, REPORT_KINDS, type ReportFlavor } from "./format.ts";
export { podSpecFindings, POD_CHECK_POLICY } from "./pod-checks.ts";

export const FIELD_MANAGER = "palisade";
export const DEFAULT_MAX_RESULTS = 100;
/** Far under etcd's 1.5 MiB request limit, and small enough to list thousands of reports. */
export const DEFAULT_MAX_REPORT_BYTES = 256 * 1024;
export const DEFAULT_FLUSH_INTERVAL_MS = 5_000;
/** The largest byte budget accepted: etcd refuses requests over 1.5 MiB, and a report must stay well under. */
const MAX_REPORT_BYTES = 1024 * 1024;
/** Distinct pods (plus the host) with unwritten observations; beyond it, observations are dropped and counted. */
const MAX_PENDING_GROUPS = 10_000;
/** Reports kept in memory; a forgotten one is read back from the API before its next write. */
const MAX_REPORTS_IN_MEMORY = 1_000;

export interface PolicyReporterOptions {
  kubeConfig: KubeConfig;
  /** This node's name: in every report's name, so each report has one writer. */
  node: string;
  /** wgpolicyk8s.io/v1alpha2 (default) or openreports.io/v1alpha1. */
  flavor?: ReportFlavor;
  /** Results per report before the least important are evicted (default 100). */
  maxResultsPerReport?: number;
  /** Size of one report object in bytes before more are evicted (default 256 KiB). */
  maxReportBytes?: number;
  /** How often pending observations are written (default 5 s); 0 writes only on flush() and close(). */
  flushIntervalMs?: number;
  log?: (message: string) => void;
}

export interface ReporterStats {
  /** Observations taken in (events with a policy, new pod-spec findings). */
  recorded: number;
  /** Observations lost: their pod could not be identified, or too much was pending. */
  dropped: number;
  /** Report writes that succeeded, and that failed (retried at the next flush). */
  writes: number;
  writeErrors: number;
}

type Origin = { kind: "host" } | { kind: "podName"; namespace: string; pod: string; podUid?: string } | { kind: "pod"; pod: V1Pod };

interface PendingGroup {
  origin: Origin;
  results: ReportResults;
}

interface ReportState {
  scope: ReportScope;
  results: ReportResults;
  dirty: boolean;
  touched: number;
}

export class PolicyReporter {
  private readonly node: string;
  private readonly flavor: ReportFlavor;
  private readonly maxResults: number;
  private readonly maxBytes: number;
  private readonly log: (message: string) => void;
  private readonly api: KubeClient;
  private readonly resolver: WorkloadResolver;
  private readonly timer: NodeJS.Timeout | undefined;
  private pending = new Map<string, PendingGroup>();
  private readonly reports = new Map<string, ReportState>();
  /** Pod-spec findings already recorded, by container start. */
  private readonly seenStarts = new LruCache<string, true>(50_000);
  private nodeScope: ReportScope | undefined;
  /** Set by retainPolicies(): the policies in force, applied to every report of this node at the next flush. */
  private retained: Set<string> | undefined;
  /** The set of the last prune that succeeded. */
  private pruned: Set<string> | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;
  private touches = 0;
  readonly stats: ReporterStats = { recorded: 0, dropped: 0, writes: 0, writeErrors: 0 };

  constructor(options: PolicyReporterOptions) {
    this.node = options.node;
    this.flavor = options.flavor ?? "wgpolicyk8s";
    if (!REPORT_FLAVORS.includes(this.flavor)) throw new Error(`report format must be wgpolicyk8s or openreports, not ${this.flavor}`);
    this.maxResults = checkedInteger("maxResultsPerReport", options.maxResultsPerReport ?? DEFAULT_MAX_RESULTS, 1, 10_000);
    this.maxBytes = checkedInteger("maxReportBytes", options.maxReportBytes ?? DEFAULT_MAX_REPORT_BYTES, 16 * 1024, MAX_REPORT_BYTES);
    const interval = checkedInteger("flushIntervalMs", options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS, 0, 3_600_000);
    this.log = options.log ?? (() => {});
    this.api = new KubeClient(options.kubeConfig, `palisade-agent/${options.node}`);
    this.resolver = new WorkloadResolver(this.api);
    if (interval > 0) {
      this.timer = setInterval(() => void this.flush(), interval);
      this.timer.unref();
    }
  }

  /** A decided runtime event of this node. Cheap: aggregates in memory, writes at the next flush. */
  record(event: RuntimeEvent): void {
    const observation = observationOfEvent(event, Date.now());
    if (!observation || this.closed) return;
    const k8s = event.k8s;
    if (!k8s?.namespace) return this.add("host", { kind: "host" }, observation);
    if (!k8s.pod) {
      this.stats.dropped++;
      return;
    }
    this.add(`${k8s.namespace}/${k8s.pod}/${k8s.podUid ?? ""}`, { kind: "podName", namespace: k8s.namespace, pod: k8s.pod, podUid: k8s.podUid }, observation);
  }

  /**
   * A Pod as the informer sees it (call on every add and update): reports its pod-spec
   * findings (privileged containers, host namespaces) once per container start. Pods of
   * other nodes are left to their own node's agent.
   */
  recordPod(pod: V1Pod): void {
    if (this.closed || (pod.spec?.nodeName && pod.spec.nodeName !== this.node)) return;
    const m = pod.metadata;
    for (const finding of podSpecFindings(pod)) {
      if (this.seenStarts.get(finding.startKey)) continue;
      this.seenStarts.set(finding.startKey, true);
      this.add(`${m?.namespace}/${m?.name}/${m?.uid ?? ""}`, { kind: "pod", pod }, finding.observation);
    }
  }

  private add(key: string, origin: Origin, observation: Observation): void {
    let group = this.pending.get(key);
    if (!group) {
      if (this.pending.size >= MAX_PENDING_GROUPS) {
        this.stats.dropped++;
        return;
      }
      group = { origin, results: new ReportResults(this.maxResults) };
      this.pending.set(key, group);
    } else if (origin.kind === "pod") {
      group.origin = origin; // the object itself spares a read
    }
    group.results.add(observation);
    this.stats.recorded++;
  }

  /**
   * The policies now in force on this node (the names events carry in `policy`). At the next
   * flush, results of any other policy (deleted, renamed) leave every report this node wrote,
   * those written before a restart included. Pod-spec results stay.
   */
  retainPolicies(policies: Iterable<string>): void {
    const next = new Set(policies);
    // The same set again (the agent passes it on every status publish): nothing to list.
    const latest = this.retained ?? this.pruned;
    if (latest && latest.size === next.size && [...next].every((p) => latest.has(p))) return;
    this.retained = next;
  }

  /** Writes everything pending now. Never rejects: failures are logged and retried at the next flush. */
  flush(): Promise<void> {
    // One flush at a time; a flush asked for during one runs right after it.
    const run = (this.flushing ?? Promise.resolve()).then(() => this.flushOnce()).catch((error: Error) => this.log(`policy reports: flush failed: ${error.stack ?? error.message}`));
    const settled = run.finally(() => {
      if (this.flushing === settled) this.flushing = undefined;
    });
    this.flushing = settled;
    return settled;
  }

  /** Stops the timer and writes what is pending. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.closed = true;
    await this.flush();
  }

  private async flushOnce(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    const failures: string[] = [];
    for (const [key, group] of batch) {
      try {
        const scope = await this.scopeOf(group.origin);
        if (!scope) {
          this.stats.dropped += group.results.list().reduce((n, r) => n + r.count, 0);
          failures.push(`pod ${key.replace(/\/$/, "")} not found (and no uid to report it by): its results are dropped`);
          continue;
        }
        const state = await this.stateOf(scope);
        state.results.mergeAll(group.results);
        state.dirty = true;
      } catch (error) {
        failures.push(`${key}: ${(error as Error).message}`);
        this.putBack(key, group);
      }
    }
    if (this.retained) {
      try {
        const retained = this.retained;
        await this.prune(retained);
        this.pruned = retained;
        if (this.retained === retained) this.retained = undefined;
      } catch (error) {
        failures.push(`removing results of policies no longer in force: ${(error as Error).message}`);
      }
    }
    for (const state of this.reports.values()) {
      if (!state.dirty) continue;
      const report = buildReport(state.scope, state.results, { flavor: this.flavor, node: this.node, maxBytes: this.maxBytes });
      try {
        await this.api.apply(resourcePath(this.pathOf(report.metadata)), report, FIELD_MANAGER);
        state.dirty = false;
        this.stats.writes++;
      } catch (error) {
        this.stats.writeErrors++;
        failures.push(`writing ${report.kind} ${report.metadata.namespace ? `${report.metadata.namespace}/` : ""}${report.metadata.name}: ${(error as Error).message}`);
      }
    }
    this.forgetIdleReports();
    // One line per flush, however many failed: an unreachable API server must not flood the log.
    if (failures.length > 0) this.log(`policy reports: ${failures.length} failure(s), retried at the next flush; first: ${failures[0]}`);
  }

  /** Removes results of policies not in `retained` from this node's reports, stored or in memory. */
  private async prune(retained: Set<string>): Promise<void> {
    const kinds = REPORT_KINDS[this.flavor];
    const labelSelector = `${MANAGED_BY_LABEL}=${SOURCE},${NODE_LABEL}=${labelValue(this.node)}`;
    for (const resource of [kinds.namespacedResource, kinds.clusterResource]) {
      const stored = await this.api.get<{ items: ReportObject[] }>(resourcePath({ apiVersion: kinds.apiVersion, resource }), { labelSelector });
      for (const object of stored.items) {
        const namespace = object.metadata.namespace;
        const scope: ReportScope = namespace === undefined ? { workload: { ...object.scope, kind: "Node" } } : { namespace, workload: object.scope };
        // Another node whose name hashes to the same label value is not ours to touch.
        if (object.metadata.annotations?.[NODE_ANNOTATION] !== this.node || reportName(scope, this.node) !== object.metadata.name) continue;
        const key = `${namespace ?? ""}/${object.metadata.name}`;
        if (!this.reports.has(key)) this.reports.set(key, { scope, results: resultsOfReport(object, this.maxResults), dirty: false, touched: ++this.touches });
      }
    }
    const gone = (r: { policy: string }) => r.policy !== POD_CHECK_POLICY && !retained.has(r.policy);
    for (const state of this.reports.values()) if (state.results.removeWhere(gone) > 0) state.dirty = true;
    for (const group of this.pending.values()) group.results.removeWhere(gone);
  }

  private putBack(key: string, group: PendingGroup): void {
    const newer = this.pending.get(key);
    if (newer) group.results.mergeAll(newer.results);
    this.pending.set(key, group);
  }

  private async scopeOf(origin: Origin): Promise<ReportScope | undefined> {
    if (origin.kind === "host") return (this.nodeScope ??= await this.readNodeScope());
    const workload = origin.kind === "pod" ? await this.resolver.ofPod(origin.pod as PodLike) : await this.resolver.ofPodName(origin.namespace, origin.pod, origin.podUid);
    return workload && { namespace: workload.namespace, workload };
  }

  /** The Node object, for its uid (the ClusterPolicyReport is garbage-collected with it). */
  private async readNodeScope(): Promise<ReportScope> {
    const uid = (await this.api.getIfExists<{ metadata: { uid?: string } }>(resourcePath({ apiVersion: "v1", resource: "nodes", name: this.node })))?.metadata.uid;
    return { workload: { apiVersion: "v1", kind: "Node", name: this.node, ...(uid && { uid }) } };
  }

  /** The report in memory, or read back from the API (after a restart) so counts continue. */
  private async stateOf(scope: ReportScope): Promise<ReportState> {
    const name = reportName(scope, this.node);
    const key = `${scope.namespace ?? ""}/${name}`;
    let state = this.reports.get(key);
    if (!state) {
      const stored = await this.api.getIfExists<ReportObject>(resourcePath(this.pathOf({ name, namespace: scope.namespace })));
      const ours = stored?.metadata?.labels?.[MANAGED_BY_LABEL] === SOURCE;
      state = { scope, results: ours ? resultsOfReport(stored!, this.maxResults) : new ReportResults(this.maxResults), dirty: false, touched: 0 };
      this.reports.set(key, state);
    }
    state.scope = scope;
    state.touched = ++this.touches;
    return state;
  }

  /** Where a report of ours lives: the namespaced kind in a namespace, else the cluster kind. */
  private pathOf({ name, namespace }: { name: string; namespace?: string }): ResourcePath {
    const kinds = REPORT_KINDS[this.flavor];
    return namespace === undefined ? { apiVersion: kinds.apiVersion, resource: kinds.clusterResource, name } : { apiVersion: kinds.apiVersion, resource: kinds.namespacedResource, namespace, name };
  }

  private forgetIdleReports(): void {
    if (this.reports.size <= MAX_REPORTS_IN_MEMORY) return;
    const idle = [...this.reports].filter(([, s]) => !s.dirty).sort(([, a], [, b]) => a.touched - b.touched);
    for (const [key] of idle.slice(0, this.reports.size - MAX_REPORTS_IN_MEMORY)) this.reports.delete(key);
  }
}

function checkedInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) throw new Error(`${name} must be an integer from ${min} to ${max}, not ${value}`);
  return value;
}
