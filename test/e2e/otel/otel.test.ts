// The OTel sink against a real OpenTelemetry Collector (built by ./build, started by
// collector.ts): every field over every protocol, an outage, and a sink that never blocks.
// A missing Go toolchain or a failed build fails these tests; they never skip.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RuntimeEvent } from "../../../src/events/event.ts";
import { OTLP_PROTOCOLS, otlpLogsConfigFromEnv, type OtlpProtocol } from "../../../src/sinks/otel-config.ts";
import { CHUNK_SIZE, OtelSink, type OtelSinkOptions } from "../../../src/sinks/otel.ts";
import { startCollector, type Collector } from "./collector.ts";
import { BACKENDS, RULE_VERSION, samples } from "./samples.ts";

// A cold build of the collector takes minutes.
const BUILD_TIMEOUT = 20 * 60_000;

/**
 * A collector for the tests of the enclosing describe. If it cannot be built or started,
 * every test fails with the reason (a failing beforeAll would only mark them skipped).
 */
function useCollector(): () => Collector {
  let collector: Collector | undefined;
  let failure: unknown;
  beforeAll(async () => {
    try {
      collector = await startCollector();
    } catch (e) {
      failure = e;
    }
  }, BUILD_TIMEOUT);
  afterAll(() => collector?.dispose());
  return () => {
    if (!collector) throw failure;
    return collector;
  };
}

function sinkFor(collector: Collector, protocol: OtlpProtocol, env: Record<string, string> = {}, options: OtelSinkOptions = {}): OtelSink {
  const endpoint = protocol === "grpc" ? collector.grpcEndpoint : collector.httpEndpoint;
  const config = otlpLogsConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: protocol, ...env })!;
  return new OtelSink(config, { backends: BACKENDS, ruleVersion: () => RULE_VERSION, ...options });
}

describe("OTel sink → real collector", () => {
  const theCollector = useCollector();

  // Each protocol (and gzip) gets its own pids, so its records can be told apart.
  const cases: [string, OtlpProtocol, Record<string, string>][] = [
    ...OTLP_PROTOCOLS.map((p): [string, OtlpProtocol, Record<string, string>] => [p, p, {}]),
    ["http/protobuf with gzip", "http/protobuf", { OTEL_EXPORTER_OTLP_COMPRESSION: "gzip" }],
  ];

  it.each(cases.map(([name, protocol, env], i) => [name, protocol, env, 10_000 + i] as const))(
    "%s: records arrive with their EventName, timestamp, severity, body, attributes and resource",
    async (_, protocol, env, pid) => {
      const collector = theCollector();
      const sink = sinkFor(collector, protocol, { OTEL_EXPORTER_OTLP_HEADERS: "x-palisade-test=1", ...env });
      const expected = samples(pid);
      const before = collector.recordCount();
      for (const { event } of expected) sink.write(event);
      await sink.flush();
      expect([sink.exported, sink.dropped, sink.pending]).toEqual([expected.length, 0, 0]);
      await sink.close();

      await collector.waitForRecords(before + expected.length);
      const received = collector.records().filter((r) => r.attributes["process.pid"] === pid);
      expect(received.map(({ eventName, timeUnixNano, severityNumber, severityText, body, attributes }) => ({ eventName, timeUnixNano, severityNumber, severityText, body, attributes })))
        .toEqual(expected.map((s) => s.expected));
      for (const record of received) {
        expect(record.scope).toBe("palisade");
        expect(record.resource).toMatchObject({ "service.name": "palisade", "telemetry.sdk.language": "nodejs" });
        expect(typeof record.resource["host.name"]).toBe("string");
        expect(BigInt(record.observedTimeUnixNano!)).toBeGreaterThan(BigInt(record.timeUnixNano!));
      }
    },
  );
});

