// PolicyReports: the agent-side cost of record() (in memory, per event, during a storm of
// repeats), the size of a full report at the default bound, and the time to write reports
// to a real kube-apiserver (test/e2e/kube) by server-side apply.

import { loadavg } from "node:os";
import { KubeConfig } from "@kubernetes/client-node";
import { buildReport } from "../src/controller/reports/format.ts";
import { DEFAULT_MAX_REPORT_BYTES, DEFAULT_MAX_RESULTS, PolicyReporter } from "../src/controller/reports/index.ts";
import { observationOfEvent, ReportResults } from "../src/controller/reports/results.ts";
import type { RuntimeEvent } from "../src/events/event.ts";
import { startCluster } from "../test/e2e/kube/cluster.ts";

const EVENTS = 1_000_000;
const REPORTS = 100;

function event(i: number, pods: number, distinct: number): RuntimeEvent {
  return {
    time: new Date(Date.UTC(2026, 10, 24, 12) + i).toISOString(),
    hook: "file.open",
    action: "denied",
    policy: "secrets",
    rule: "shadow",
    severity: "high",
    process: { pid: 1000 + (i % 97), uid: 0, binary: `/usr/bin/tool-${i % distinct}` },
    parent: { pid: 1, binary: "/usr/bin/bash" },
    k8s: { namespace: "bench", pod: `app-${i % pods}`, podUid: `uid-${i % pods}`, container: "app", image: "registry.example/app:1" },
    file: { path: "/etc/shadow" },
  };
}

export async function benchReports(): Promise<string> {
  const rows = ["| measure | value |", "|---|---:|"];

  // record(): nothing is written (no flush), so this is the in-memory cost an event storm pays.
  const offline = new KubeConfig();
  offline.loadFromOptions({ clusters: [{ name: "c", server: "https://127.0.0.1:1" }], users: [{ name: "u" }], contexts: [{ name: "x", cluster: "c", user: "u" }], currentContext: "x" });
  const reporter = new PolicyReporter({ kubeConfig: offline, node: "bench", flushIntervalMs: 0 });
  const events = Array.from({ length: 10_000 }, (_, i) => event(i, 10, 50));
  // CPU time, not wall time: the machine is shared, and CPU is what an event storm costs the agent.
  const cpu = process.cpuUsage();
  for (let i = 0; i < EVENTS; i++) reporter.record(events[i % events.length]!);
  const used = process.cpuUsage(cpu);
  const nanosPerEvent = ((used.user + used.system) * 1000) / EVENTS;
  rows.push(`| record(): ${EVENTS.toLocaleString("en")} events, 10 pods × 50 distinct results | ${nanosPerEvent.toFixed(0)} ns CPU per event |`);

  // A full report: the default bound of results with realistic strings.
  const full = new ReportResults(DEFAULT_MAX_RESULTS);
  for (let i = 0; i < DEFAULT_MAX_RESULTS; i++) full.add(observationOfEvent(event(i, 1, DEFAULT_MAX_RESULTS), 0)!);
  const scope = { namespace: "bench", workload: { apiVersion: "apps/v1", kind: "Deployment", name: "app", namespace: "bench", uid: "u" } };
  const size = Buffer.byteLength(JSON.stringify(buildReport(scope, full, { flavor: "wgpolicyk8s", node: "bench", maxBytes: DEFAULT_MAX_REPORT_BYTES })));
  rows.push(`| size of a report with ${DEFAULT_MAX_RESULTS} results (the default bound) | ${(size / 1024).toFixed(1)} KiB (budget ${DEFAULT_MAX_REPORT_BYTES / 1024} KiB; etcd's limit 1,536 KiB) |`);

  // Writes: REPORTS bare pods, each with DEFAULT_MAX_RESULTS results, in one flush; then one more result each.
  const cluster = await startCluster();
  try {
    await cluster.kubectl(["apply", "-f", "api/crds/wgpolicyk8s.io_policyreports.yaml", "-f", "api/crds/wgpolicyk8s.io_clusterpolicyreports.yaml"]);
    await cluster.kubectl(["wait", "--for=condition=Established", "crd/policyreports.wgpolicyk8s.io"]);
    await cluster.kubectl(["create", "namespace", "bench"]);
    await cluster.kubectl(["create", "serviceaccount", "default", "-n", "bench"]);
    const pods = Array.from({ length: REPORTS }, (_, i) => ({ apiVersion: "v1", kind: "Pod", metadata: { name: `app-${i}`, namespace: "bench" }, spec: { containers: [{ name: "app", image: "registry.example/app:1" }] } }));
    await cluster.kubectl(["create", "-f", "-"], { input: JSON.stringify({ apiVersion: "v1", kind: "List", items: pods }) });
    const listed: { items: { metadata: { name: string; uid: string } }[] } = JSON.parse((await cluster.kubectl(["get", "pods", "-n", "bench", "-o", "json"])).stdout);
    const uidOf = new Map(listed.items.map((p) => [p.metadata.name, p.metadata.uid]));
    const uids = pods.map((p) => uidOf.get(p.metadata.name)!);
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(cluster.kubeconfig);
    const writer = new PolicyReporter({ kubeConfig, node: "bench", flushIntervalMs: 0 });
    const forPods = (i: number, distinct: number): RuntimeEvent => ({ ...event(i, REPORTS, distinct), k8s: { namespace: "bench", pod: `app-${i % REPORTS}`, podUid: uids[i % REPORTS] } });
    for (let i = 0; i < REPORTS * DEFAULT_MAX_RESULTS; i++) writer.record(forPods(i, REPORTS * DEFAULT_MAX_RESULTS));
    const timed = async () => {
      const cpu = process.cpuUsage();
      const t = performance.now();
      await writer.flush();
      const used = process.cpuUsage(cpu);
      return { millis: performance.now() - t, cpuMillis: (used.user + used.system) / 1000 };
    };
    const first = await timed();
    for (let i = 0; i < REPORTS; i++) writer.record(forPods(i, 1));
    const second = await timed();
    await writer.close();
    if (writer.stats.writes !== 2 * REPORTS || writer.stats.writeErrors !== 0) throw new Error(`unexpected write stats ${JSON.stringify(writer.stats)}`);
    const describe = (f: { millis: number; cpuMillis: number }) => `${f.millis.toFixed(0)} ms, ${(f.millis / REPORTS).toFixed(1)} ms per report; agent CPU ${(f.cpuMillis / REPORTS).toFixed(1)} ms per report`;
    rows.push(`| first flush: ${REPORTS} new reports of ${DEFAULT_MAX_RESULTS} results (pod lookups, reads for earlier state, applies) | ${describe(first)} |`);
    rows.push(`| next flush: the same ${REPORTS} reports, one more result each (applies only) | ${describe(second)} |`);
  } finally {
    await cluster.stop();
  }
  rows.push(`| load average (1 min) at the end | ${loadavg()[0]!.toFixed(1)} |`);
  return rows.join("\n");
}

if (import.meta.main) console.log(await benchReports());
