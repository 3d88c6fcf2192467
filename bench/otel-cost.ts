// Where the OTel sink's CPU goes, per event, stage by stage, in one thread: handing events
// to the export worker (JSON.stringify of 64-event chunks on the agent's thread,
// JSON.parse in the worker), mapping them to log records (otel-record.ts), and the
// OpenTelemetry JS exporters' own serialization of 2,048-record batches (the
// @opentelemetry/otlp-transformer serializers the http/protobuf, grpc and http/json
// exporters call). CPU time, not wall time, so a busy machine inflates it less than the
// throughput trials of bench/otel.ts; the sum bounds what one core can export per second.

import { millisToHrTime } from "@opentelemetry/core";
import { ProtobufLogsSerializer, JsonLogsSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import type { ReadableLogRecord } from "@opentelemetry/sdk-logs";
import type { RuntimeEvent } from "../src/events/event.ts";
import { CHUNK_SIZE, palisadeResourceAttributes } from "../src/sinks/otel.ts";
import { logRecordOf } from "../src/sinks/otel-record.ts";
import { BACKENDS, samples } from "../test/e2e/otel/samples.ts";

const EVENTS = 2_048 * 10;
const BATCH = 2_048;
const ROUNDS = 7;

/** CPU microseconds per event of `work` over EVENTS events: the median of ROUNDS rounds. */
function perEvent(work: () => void): number {
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const before = process.cpuUsage();
    work();
    const used = process.cpuUsage(before);
    rounds.push((used.user + used.system) / EVENTS);
  }
  return rounds.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)]!;
}

export function benchOtelCost(): string {
  const events: RuntimeEvent[] = Array.from({ length: EVENTS }, (_, i) => {
    const event = structuredClone(samples(10_000 + i)[i % 5]!.event);
    if (event.file) event.file.path = `${event.file.path}.${i}`;
    return event;
  });
  const resource = resourceFromAttributes(palisadeResourceAttributes());
  const observed = millisToHrTime(Date.now());
  const records: ReadableLogRecord[] = events.map((e) => logRecordOf(e, { backend: BACKENDS[e.hook], ruleVersion: "bench" }, resource, observed));
  const batches = Array.from({ length: EVENTS / BATCH }, (_, i) => records.slice(i * BATCH, (i + 1) * BATCH));
  let sink = 0; // keeps results alive so nothing is optimised away

  const handoff = perEvent(() => {
    for (let i = 0; i < EVENTS; i += CHUNK_SIZE) sink += (JSON.parse(JSON.stringify(events.slice(i, i + CHUNK_SIZE))) as unknown[]).length;
  });
  const mapping = perEvent(() => {
    for (const e of events) sink += logRecordOf(e, { backend: BACKENDS[e.hook], ruleVersion: "bench" }, resource, observed).body ? 1 : 0;
  });
  const protobuf = perEvent(() => {
    for (const b of batches) sink += ProtobufLogsSerializer.serializeRequest(b)!.length;
  });
  const json = perEvent(() => {
    for (const b of batches) sink += JsonLogsSerializer.serializeRequest(b)!.length;
  });
  if (sink === 0) throw new Error("nothing measured");

  const us = (v: number) => `${v.toFixed(1)} µs`;
  const perCore = (v: number) => `${Math.round(1e6 / v / 1000).toLocaleString("en-US")},000/s`;
  return [
    "| stage (CPU per event) | http/protobuf, grpc | http/json |",
    "|---|---:|---:|",
    `| hand-off to the worker (stringify + parse) | ${us(handoff)} | ${us(handoff)} |`,
    `| event → log record | ${us(mapping)} | ${us(mapping)} |`,
    `| exporter serialization (SDK) | ${us(protobuf)} | ${us(json)} |`,
    `| **sum** | **${us(handoff + mapping + protobuf)}** | **${us(handoff + mapping + json)}** |`,
    `| one core's ceiling at that cost (before network and the collector) | ${perCore(handoff + mapping + protobuf)} | ${perCore(handoff + mapping + json)} |`,
  ].join("\n");
}

if (import.meta.main) console.log(benchOtelCost());
