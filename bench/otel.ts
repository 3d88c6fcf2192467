// OTel sink throughput: the highest rate of sink.write() that a real collector (built by
// test/e2e/otel/build, on this machine, counting what it receives) takes with nothing
// dropped, per protocol; the agent's RSS at that rate; CPU per 10,000 events in the agent
// (main thread and export worker) and in the collector; and what happens at the goal rate.
//
// Three processes, so that each number is of one thing: benchOtel() (synchronous, for
// bench/run.ts) runs this file as the coordinator, which owns the collector and runs every
// trial in a fresh driver process that holds nothing but the sink and its events.

import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import type { RuntimeEvent } from "../src/events/event.ts";
import { OTLP_PROTOCOLS, otlpLogsConfigFromEnv, type OtlpProtocol } from "../src/sinks/otel-config.ts";
import { OtelSink } from "../src/sinks/otel.ts";
import { startCollector, type Collector } from "../test/e2e/otel/collector.ts";
import { BACKENDS, samples } from "../test/e2e/otel/samples.ts";

const GOAL_PER_SECOND = 100_000;
const TRIAL_SECONDS = 4;
/** A rate is sustained when nothing was dropped and the backlog left when writing stops drains within this. */
const MAX_DRAIN_MILLIS = 1_000;
const FIRST_RATE = 5_000;
const BISECTIONS = 3;

interface Trial {
  rate: number;
  written: number;
  /** During the trial; exportedInAll adds the warm-up. */
  exported: number;
  exportedInAll: number;
  dropped: number;
  drainMillis: number;
  maxRssBytes: number;
  cpuMicros: number;
}

interface TrialResult extends Trial {
  received: number;
  collectorCpuMicros: number;
}

