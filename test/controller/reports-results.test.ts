// The pure half of PolicyReports: aggregation of repeats, the bound and its eviction order,
// the byte budget, summaries, result ids, and reading a stored report back.

import { describe, expect, it } from "vitest";
import type { RuntimeEvent } from "../../src/events/event.ts";
import { buildReport, EVICTED_ANNOTATION, reportName, resultsOfReport, type ReportScope } from "../../src/controller/reports/format.ts";
import { podSpecFindings } from "../../src/controller/reports/pod-checks.ts";
import { observationOfEvent, ReportResults, resultId, type Observation } from "../../src/controller/reports/results.ts";
import type { Severity } from "../../src/policy/model.ts";

const T0 = Date.parse("2026-11-24T12:00:00.000Z");

function exec(binary: string, overrides: Partial<RuntimeEvent> = {}): RuntimeEvent {
  return {
    time: new Date(T0).toISOString(),
    node: "node-a",
    hook: "process.exec",
    action: "killed",
    policy: "no-shells",
    rule: "shells",
    severity: "high",
    process: { pid: 10, uid: 0, binary },
    parent: { pid: 9, binary: "/usr/bin/python3" },
    k8s: { namespace: "prod", pod: "api-1", container: "app", image: "api:1" },
    ...overrides,
  };
}

function observation(subject: string, severity: Severity, timeMillis: number): Observation {
  return observationOfEvent(exec(subject, { severity, time: new Date(timeMillis).toISOString() }), 0)!;
}

const deployment: ReportScope = { namespace: "prod", workload: { apiVersion: "apps/v1", kind: "Deployment", name: "api", namespace: "prod", uid: "u-1" } };

describe("observations of events", () => {
  it("map actions to results: fail when Palisade stopped it, warn when it only saw it", () => {
    const result = (action: RuntimeEvent["action"]) => observationOfEvent(exec("/bin/sh", { action }), 0)!.result;
    expect([result("denied"), result("killed"), result("audited"), result("monitor")]).toEqual(["fail", "fail", "warn", "warn"]);
  });

  it("keep the event's own time, the target of each hook, and skip events no policy decided", () => {
    const open = observationOfEvent(exec("/bin/cat", { hook: "file.open", action: "denied", file: { path: "/etc/shadow" } }), 0)!;
    expect(open).toMatchObject({ subject: "/bin/cat", target: "/etc/shadow", targetKind: "path", category: "file.open", timeMillis: T0 });
    expect(open.message).toBe("open of /etc/shadow by /bin/cat: denied");
    const connect = observationOfEvent(exec("/usr/bin/curl", { hook: "net.connect", net: { family: "ipv6", protocol: "tcp", daddr: "fd00::1", dport: 443 } }), 0)!;
    expect(connect).toMatchObject({ target: "[fd00::1]:443/tcp", targetKind: "address" });
    expect(observationOfEvent(exec("/bin/sh", { time: undefined }), 1234)!.timeMillis).toBe(1234);
    expect(observationOfEvent(exec("/bin/sh", { policy: undefined }), 0)).toBeUndefined();
    expect(observationOfEvent(exec("/bin/sh", { severity: "bogus" }), 0)!.severity).toBeUndefined();
  });
});

describe("ReportResults", () => {
  it("aggregates repeats into one result: count, first and last seen, latest context", () => {
    const results = new ReportResults(10);
    results.add(observation("/bin/sh", "high", T0 + 5000));
    results.add(observation("/bin/sh", "high", T0));
    const late = observation("/bin/sh", "high", T0 + 9000);
    late.details.pod = "api-2";
    results.add(late);
    results.add(observation("/bin/bash", "high", T0));
    expect(results.size).toBe(2);
    const sh = results.list().find((r) => r.subject === "/bin/sh")!;
    expect(sh).toMatchObject({ count: 3, firstSeenMillis: T0, lastSeenMillis: T0 + 9000 });
    expect(sh.details.pod).toBe("api-2");
  });

  it("evicts the lowest severity first, and among equals the one seen least recently", () => {
    const results = new ReportResults(3);
    results.add(observation("/a", "critical", T0));
    results.add(observation("/b", "low", T0 + 1));
    results.add(observation("/c", "low", T0 + 2));
    results.add(observation("/d", "medium", T0 + 3)); // evicts /b (low, older)
    expect(results.list().map((r) => r.subject)).toEqual(["/a", "/d", "/c"]);
    results.add(observation("/e", "info", T0 + 4)); // the newcomer itself is least important
    expect(results.list().map((r) => r.subject)).toEqual(["/a", "/d", "/c"]);
    results.add(observation("/c", "low", T0 + 10)); // a repeat never evicts
    expect(results.evicted).toBe(2);
    expect(results.list().find((r) => r.subject === "/c")!.count).toBe(2);
  });

  it("recomputes the summary from the results it holds", () => {
    const results = new ReportResults(5);
    results.add(observation("/bin/sh", "high", T0));
    results.add(observationOfEvent(exec("/bin/ls", { action: "audited" }), 0)!);
    results.add(observationOfEvent(exec("/bin/ls", { action: "audited" }), 0)!);
    expect(results.summary()).toEqual({ pass: 0, fail: 1, warn: 1, error: 0, skip: 0 });
  });

  it("refuses a bound that is not a positive integer", () => {
    expect(() => new ReportResults(0)).toThrow("maxResults must be a positive integer, not 0");
  });
});

