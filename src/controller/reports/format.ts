// Report objects as the API stores them: wgpolicyk8s.io/v1alpha2 PolicyReport and
// ClusterPolicyReport, or openreports.io/v1alpha1 Report and ClusterReport (same result
// shape). Also the way back, so an agent that restarts continues its counts.

import { createHash } from "node:crypto";
import { SEVERITIES, type Severity } from "../../policy/model.ts";
import { POD_CHECK_CATEGORY } from "./pod-checks.ts";
import { RESULT_VALUES, ReportResults, resultId, resultKey, type AggregatedResult, type Observation, type ResultValue, type Summary } from "./results.ts";

export const REPORT_FLAVORS = ["wgpolicyk8s", "openreports"] as const;
export type ReportFlavor = (typeof REPORT_FLAVORS)[number];

export interface ReportKinds {
  apiVersion: string;
  namespaced: string;
  cluster: string;
  /** The URL path resources of the two kinds. */
  namespacedResource: string;
  clusterResource: string;
}

export const REPORT_KINDS: Record<ReportFlavor, ReportKinds> = {
  wgpolicyk8s: { apiVersion: "wgpolicyk8s.io/v1alpha2", namespaced: "PolicyReport", cluster: "ClusterPolicyReport", namespacedResource: "policyreports", clusterResource: "clusterpolicyreports" },
  openreports: { apiVersion: "openreports.io/v1alpha1", namespaced: "Report", cluster: "ClusterReport", namespacedResource: "reports", clusterResource: "clusterreports" },
};

export const SOURCE = "palisade";
export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const NODE_LABEL = "palisade.dev/node";
export const WORKLOAD_UID_LABEL = "palisade.dev/workload-uid";
/** The node's full name (a label value is limited to 63 characters). */
export const NODE_ANNOTATION = "palisade.dev/node";
/** How many distinct results were evicted from this report to keep it bounded. */
export const EVICTED_ANNOTATION = "palisade.dev/evicted-results";

export interface ObjectReference {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  uid?: string;
}

/** What a report is about: a workload (in its namespace), or this node's host processes. */
export type ReportScope = { namespace: string; workload: ObjectReference } | { namespace?: undefined; workload: ObjectReference & { kind: "Node" } };

export interface ReportResult {
  policy: string;
  rule: string;
  result: ResultValue;
  severity?: Severity;
  source: string;
  category: string;
  message: string;
  scored: boolean;
  timestamp: { seconds: number; nanos: number };
  properties: Record<string, string>;
}

export interface ReportObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string }[];
  };
  scope: ObjectReference;
  /** OpenReports only: the producer. */
  source?: string;
  summary: Summary;
  results: ReportResult[];
}

const MAX_NAME = 253;
const MAX_LABEL_VALUE = 63;
/** Paths and addresses are kept whole (PATH_MAX): they are part of a result's identity. */
const MAX_IDENTITY_VALUE = 4096;
const MAX_DETAIL_VALUE = 1024;

const hash = (text: string, length: number) => createHash("sha256").update(text).digest("hex").slice(0, length);

/** A DNS subdomain of at most 253 characters; a longer one keeps its start and ends in a hash of the whole. */
function boundedName(name: string): string {
  if (name.length <= MAX_NAME) return name;
  return `${name.slice(0, MAX_NAME - 17).replace(/[-.]+$/, "")}-${hash(name, 16)}`;
}

/**
 * The report's name includes the node: every report has exactly one writer, the agent of
 * that node, so nodes never contend on (or clobber) one object, whatever the workload's size.
 */
export function reportName(scope: ReportScope, node: string): string {
  const w = scope.workload;
  if (w.kind === "Node" && scope.namespace === undefined) return boundedName(`palisade-node-${node}`);
  return boundedName(`palisade-${w.kind.toLowerCase()}-${w.name}-${node}`);
}

/** The key a result id hashes: the workload, not the node, so one result has one id across nodes. */
export function workloadKey(scope: ReportScope): string {
  const w = scope.workload;
  return scope.namespace === undefined ? `Node/${w.name}` : `${w.kind}/${scope.namespace}/${w.name}`;
}

export const labelValue = (value: string) => (value.length <= MAX_LABEL_VALUE ? value : hash(value, 40));
const truncate = (value: string, max: number) => (value.length <= max ? value : `${value.slice(0, max - 1)}…`);

function timestamp(millis: number) {
  return { seconds: Math.floor(millis / 1000), nanos: (millis % 1000) * 1_000_000 };
}