export function benchOtel(): string {
  const run = spawnSync(process.execPath, [import.meta.filename, "coordinate"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  if (run.status !== 0) throw new Error(`bench/otel.ts coordinate failed (exit ${run.status ?? run.signal})`);
  return run.stdout.trimEnd();
}

async function coordinate(): Promise<void> {
  const collector = await startCollector({ output: "count" });
  try {
    const rows = [
      "| protocol | sustained events/s, nothing dropped | agent RSS at that rate | agent CPU per 10,000 events | collector CPU per 10,000 events | at 100,000/s offered: exported/s, dropped |",
      "|---|---:|---:|---:|---:|---:|",
    ];
    for (const protocol of OTLP_PROTOCOLS) {
      const best = await highestSustainedRate(collector, protocol);
      const atGoal = await trial(collector, protocol, GOAL_PER_SECOND);
      const perTenThousand = (micros: number, t: Trial) => `${((micros / 1000 / t.written) * 10_000).toFixed(0)} ms`;
      rows.push(
        `| ${protocol} | ${best ? best.rate.toLocaleString("en-US") : "none"} | ${best ? `${(best.maxRssBytes / 2 ** 20).toFixed(0)} MiB` : "–"} | ` +
          `${best ? perTenThousand(best.cpuMicros, best) : "–"} | ${best ? perTenThousand(best.collectorCpuMicros, best) : "–"} | ` +
          `${Math.round(atGoal.exported / (TRIAL_SECONDS + atGoal.drainMillis / 1000)).toLocaleString("en-US")}/s, ${((100 * atGoal.dropped) / atGoal.written).toFixed(0)} % |`,
      );
    }
    const machine = `collector ${collector.version}; ${TRIAL_SECONDS} s per trial; load average ${loadavg()[0]!.toFixed(1)} at the end (the machine is shared)`;
    console.log(`${rows.join("\n")}\n\n${machine}`);
  } finally {
    await collector.dispose();
  }
}

/** Doubles the rate until a trial fails, then bisects between the last success and the failure. */
async function highestSustainedRate(collector: Collector, protocol: OtlpProtocol): Promise<TrialResult | undefined> {
  let best: TrialResult | undefined;
  let failed: number | undefined;
  for (let rate = FIRST_RATE; failed === undefined && rate <= 4 * GOAL_PER_SECOND; rate *= 2) {
    const result = await trial(collector, protocol, rate);
    if (sustained(result)) best = result;
    else failed = rate;
  }
  for (let i = 0; i < BISECTIONS && failed !== undefined; i++) {
    const rate = Math.round(((best?.rate ?? 0) + failed) / 2 / 1000) * 1000;
    const result = await trial(collector, protocol, rate);
    if (sustained(result)) best = result;
    else failed = rate;
  }
  return best;
}

const sustained = (t: TrialResult) => t.dropped === 0 && t.drainMillis <= MAX_DRAIN_MILLIS;

async function trial(collector: Collector, protocol: OtlpProtocol, rate: number): Promise<TrialResult> {
  const before = collector.recordCount();
  const collectorCpuBefore = cpuMicrosOf(collector.pid()!);
  const endpoint = protocol === "grpc" ? collector.grpcEndpoint : collector.httpEndpoint;
  const driver = spawn(process.execPath, [import.meta.filename, "drive", protocol, endpoint, String(rate)], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  driver.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  const code = await new Promise((resolve) => driver.once("close", resolve));
  if (code !== 0) throw new Error(`bench/otel.ts drive ${protocol} ${rate} failed (exit ${code})`);
  const result = JSON.parse(out) as Trial;
  const collectorCpuMicros = cpuMicrosOf(collector.pid()!) - collectorCpuBefore;
  // What the sink counted as exported must have arrived: a loss after the exporter would
  // make every number here wrong.
  await collector.waitForRecords(before + result.exportedInAll, 30_000);
  const received = collector.recordCount() - before;
  if (received !== result.exportedInAll) throw new Error(`${protocol} at ${rate}/s: the sink exported ${result.exportedInAll}, the collector received ${received}`);
  process.stderr.write(`otel bench: ${protocol} ${rate}/s: ${JSON.stringify(result)}\n`);
  return { ...result, received, collectorCpuMicros };
}

/** User + system CPU time of a process, from /proc (clock ticks are 10 ms on Linux). */
function cpuMicrosOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** One trial, in a process of its own: writes at `rate` for TRIAL_SECONDS, prints a Trial. */
async function drive(protocol: OtlpProtocol, endpoint: string, rate: number): Promise<void> {
  const sink = new OtelSink(otlpLogsConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: protocol })!, {
    backends: BACKENDS,
    ruleVersion: () => "bench",
  });
  const events = eventPool();
  // The worker's start and the first connection are not what is measured.
  for (let i = 0; i < 1_000; i++) sink.write(events[i % events.length]!);
  await sink.flush();
  const warm = { exported: sink.exported, dropped: sink.dropped };


  let maxRssBytes = process.memoryUsage.rss();
  const sampler = setInterval(() => (maxRssBytes = Math.max(maxRssBytes, process.memoryUsage.rss())), 100);
  const cpuBefore = process.cpuUsage(); // the whole process: main thread and export worker
  const started = performance.now();
  const total = rate * TRIAL_SECONDS;
  let written = 0;
  // Every millisecond, what is due: like a ring buffer drained on a timer, and without a
  // busy loop that would take the CPU the sink and the collector need.
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor((rate * (performance.now() - started)) / 1000));
      while (written < due) sink.write(events[written++ % events.length]!);
      if (written < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  const writingEnded = performance.now();
  await sink.flush();
  const drainMillis = performance.now() - writingEnded;
  const cpu = process.cpuUsage(cpuBefore);
  clearInterval(sampler);
  const trial: Trial = {
    rate, written, exported: sink.exported - warm.exported, exportedInAll: sink.exported, dropped: sink.dropped - warm.dropped,
    drainMillis: Math.round(drainMillis), maxRssBytes, cpuMicros: cpu.user + cpu.system,
  };
  await sink.close();
  console.log(JSON.stringify(trial));
}

/** Varied like real traffic: every hook and action, different pids, paths and addresses. */
function eventPool(): RuntimeEvent[] {
  return Array.from({ length: 4_096 }, (_, i) => {
    const event = structuredClone(samples(10_000 + i)[i % 5]!.event);
    if (event.file) event.file.path = `${event.file.path}.${i}`;
    if (event.process.args) event.process.args = [...event.process.args, `--request=${i}`];
    if (event.net?.family === "ipv4") event.net.daddr = `10.${(i >> 8) & 255}.${i & 255}.7`;
    return event;
  });
}

if (import.meta.main) {
  const [mode, ...args] = process.argv.slice(2);
  if (mode === "coordinate") await coordinate();
  else if (mode === "drive") await drive(args[0] as OtlpProtocol, args[1]!, Number(args[2]));
  else console.log(benchOtel());
}
