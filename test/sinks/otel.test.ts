// The OTel sink without a collector: the event → log record mapping, the configuration
// from OTEL_EXPORTER_OTLP_* variables, the documentation, and the bounds when the
// collector accepts connections but never answers. test/e2e/otel has the real collector.

import { readFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { SeverityNumber } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RuntimeEvent } from "../../src/events/event.ts";
import { otlpLogsConfigFromEnv } from "../../src/sinks/otel-config.ts";
import { logRecordOf, parseImageReference, RULE_UUID_NAMESPACE, ruleUuid } from "../../src/sinks/otel-record.ts";
import { ATTR, EVENT_NAMES } from "../../src/sinks/otel-semconv.ts";
import { CHUNK_SIZE, OtelSink, otelSinkFromEnv, palisadeResourceAttributes } from "../../src/sinks/otel.ts";
import { BACKENDS, RULE_VERSION, samples } from "../e2e/otel/samples.ts";

const resource = resourceFromAttributes({ "service.name": "palisade" });
const observed: [number, number] = [1_800_000_000, 5];

describe("logRecordOf", () => {
  it.each(samples(4242).map((s) => [s.expected.eventName, s] as const))("maps %s with every attribute", (_, { event, expected }) => {
    const record = logRecordOf(event, { backend: BACKENDS[event.hook], ruleVersion: RULE_VERSION }, resource, observed);
    const nanos = BigInt(record.hrTime[0]) * 1_000_000_000n + BigInt(record.hrTime[1]);
    expect({
      eventName: record.eventName,
      timeUnixNano: nanos.toString(),
      severityNumber: record.severityNumber,
      severityText: record.severityText,
      body: record.body,
      attributes: record.attributes,
    }).toEqual(expected);
    expect(record.hrTimeObserved).toEqual(observed);
    expect(record.resource).toBe(resource);
    expect(record.instrumentationScope).toEqual({ name: "palisade" });
  });

  const bare: RuntimeEvent = { hook: "process.exec", process: { pid: 1, uid: 0, binary: "/bin/true" } };

  it("reports an event without an action (recorded test input) as an audit, without rule attributes", () => {
    const record = logRecordOf(bare, {}, resource, observed);
    expect(record.eventName).toBe("palisade.policy.audit");
    expect(record.body).toBe("audited exec of /bin/true (pid 1)");
    expect(record.severityNumber).toBeUndefined();
    expect(record.attributes).toEqual({ "palisade.action": "audited", "palisade.hook": "process.exec", "process.pid": 1, "process.executable.path": "/bin/true", "process.user.id": 0 });
  });

  it("stamps an event without a valid time with the time it was observed", () => {
    expect(logRecordOf(bare, {}, resource, observed).hrTime).toEqual(observed);
    expect(logRecordOf({ ...bare, time: "yesterday" }, {}, resource, observed).hrTime).toEqual(observed);
  });

  it("keeps every digit of the event's time, with or without an offset", () => {
    expect(logRecordOf({ ...bare, time: "2026-11-24T10:00:00.000000001Z" }, {}, resource, observed).hrTime).toEqual([1_795_514_400, 1]);
    expect(logRecordOf({ ...bare, time: "2026-11-24T11:00:00.5+01:00" }, {}, resource, observed).hrTime).toEqual([1_795_514_400, 500_000_000]);
  });

  it.each([
    ["info", SeverityNumber.INFO],
    ["low", SeverityNumber.WARN],
    ["medium", SeverityNumber.WARN3],
    ["high", SeverityNumber.ERROR],
    ["critical", SeverityNumber.FATAL],
    ["unheard-of", SeverityNumber.UNSPECIFIED],
  ])("maps severity %s to %i and keeps the word as severity text", (severity, number) => {
    const record = logRecordOf({ ...bare, severity }, {}, resource, observed);
    expect([record.severityNumber, record.severityText]).toEqual([number, severity]);
  });
});

describe("security_rule.uuid", () => {
  it("is UUIDv5 of <policy>/<rule> in the rules.palisade.dev namespace (values from Python's uuid module)", () => {
    expect(RULE_UUID_NAMESPACE).toBe("b15fd178-9247-550b-9435-4240d5974d04");
    expect(ruleUuid("prod/p", "r")).toBe("79335d22-b8b5-592e-99c4-b262800df227");
  });

  it("tells apart rules that share a name in different policies", () => {
    expect(ruleUuid("a", "r")).not.toBe(ruleUuid("b", "r"));
    expect(ruleUuid("ns/a", "r")).not.toBe(ruleUuid("a", "r"));
  });
});

