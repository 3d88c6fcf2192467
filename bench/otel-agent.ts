// The whole path the goal names, in a real agent: processes open a file an audit rule
// watches, at a set rate; the kernel writes each decision to the ring buffer, the agent
// (`bin/palisade run`, its own pin directory) decodes it and hands it to the JSON lines,
// observe and OTel outputs, and the OTel sink exports to a real collector. Per rate: how
// many events the kernel recorded, how many the ring buffer lost, how many the OTel sink
// exported or dropped (all from the agent's /metrics), the agent's peak RSS and its CPU
// per 10,000 events. "No loss before the exporter": no ring-buffer drop, no sink drop.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { startCollector } from "../test/e2e/otel/collector.ts";

const ROOT = join(import.meta.dirname, "..");
const RATES = [5_000, 10_000, 20_000, 40_000, 60_000, 100_000];
const TRIAL_SECONDS = 4;
const PIN_DIR = "/sys/fs/bpf/palisade-bench-otel-agent";

interface Row {
  rate: number;
  opened: number;
  kernelRecords: number;
  ringbufDrops: number;
  exported: number;
  otelDropped: number;
  /** Still in the sink when the trial gave up waiting (30 s): neither exported nor dropped yet. */
  pending: number;
  maxRssMiB: number;
  cpuMsPer10k: number;
}

export async function benchOtelAgent(): Promise<string> {
  const collector = await startCollector({ output: "count" });
  const dir = mkdtempSync(join(tmpdir(), "palisade-bench-otel-agent-"));
  const watched = join(dir, "watched");
  writeFileSync(watched, "x");
  mkdirSync(join(dir, "policies"));
  writeFileSync(join(dir, "policies", "audit.yaml"),
    `apiVersion: palisade.dev/v1alpha1\nkind: TracingPolicy\nmetadata: {name: bench}\nspec:\n  rules:\n` +
    `    - {name: watched, hook: file.open, match: 'file.path == "${watched}"', action: audit, severity: info}\n`);
  const rows: Row[] = [];
  try {
    for (const rate of RATES) rows.push(await trial(rate, dir, watched, collector.grpcEndpoint));
  } finally {
    await collector.dispose();
  }
  return [
    "| offered opens/s (grpc) | kernel records | ring-buffer drops | exported to the collector | dropped by the OTel sink | still pending after 30 s | agent peak RSS | agent CPU per 10,000 events |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...rows.map((r) => `| ${r.rate.toLocaleString("en-US")} (${r.opened.toLocaleString("en-US")} in ${TRIAL_SECONDS} s) | ${r.kernelRecords.toLocaleString("en-US")} | ${r.ringbufDrops.toLocaleString("en-US")} | ${r.exported.toLocaleString("en-US")} | ${r.otelDropped.toLocaleString("en-US")} | ${r.pending.toLocaleString("en-US")} | ${r.maxRssMiB} MiB | ${r.cpuMsPer10k} ms |`),
    "",
    `collector ${collector.version}; load average ${loadavg()[0]!.toFixed(1)} at the end (the machine is shared)`,
  ].join("\n");
}

async function trial(rate: number, dir: string, watched: string, endpoint: string): Promise<Row> {
  const agent = spawn(join(ROOT, "bin", "palisade"), ["run", "--policies", join(dir, "policies"), "--events-file", "/dev/null", "--pin-dir", PIN_DIR,
    "--metrics-address", "127.0.0.1:0", "--observe-socket", join(dir, "observe.sock")], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" },
  });
  let log = "";
  agent.stderr!.setEncoding("utf8").on("data", (d: string) => (log += d));
  try {
    const url = await until(() => /metrics on (http:\/\/\S+\/metrics)/.exec(log)?.[1], () => `agent did not start:\n${log}`);
    await until(() => /enforcing plan/.test(log), () => log);
    const before = await scrape(url);
    const cpuBefore = cpuMillis(agent.pid!);
    // The opener: a process of its own, opening and closing the file at `rate` per second.
    const opener = spawn(process.execPath, ["-e", `
      const fs = require("fs"); const total = ${rate * TRIAL_SECONDS}; let done = 0; const t0 = performance.now();
      const tick = () => { const due = Math.min(total, Math.floor(${rate} * (performance.now() - t0) / 1000));
        while (done < due) { fs.closeSync(fs.openSync(${JSON.stringify(watched)}, "r")); done++; }
        if (done < total) setTimeout(tick, 1); else console.log(done); };
      tick();`], { stdio: ["ignore", "pipe", "inherit"] });
    let opened = "";
    opener.stdout!.setEncoding("utf8").on("data", (d: string) => (opened += d));
    let maxRss = 0;
    const sampler = setInterval(() => (maxRss = Math.max(maxRss, rssMiB(agent.pid!))), 100);
    await new Promise((resolve) => opener.once("exit", resolve));
    // Settled: the sink exported or dropped every event the kernel recorded (or 30 s passed).
    let after = await scrape(url);
    const delta = (series: string) => after(series) - before(series);
    const settled = Date.now() + 30_000;
    const otelDone = () => delta('palisade_exported_events_total{sink="otel"}') + delta('palisade_export_dropped_events_total{sink="otel"}');
    while (otelDone() < delta("palisade_kernel_records_total") && Date.now() < settled) {
      await new Promise((r) => setTimeout(r, 200));
      after = await scrape(url);
    }
    clearInterval(sampler);
    const cpu = cpuMillis(agent.pid!) - cpuBefore;
    const kernelRecords = delta("palisade_kernel_records_total");
    return {
      rate, opened: Number(opened.trim()), kernelRecords, ringbufDrops: delta("palisade_ringbuf_dropped_events_total"),
      exported: delta('palisade_exported_events_total{sink="otel"}'), otelDropped: delta('palisade_export_dropped_events_total{sink="otel"}'),
      pending: kernelRecords - otelDone(), maxRssMiB: maxRss, cpuMsPer10k: Math.round((cpu / Math.max(1, kernelRecords)) * 10_000),
    };
  } finally {
    await stop(agent);
  }
}

async function scrape(url: string): Promise<(series: string) => number> {
  const text = await (await fetch(url)).text();
  const values = new Map<string, number>();
  for (const line of text.split("\n")) if (line && !line.startsWith("#")) values.set(line.slice(0, line.lastIndexOf(" ")), Number(line.slice(line.lastIndexOf(" ") + 1)));
  return (series) => values.get(series) ?? 0;
}

async function until<T>(probe: () => T | undefined | false, describe: () => string, timeoutMillis = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMillis;
  for (;;) {
    const found = probe();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(describe());
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  child.kill("SIGTERM");
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** User + system CPU of a process in ms (clock ticks are 10 ms on Linux). */
function cpuMillis(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function rssMiB(pid: number): number {
  try {
    return Math.round(Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024);
  } catch {
    return 0;
  }
}

if (import.meta.main) console.log(await benchOtelAgent());