export function renderResult(r: AggregatedResult, workload: string): ReportResult {
  const properties: Record<string, string> = {};
  for (const [name, value] of Object.entries(r.details)) properties[name] = truncate(value, MAX_DETAIL_VALUE);
  properties.action = r.action;
  if (r.subject) properties[r.subjectKind] = truncate(r.subject, MAX_IDENTITY_VALUE);
  if (r.targetKind) properties[r.targetKind] = truncate(r.target, MAX_IDENTITY_VALUE);
  properties.count = String(r.count);
  properties.firstSeen = new Date(r.firstSeenMillis).toISOString();
  properties.lastSeen = new Date(r.lastSeenMillis).toISOString();
  properties.resultID = resultId(r, workload);
  const out: ReportResult = {
    policy: r.policy,
    rule: r.rule,
    result: r.result,
    source: SOURCE,
    category: r.category,
    message: truncate(r.message, MAX_DETAIL_VALUE),
    scored: false,
    timestamp: timestamp(r.lastSeenMillis),
    properties,
  };
  if (r.severity) out.severity = r.severity;
  return out;
}

export interface BuildOptions {
  flavor: ReportFlavor;
  node: string;
  /** Byte budget of the whole object; results are evicted (least important first) to fit. */
  maxBytes: number;
}

/** The object to apply. Evicts from `results` what does not fit in the byte budget. */
export function buildReport(scope: ReportScope, results: ReportResults, options: BuildOptions): ReportObject {
  const kinds = REPORT_KINDS[options.flavor];
  const w = scope.workload;
  const labels: Record<string, string> = { [MANAGED_BY_LABEL]: SOURCE, [NODE_LABEL]: labelValue(options.node) };
  if (w.uid) labels[WORKLOAD_UID_LABEL] = w.uid;
  const report: ReportObject = {
    apiVersion: kinds.apiVersion,
    kind: scope.namespace === undefined ? kinds.cluster : kinds.namespaced,
    metadata: { name: reportName(scope, options.node), labels, annotations: { [NODE_ANNOTATION]: options.node } },
    scope: { ...w },
    summary: results.summary(),
    results: [],
  };
  if (scope.namespace !== undefined) report.metadata.namespace = scope.namespace;
  // Garbage-collected with its workload (or node); never with blockOwnerDeletion, which
  // would need update rights on the owner's finalizers.
  if (w.uid) report.metadata.ownerReferences = [{ apiVersion: w.apiVersion, kind: w.kind, name: w.name, uid: w.uid }];
  if (options.flavor === "openreports") report.source = SOURCE;

  const workload = workloadKey(scope);
  const rendered = new Map(results.list().map((r) => [resultKey(r), renderResult(r, workload)]));
  const size = (value: unknown) => Buffer.byteLength(JSON.stringify(value));
  // Room for the annotation's digits and the summary's, which may grow by eviction.
  results.evictToFit(options.maxBytes, size(report) + 64, (r) => size(rendered.get(resultKey(r))) + 1);
  report.metadata.annotations[EVICTED_ANNOTATION] = String(results.evicted);
  report.summary = results.summary();
  report.results = results.list().map((r) => rendered.get(resultKey(r))!);
  return report;
}

const IDENTITY_PROPERTIES = new Set(["action", "count", "firstSeen", "lastSeen", "resultID"]);
const TARGET_OF_HOOK: Record<string, Observation["targetKind"]> = { "file.open": "path", "net.connect": "address" };

/** The results of a stored report of ours, to continue from after an agent restart. */
export function resultsOfReport(object: Partial<ReportObject>, maxResults: number): ReportResults {
  const results = new ReportResults(maxResults);
  for (const r of object.results ?? []) {
    const p = r.properties ?? {};
    const count = Number(p.count);
    const first = Date.parse(p.firstSeen ?? "");
    const last = Date.parse(p.lastSeen ?? "");
    if (!r.policy || !r.rule || !p.action || !(count > 0) || !Number.isFinite(first) || !Number.isFinite(last)) continue;
    // Which properties are the result's identity follows from its category (the hook).
    const podSpec = r.category === POD_CHECK_CATEGORY;
    const subjectKind: Observation["subjectKind"] = podSpec ? "image" : "binary";
    const targetKind = podSpec ? (p.container !== undefined ? "container" : undefined) : TARGET_OF_HOOK[r.category ?? ""];
    const details: Record<string, string> = {};
    for (const [name, value] of Object.entries(p)) if (!IDENTITY_PROPERTIES.has(name) && name !== subjectKind && name !== targetKind) details[name] = value;
    results.merge({
      policy: r.policy,
      rule: r.rule,
      result: RESULT_VALUES.includes(r.result) ? r.result : "warn",
      severity: (SEVERITIES as readonly string[]).includes(r.severity ?? "") ? r.severity : undefined,
      action: p.action,
      category: r.category ?? "",
      subject: p[subjectKind] ?? "",
      subjectKind,
      target: (targetKind && p[targetKind]) || "",
      targetKind,
      message: r.message ?? "",
      timeMillis: last,
      details,
      count,
      firstSeenMillis: first,
      lastSeenMillis: last,
      ...(podSpec && { countedUntilMillis: last }),
    });
  }
  results.evicted = Number(object.metadata?.annotations?.[EVICTED_ANNOTATION]) || 0;
  return results;
}