describe("parseImageReference", () => {
  it.each([
    ["nginx", { name: "nginx" }],
    ["nginx:1.27", { name: "nginx", tag: "1.27" }],
    ["localhost:5000/app", { name: "localhost:5000/app" }],
    ["localhost:5000/team/app:v2", { name: "localhost:5000/team/app", tag: "v2" }],
    ["ghcr.io/o/app@sha256:abcd", { name: "ghcr.io/o/app", digest: "sha256:abcd" }],
    ["ghcr.io/o/app:1@sha256:abcd", { name: "ghcr.io/o/app", tag: "1", digest: "sha256:abcd" }],
  ])("%s", (reference, parts) => {
    expect(parseImageReference(reference)).toEqual(parts);
  });

  it("puts the digest into container.image.repo_digests with the name", () => {
    const record = logRecordOf({ ...samples(1)[0]!.event, k8s: { image: "ghcr.io/o/app@sha256:abcd" } }, {}, resource, observed);
    expect(record.attributes[ATTR.containerImageName]).toBe("ghcr.io/o/app");
    expect(record.attributes[ATTR.containerImageRepoDigests]).toEqual(["ghcr.io/o/app@sha256:abcd"]);
    expect(record.attributes[ATTR.containerImageTags]).toBeUndefined();
  });
});

describe("otlpLogsConfigFromEnv", () => {
  it("leaves the sink off without an endpoint, whatever else is set", () => {
    expect(otlpLogsConfigFromEnv({})).toBeUndefined();
    expect(otlpLogsConfigFromEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_EXPORTER_OTLP_ENDPOINT: " " })).toBeUndefined();
  });

  it("defaults to http/protobuf, 10 s, no compression, no headers, and appends v1/logs to the generic endpoint", () => {
    expect(otlpLogsConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })).toEqual({
      protocol: "http/protobuf", url: "http://collector:4318/v1/logs", headers: {}, timeoutMillis: 10_000, compression: "none",
    });
    expect(otlpLogsConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "https://gw.example/otlp/" })!.url).toBe("https://gw.example/otlp/v1/logs");
    expect(otlpLogsConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "https://gw.example/otlp" })!.url).toBe("https://gw.example/otlp/v1/logs");
  });

  it("uses the logs endpoint as given, in preference to the generic one", () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://generic:4318", OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: "http://logs:9999/custom" };
    expect(otlpLogsConfigFromEnv(env)!.url).toBe("http://logs:9999/custom");
  });

  it("uses a gRPC endpoint as given", () => {
    expect(otlpLogsConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4317", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })!.url).toBe("http://collector:4317/");
  });

  it("prefers every OTEL_EXPORTER_OTLP_LOGS_* variable to its generic one", () => {
    const config = otlpLogsConfigFromEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
      OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_TIMEOUT: "1000", OTEL_EXPORTER_OTLP_LOGS_TIMEOUT: "2500",
      OTEL_EXPORTER_OTLP_COMPRESSION: "none", OTEL_EXPORTER_OTLP_LOGS_COMPRESSION: "gzip",
    })!;
    expect([config.protocol, config.timeoutMillis, config.compression]).toEqual(["http/json", 2500, "gzip"]);
  });

  it("merges headers per key, the logs-specific value winning, values percent-decoded", () => {
    const config = otlpLogsConfigFromEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
      OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20generic,x-tenant=a",
      OTEL_EXPORTER_OTLP_LOGS_HEADERS: "x-tenant=b",
    })!;
    expect(config.headers).toEqual({ authorization: "Bearer generic", "x-tenant": "b" });
  });

  it.each([
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: "http/thrift" }, 'OTEL_EXPORTER_OTLP_PROTOCOL="http/thrift": expected one of http/protobuf, http/json, grpc'],
    [{ OTEL_EXPORTER_OTLP_LOGS_TIMEOUT: "10s" }, 'OTEL_EXPORTER_OTLP_LOGS_TIMEOUT="10s": expected a number of milliseconds greater than 0'],
    [{ OTEL_EXPORTER_OTLP_COMPRESSION: "zstd" }, 'OTEL_EXPORTER_OTLP_COMPRESSION="zstd": expected gzip or none'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }, 'OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318": expected an http:// or https:// URL'],
  ])("refuses %o, naming the variable", (env, message) => {
    expect(() => otlpLogsConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", ...env })).toThrow(message);
  });
});