describe("report objects", () => {
  it("stay within the byte budget by evicting the least important results", () => {
    const results = new ReportResults(1000);
    for (let i = 0; i < 200; i++) results.add(observation(`/opt/${"x".repeat(2000)}/${i}`, i < 10 ? "critical" : "low", T0 + i));
    const report = buildReport(deployment, results, { flavor: "wgpolicyk8s", node: "node-a", maxBytes: 64 * 1024 });
    const size = Buffer.byteLength(JSON.stringify(report));
    expect(size).toBeLessThanOrEqual(64 * 1024);
    expect(report.results.length).toBeGreaterThan(10);
    expect(report.results.length).toBeLessThan(200);
    expect(report.results.slice(0, 10).every((r) => r.severity === "critical")).toBe(true);
    expect(report.summary.fail).toBe(report.results.length);
    expect(report.metadata.annotations[EVICTED_ANNOTATION]).toBe(String(200 - report.results.length));
  });

  it("carry a stable result id: same policy, rule, workload, binary and target, on any node", () => {
    const o = observation("/bin/sh", "high", T0);
    const later = observation("/bin/sh", "high", T0 + 60_000);
    expect(resultId(o, "Deployment/prod/api")).toBe(resultId(later, "Deployment/prod/api"));
    expect(resultId(o, "Deployment/prod/api")).not.toBe(resultId(o, "Deployment/prod/web"));
    expect(resultId(o, "Deployment/prod/api")).not.toBe(resultId({ ...o, target: "/x" }, "Deployment/prod/api"));
    const results = new ReportResults(5);
    results.add(o);
    const onA = buildReport(deployment, results, { flavor: "wgpolicyk8s", node: "node-a", maxBytes: 1 << 20 });
    const onB = buildReport(deployment, results, { flavor: "wgpolicyk8s", node: "node-b", maxBytes: 1 << 20 });
    expect(onA.metadata.name).toBe("palisade-deployment-api-node-a");
    expect(onB.metadata.name).toBe("palisade-deployment-api-node-b");
    expect(onA.results[0]!.properties.resultID).toBe(onB.results[0]!.properties.resultID);
  });

  it("name long workloads within 253 characters, distinctly", () => {
    const long = (name: string): ReportScope => ({ namespace: "ns", workload: { apiVersion: "v1", kind: "Pod", name, namespace: "ns" } });
    const a = reportName(long("a".repeat(250)), "node-a");
    const b = reportName(long("a".repeat(251)), "node-a");
    expect(a.length).toBeLessThanOrEqual(253);
    expect(a).not.toBe(b);
    expect(a).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
  });

  it("read back pod-spec findings so that a start counted before a restart is not counted again", () => {
    const pod = { metadata: { name: "p", namespace: "ns", uid: "u" }, spec: { containers: [{ name: "c", image: "i", securityContext: { privileged: true } }] }, status: { containerStatuses: [{ name: "c", image: "i", imageID: "", ready: true, restartCount: 0, state: { running: { startedAt: new Date(T0) } } }] } };
    const [finding] = podSpecFindings(pod);
    const before = new ReportResults(5);
    before.add(finding!.observation);
    const back = resultsOfReport(buildReport(deployment, before, { flavor: "wgpolicyk8s", node: "node-a", maxBytes: 1 << 20 }), 5);
    back.add(finding!.observation); // listed again after the restart
    expect(back.list()[0]!.count).toBe(1);
    back.add({ ...finding!.observation, timeMillis: T0 + 60_000 }); // a container restart
    expect(back.list()[0]).toMatchObject({ count: 2, subject: "i", target: "c", targetKind: "container", subjectKind: "image" });
  });

  it("read back into the same results, counts and eviction tally included", () => {
    const results = new ReportResults(5);
    results.add(observation("/bin/sh", "high", T0));
    results.add(observation("/bin/sh", "high", T0 + 1000));
    results.add(observationOfEvent(exec("/bin/cat", { hook: "file.open", action: "denied", file: { path: "/etc/shadow" } }), 0)!);
    results.evicted = 7;
    const report = buildReport(deployment, results, { flavor: "openreports", node: "node-a", maxBytes: 1 << 20 });
    const back = resultsOfReport(report, 5);
    expect(back.list()).toEqual(results.list());
    expect(back.evicted).toBe(7);
    // and renders to the very same object
    expect(buildReport(deployment, back, { flavor: "openreports", node: "node-a", maxBytes: 1 << 20 })).toEqual(report);
  });
});
