// The pure half of PolicyReports: what one observation is (a runtime event or a pod-spec
// finding), how repeats aggregate into one result with a count, and how a report stays
// bounded (at most N results, then a byte budget) by evicting the least important first.

import { createHash } from "node:crypto";
import type { RuntimeEvent } from "../../events/event.ts";
import { SEVERITIES, type Severity } from "../../policy/model.ts";

/** The result values of the PolicyReport API. Palisade writes fail and warn only. */
export type ResultValue = "pass" | "fail" | "warn" | "error" | "skip";
export const RESULT_VALUES: readonly ResultValue[] = ["pass", "fail", "warn", "error", "skip"];
export type Summary = Record<ResultValue, number>;

/** What a pod-spec check reports for its findings: seen in the API, never acted on. */
export const OBSERVED_ACTION = "observed";

/** One thing seen, before aggregation. */
export interface Observation {
  policy: string;
  rule: string;
  result: ResultValue;
  severity?: Severity;
  /** The event's action (denied, killed, audited, monitor) or "observed" for pod-spec findings. */
  action: string;
  /** The hook (process.exec, file.open, net.connect) or "pod.spec"; the result's category. */
  category: string;
  /** Who did it: the executed binary, the process that opened or connected, the container's image. */
  subject: string;
  /** Which property names `subject`: "binary", or "image" for pod-spec findings. */
  subjectKind: "binary" | "image";
  /** What it was done to: a path, an address, a container; "" for an exec (the binary is the target). */
  target: string;
  /** Which property names `target`: "path", "address" or "container". */
  targetKind?: "path" | "address" | "container";
  message: string;
  /** When it happened, in milliseconds since the epoch. */
  timeMillis: number;
  /** Context of the latest occurrence (pod, container, image, parent, ...); shown as properties. */
  details: Record<string, string>;
}

/** Repeats of one observation: same policy, rule, subject and target within one report. */
export interface AggregatedResult extends Observation {
  count: number;
  firstSeenMillis: number;
  lastSeenMillis: number;
  /**
   * Occurrences at or before this time were counted by an earlier run of the agent. Set for
   * pod-spec findings read back from a stored report: a restarted agent lists every pod
   * again, and a container start it counted before must not count twice.
   */
  countedUntilMillis?: number;
}

/** Identity of a result within a report (the workload is the report's). */
export function resultKey(o: Pick<Observation, "policy" | "rule" | "subject" | "target">): string {
  return `${o.policy}\u0000${o.rule}\u0000${o.subject}\u0000${o.target}`;
}

/** A stable id across reports, agents and restarts: hash of policy, rule, workload, subject and target. */
export function resultId(o: Pick<Observation, "policy" | "rule" | "subject" | "target">, workload: string): string {
  return createHash("sha256").update(JSON.stringify([o.policy, o.rule, workload, o.subject, o.target])).digest("hex").slice(0, 20);
}

// Lower rank = evicted first.
const SEVERITY_RANK: Record<string, number> = Object.fromEntries(SEVERITIES.map((s, i) => [s, SEVERITIES.length - i]));
const severityRank = (r: AggregatedResult) => SEVERITY_RANK[r.severity ?? ""] ?? 0;

/** Eviction order: lowest severity first, then the one seen least recently. */
export function evictionOrder(a: AggregatedResult, b: AggregatedResult): number {
  return severityRank(a) - severityRank(b) || a.lastSeenMillis - b.lastSeenMillis;
}

/** The results of one report: repeats aggregated, at most `maxResults` of them. */
export class ReportResults {
  private readonly results = new Map<string, AggregatedResult>();
  private readonly maxResults: number;
  /** How many distinct results were dropped to keep the bound (over this object's life). */
  evicted = 0;

  constructor(maxResults: number) {
    if (!Number.isInteger(maxResults) || maxResults < 1) throw new Error(`maxResults must be a positive integer, not ${maxResults}`);
    this.maxResults = maxResults;
  }

  get size(): number {
    return this.results.size;
  }

  add(observation: Observation): void {
    this.fold(observation, 1, observation.timeMillis, observation.timeMillis);
  }

  /** Folds an aggregate in: counts add up, first and last seen widen, the latest occurrence's context wins. */
  merge(incoming: AggregatedResult): void {
    this.fold(incoming, incoming.count, incoming.firstSeenMillis, incoming.lastSeenMillis);
  }