describe("otelSinkFromEnv and the resource", () => {
  it("makes a sink only when an endpoint is set", async () => {
    expect(otelSinkFromEnv({}, {})).toBeUndefined();
    const sink = otelSinkFromEnv({}, { OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: "http://127.0.0.1:4318/v1/logs" });
    expect(sink).toBeInstanceOf(OtelSink);
    await sink!.close();
  });

  it("names palisade and the host, and lets OTEL_RESOURCE_ATTRIBUTES add the node and cluster and win", () => {
    const saved = { ...process.env };
    try {
      process.env.OTEL_RESOURCE_ATTRIBUTES = "k8s.node.name=node-1,k8s.cluster.name=prod-eu-1,host.name=node-1.example";
      delete process.env.OTEL_SERVICE_NAME;
      expect(palisadeResourceAttributes()).toMatchObject({
        "service.name": "palisade", "host.name": "node-1.example", "k8s.node.name": "node-1", "k8s.cluster.name": "prod-eu-1", "telemetry.sdk.language": "nodejs",
      });
    } finally {
      process.env = saved;
    }
  });
});

describe("docs/observability.md", () => {
  const read = (path: string) => readFileSync(join(import.meta.dirname, "../..", path), "utf8");

  it("documents every event name and attribute the sink emits", () => {
    const doc = read("docs/observability.md");
    for (const name of [...Object.values(EVENT_NAMES), ...Object.values(ATTR)]) expect(doc).toContain(`\`${name}\``);
  });

  it("documents every variable the configuration reads", () => {
    const doc = read("docs/observability.md");
    const source = read("src/sinks/otel-config.ts");
    const suffixes = [...source.matchAll(/logsOrGeneric\(env, "(\w+)"\)/g)].map((m) => m[1]!);
    expect(suffixes.length).toBeGreaterThan(0);
    for (const suffix of [...suffixes, "ENDPOINT", "HEADERS"]) {
      expect(doc).toContain(`OTEL_EXPORTER_OTLP_LOGS_${suffix}`);
      expect(doc).toContain(`OTEL_EXPORTER_OTLP_${suffix}`);
    }
  });
});

describe("OtelSink against a collector that accepts connections and never answers", () => {
  let server: Server;
  let url: string;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    server = createServer((socket) => {
      sockets.add(socket);
      socket.resume(); // read everything, answer nothing
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it("never waits, keeps at most maxPendingBytes (and one chunk) waiting, and counts and warns about the rest, once", async () => {
    const warnings: string[] = [];
    const maxPendingBytes = 2 ** 20;
    const sink = new OtelSink(otlpLogsConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_TIMEOUT: "300" })!, {
      maxPendingBytes,
      warn: (message) => warnings.push(message),
    });
    const event = samples(1)[1]!.event;
    const chunkBytes = JSON.stringify(Array(CHUNK_SIZE).fill(event)).length; // what the sink hands over at a time
    const total = 50_000;
    const started = performance.now();
    for (let i = 0; i < total; i++) sink.write(event);
    const elapsed = performance.now() - started;

    // 50,000 writes in a second leaves a wide margin on a loaded machine.
    expect(elapsed).toBeLessThan(1_000);
    expect(sink.pendingBytes).toBeGreaterThanOrEqual(maxPendingBytes);
    expect(sink.pendingBytes).toBeLessThan(maxPendingBytes + chunkBytes);
    expect(sink.pending).toBe(Math.ceil(maxPendingBytes / chunkBytes) * CHUNK_SIZE);
    expect(sink.dropped).toBe(total - sink.pending);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^otel: dropped 1 event\(s\): \d+ events \(1\.0 MiB\) already wait for http:\/\/127\.0\.0\.1:\d+\/v1\/logs/);

    // Each export times out (300 ms); every event ends up exported or dropped, none lost.
    await sink.flush();
    expect(sink.exported).toBe(0);
    expect(sink.dropped).toBe(total);
    expect(sink.pending).toBe(0);
    expect(sink.pendingBytes).toBe(0);
    await sink.close();
  });

  it("counts what close() could not export within its time as dropped, and drops later writes", async () => {
    const sink = new OtelSink(otlpLogsConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: url })!, { warn: () => {} });
    const event = samples(1)[0]!.event;
    for (let i = 0; i < 100; i++) sink.write(event);
    await sink.close(300);
    expect([sink.exported, sink.dropped, sink.pending]).toEqual([0, 100, 0]);
    sink.write(event);
    expect(sink.dropped).toBe(101);
  });
});