describe("a collector outage", () => {
  const theCollector = useCollector();

  const event = (pid: number): RuntimeEvent => ({ ...samples(pid)[1]!.event });
  const writeRange = (sink: OtelSink, from: number, count: number) => {
    for (let pid = from; pid < from + count; pid++) sink.write(event(pid));
  };
  const pidsIn = (from: number, count: number) => theCollector().records().filter((r) => (r.attributes["process.pid"] as number) >= from && (r.attributes["process.pid"] as number) < from + count);

  it("stop, send N, restart, send M: only counted events are lost, and those after the restart arrive", async () => {
    const collector = theCollector();
    const sink = sinkFor(collector, "http/protobuf", { OTEL_EXPORTER_OTLP_TIMEOUT: "3000" }, { warn: () => {} });
    writeRange(sink, 100_000, 50);
    await sink.flush();
    expect(sink.exported).toBe(50);

    await collector.stop();
    writeRange(sink, 200_000, 500); // N
    await collector.restart();
    writeRange(sink, 300_000, 300); // M
    await sink.flush();

    expect(sink.pending).toBe(0);
    expect(sink.exported + sink.dropped).toBe(50 + 500 + 300);
    await collector.waitForRecords(sink.exported);
    // Nothing uncounted: the collector has exactly what the sink says it exported.
    expect(collector.recordCount()).toBe(sink.exported);
    expect(pidsIn(300_000, 300)).toHaveLength(300);
    expect(pidsIn(200_000, 500)).toHaveLength(500 - sink.dropped);
    await sink.close();
  });

  // Each protocol's pids start at its own million: the three runs share the collector.
  it.each(OTLP_PROTOCOLS.map((p, i) => [p, (i + 1) * 1_000_000] as const))("%s: drops what fails for longer than the export timeout, says so once, and says when it works again", async (protocol, base) => {
    const collector = theCollector();
    const warnings: string[] = [];
    const sink = sinkFor(collector, protocol, { OTEL_EXPORTER_OTLP_TIMEOUT: "1000" }, { warn: (m) => warnings.push(m) });
    await collector.stop();
    writeRange(sink, base, 700);
    await sink.flush(); // every export fails when its timeout runs out
    expect([sink.exported, sink.dropped, sink.pending]).toEqual([0, 700, 0]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^otel: dropped 700 event\(s\): exporting them to http:\/\/127\.0\.0\.1:\d+\/\S* failed: /);

    await collector.restart();
    // gRPC reconnects on its own backoff schedule: probe until exports succeed again.
    let written = 700;
    const deadline = Date.now() + 30_000;
    while (sink.exported === 0) {
      if (Date.now() > deadline) throw new Error(`no export succeeded within 30 s of the collector's restart: ${warnings.join("\n")}`);
      writeRange(sink, base + written, 10);
      written += 10;
      await sink.flush();
    }
    expect(warnings[1]).toMatch(/^otel: exporting to http:\/\/127\.0\.0\.1:\d+\/\S* works again; \d+ more event\(s\) dropped since the last warning$/);
    const before = collector.recordCount();
    writeRange(sink, base + 500_000, 200);
    await sink.flush();
    expect(sink.exported + sink.dropped).toBe(written + 200);
    await collector.waitForRecords(before + 200);
    expect(pidsIn(base + 500_000, 200)).toHaveLength(200);
    expect(pidsIn(base, 700)).toHaveLength(0);
    await sink.close();
  });

  it("write() returns at once with the collector down, memory stays bounded, and exporting resumes", async () => {
    const collector = theCollector();
    const maxPendingBytes = 2 * 2 ** 20;
    const sink = sinkFor(collector, "http/protobuf", {}, { maxPendingBytes, warn: () => {} });
    const total = 100_000;
    const events = Array.from({ length: total }, (_, i) => event(600_000 + i));
    // The sink hands events over CHUNK_SIZE at a time; the bound applies to what it handed over.
    const chunkBytes = JSON.stringify(events.slice(0, CHUNK_SIZE)).length;
    await collector.stop();

    const took: number[] = [];
    let mostBytes = 0;
    for (const e of events) {
      const t = performance.now();
      sink.write(e);
      took.push(performance.now() - t);
      mostBytes = Math.max(mostBytes, sink.pendingBytes);
    }
    // A write takes about a microsecond, JSON.stringify of a chunk included. The bounds
    // leave a wide margin for a loaded machine; a percentile, because a garbage collection
    // of this test's own 100,000 events can pause any one call.
    took.sort((a, b) => a - b);
    expect(took.reduce((sum, t) => sum + t, 0)).toBeLessThan(2_000);
    expect(took[Math.floor(total * 0.999)]).toBeLessThan(5);
    expect(mostBytes).toBeLessThan(maxPendingBytes + chunkBytes);
    expect(sink.dropped).toBe(total - sink.pending);
    expect(sink.dropped).toBeGreaterThan(total / 2);

    await collector.restart();
    await sink.flush();
    expect(sink.exported + sink.dropped).toBe(total);
    const before = sink.exported;
    writeRange(sink, 800_000, 100);
    await sink.flush();
    expect(sink.exported).toBe(before + 100);
    await collector.waitForRecords(1);
    expect(pidsIn(800_000, 100)).toHaveLength(100);
    await sink.close();
  });
});