  // In place: this runs for every event of a storm.
  private fold(incoming: Observation, count: number, firstSeenMillis: number, lastSeenMillis: number): void {
    const key = resultKey(incoming);
    const current = this.results.get(key);
    if (!current) {
      this.results.set(key, { ...incoming, details: { ...incoming.details }, count, firstSeenMillis, lastSeenMillis });
      this.evictOverflow();
      return;
    }
    if (current.countedUntilMillis !== undefined && lastSeenMillis <= current.countedUntilMillis) return;
    current.count += count;
    if (firstSeenMillis < current.firstSeenMillis) current.firstSeenMillis = firstSeenMillis;
    if (lastSeenMillis < current.lastSeenMillis) return;
    current.lastSeenMillis = lastSeenMillis;
    current.timeMillis = incoming.timeMillis;
    current.result = incoming.result;
    current.severity = incoming.severity;
    current.action = incoming.action;
    current.message = incoming.message;
    current.details = { ...incoming.details };
  }

  /** Drops the results `drop` picks (not an eviction: they no longer apply). Returns how many. */
  removeWhere(drop: (result: AggregatedResult) => boolean): number {
    let removed = 0;
    for (const [key, result] of this.results) {
      if (drop(result)) {
        this.results.delete(key);
        removed++;
      }
    }
    return removed;
  }

  mergeAll(other: ReportResults): void {
    for (const result of other.results.values()) this.merge(result);
    this.evicted += other.evicted;
  }

  /** Most important first: highest severity, then most recently seen. */
  list(): AggregatedResult[] {
    return [...this.results.values()].sort((a, b) => evictionOrder(b, a));
  }

  summary(): Summary {
    const summary: Summary = { pass: 0, fail: 0, warn: 0, error: 0, skip: 0 };
    for (const r of this.results.values()) summary[r.result]++;
    return summary;
  }

  /**
   * Evicts results (least important first) until the report's size fits in `budget` bytes,
   * so a written object stays far under etcd's request limit whatever the strings in it.
   * `fixedBytes` is the size of everything but the results.
   */
  evictToFit(budget: number, fixedBytes: number, sizeOf: (result: AggregatedResult) => number): void {
    const kept = this.list();
    let total = fixedBytes + kept.reduce((sum, r) => sum + sizeOf(r), 0);
    while (kept.length > 0 && total > budget) {
      const victim = kept.pop()!;
      total -= sizeOf(victim);
      this.results.delete(resultKey(victim));
      this.evicted++;
    }
  }

  private evictOverflow(): void {
    while (this.results.size > this.maxResults) {
      let victim: AggregatedResult | undefined;
      for (const r of this.results.values()) if (!victim || evictionOrder(r, victim) < 0) victim = r;
      this.results.delete(resultKey(victim!));
      this.evicted++;
    }
  }
}

/** fail: Palisade stopped it (denied, killed); warn: it was only seen (audit rules, monitor mode). */
export function resultOfAction(action: string): ResultValue {
  return action === "denied" || action === "killed" ? "fail" : "warn";
}

const isSeverity = (s: string | undefined): s is Severity => (SEVERITIES as readonly string[]).includes(s ?? "");

/** A runtime event as an observation, or undefined for an event no policy decided (nothing to report). */
export function observationOfEvent(event: RuntimeEvent, nowMillis: number): Observation | undefined {
  if (!event.policy || !event.rule) return undefined;
  const action = event.action ?? "audited";
  const parsed = event.time ? Date.parse(event.time) : NaN;
  const details: Record<string, string> = {};
  if (event.parent?.binary) details.parent = event.parent.binary;
  if (event.process.args?.length) details.args = event.process.args.join(" ");
  if (event.k8s?.pod) details.pod = event.k8s.pod;
  if (event.k8s?.container) details.container = event.k8s.container;
  if (event.k8s?.image) details.image = event.k8s.image;
  if (event.process.uid !== undefined) details.uid = String(event.process.uid);

  let target = "";
  let targetKind: Observation["targetKind"];
  let what: string;
  if (event.file) {
    target = event.file.path;
    targetKind = "path";
    what = `open of ${target} by ${event.process.binary}`;
  } else if (event.net) {
    target = formatAddress(event.net);
    targetKind = "address";
    what = `connect to ${target} by ${event.process.binary}`;
  } else {
    what = `exec of ${event.process.binary}`;
  }
  return {
    policy: event.policy,
    rule: event.rule,
    result: resultOfAction(action),
    severity: isSeverity(event.severity) ? event.severity : undefined,
    action,
    category: event.hook,
    subject: event.process.binary,
    subjectKind: "binary",
    target,
    targetKind,
    message: `${what}: ${action === "monitor" ? "seen by a policy in monitor mode, not blocked" : action}`,
    timeMillis: Number.isFinite(parsed) ? parsed : nowMillis,
    details,
  };
}

/** 10.0.0.1:443/tcp, [fd00::1]:443/tcp */
function formatAddress(net: NonNullable<RuntimeEvent["net"]>): string {
  const host = net.family === "ipv6" ? `[${net.daddr}]` : net.daddr;
  return `${host}:${net.dport}/${net.protocol}`;
}
