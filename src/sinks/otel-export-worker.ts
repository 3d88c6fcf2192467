// The OTel sink's worker thread: turns events into log records, batches them and exports
// them with the OpenTelemetry JS OTLP exporters. Serializing a batch takes tens of
// milliseconds of CPU; here it never delays the agent's event loop, which drains the
// kernel's ring buffer. It reports every event's fate to the sink (otel.ts), which does
// the counting; its queue is bounded by what the sink lets through.
//
// Queued events stay the JSON text they arrived as, about 350 bytes each; they become log
// records (several kilobytes of objects each) only for the batch being exported.

import { parentPort, workerData } from "node:worker_threads";
import type { Attributes } from "@opentelemetry/api";
import { ExportResultCode, millisToHrTime } from "@opentelemetry/core";
import { resourceFromAttributes, type Resource } from "@opentelemetry/resources";
import type { LogRecordExporter, ReadableLogRecord } from "@opentelemetry/sdk-logs";
import type { RuntimeEvent } from "../events/event.ts";
import type { Hook } from "../policy/model.ts";
import type { OtlpLogsConfig } from "./otel-config.ts";
import { logRecordOf } from "./otel-record.ts";

export interface WorkerSetup {
  config: OtlpLogsConfig;
  resourceAttributes: Attributes;
  backends: Partial<Record<Hook, string>>;
}

/** Events written in one turn of the sink's event loop (at most its chunk size). */
export interface Chunk {
  count: number;
  /** JSON.stringify and parse of these plain objects cost less than a structured clone. */
  eventsJson: string;
  ruleVersions?: (string | undefined)[];
  observedAtMillis: number;
}

/** Sink → worker. */
export type ToWorker = ({ type: "events" } & Chunk) | { type: "flush"; id: number };

/**
 * Worker → sink, in the order things happen: a flush's batches are settled before its
 * "flushed". `bytes` is the JSON text of the batch's chunks, which no longer waits.
 */
export type FromWorker =
  | { type: "ready" }
  | { type: "settled"; exported: number; failed: number; bytes: number; error?: string }
  | { type: "flushed"; id: number };


// A gRPC server takes at most 4 MiB per request by default. A record's protobuf is at
// most about twice its event's JSON (measured: 2x for a typical event of 400 bytes, 1.4x
// for one with 4 KiB paths), so a batch stops at 2,048 events (1.6 MB of protobuf,
// typically) or 1.5 MiB of JSON, whichever comes first. Two exports in flight let one
// batch serialize while the collector takes the previous one.
const BATCH_SIZE = 2_048;
const BATCH_JSON_BYTES = 1.5 * 2 ** 20;
const MAX_EXPORTS_IN_FLIGHT = 2;
/** How long a lone record may wait for company before it is exported. */
const BATCH_DELAY_MILLIS = 200;

/** Only the protocol's exporter is loaded: the others would cost memory (gRPC's about 7 MB) and start-up time. */
async function exporterFor(config: OtlpLogsConfig): Promise<LogRecordExporter> {
  const common = { url: config.url, timeoutMillis: config.timeoutMillis, compression: config.compression };
  switch (config.protocol) {
    case "http/protobuf": {
      const { OTLPLogExporter } = await import("@opentelemetry/exporter-logs-otlp-proto");
      return new OTLPLogExporter({ ...common, headers: config.headers });
    }
    case "http/json": {
      const { OTLPLogExporter } = await import("@opentelemetry/exporter-logs-otlp-http");
      return new OTLPLogExporter({ ...common, headers: config.headers });
    }
    case "grpc": {
      const [{ OTLPLogExporter }, { Metadata }] = await Promise.all([import("@opentelemetry/exporter-logs-otlp-grpc"), import("@grpc/grpc-js")]);
      const metadata = new Metadata();
      for (const [key, value] of Object.entries(config.headers)) metadata.set(key, value);
      return new OTLPLogExporter({ ...common, metadata });
    }
  }
}

class BatchExporter {
  private readonly exporter: LogRecordExporter;
  private readonly toRecords: (chunks: Chunk[]) => { records: ReadableLogRecord[]; unmappable: number; error?: string };
  private readonly report: (message: FromWorker) => void;
  private chunks: Chunk[] = [];
  /** Events in `chunks`. */
  private queued = 0;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Flushes waiting for the queue to empty and every export to finish. */
  private flushes: (() => void)[] = [];

  constructor(exporter: LogRecordExporter, toRecords: BatchExporter["toRecords"], report: (message: FromWorker) => void) {
    this.exporter = exporter;
    this.toRecords = toRecords;
    this.report = report;
  }

  add(chunk: Chunk): void {
    this.chunks.push(chunk);
    this.queued += chunk.count;
    this.pump();
  }

  flush(done: () => void): void {
    this.flushes.push(done);
    this.pump();
  }

  /** Starts the exports there is room and reason for: a full batch, a flush, or the delay. */
  private pump(dueToDelay = false): void {
    const partialOk = dueToDelay || this.flushes.length > 0;
    while (this.inFlight < MAX_EXPORTS_IN_FLIGHT && (this.queued >= BATCH_SIZE || (partialOk && this.queued > 0))) {
      this.export(this.takeBatch());
    }
    if (this.queued > 0 && this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump(true);
      }, BATCH_DELAY_MILLIS);
    }
    if (this.queued === 0 && this.inFlight === 0) {
      for (const done of this.flushes.splice(0)) done();
    }
  }

  /** Whole chunks, as many as fit in BATCH_SIZE events and BATCH_JSON_BYTES (one chunk never exceeds either). */
  private takeBatch(): Chunk[] {
    let taken = 0;
    let events = 0;
    let bytes = 0;
    for (const next of this.chunks) {
      if (taken > 0 && (events + next.count > BATCH_SIZE || bytes + next.eventsJson.length > BATCH_JSON_BYTES)) break;
      taken++;
      events += next.count;
      bytes += next.eventsJson.length;
    }
    this.queued -= events;
    return this.chunks.splice(0, taken);
  }

  private export(chunks: Chunk[]): void {
    const bytes = chunks.reduce((sum, c) => sum + c.eventsJson.length, 0);
    const { records, unmappable, error: mappingError } = this.toRecords(chunks);
    // Only the count outlives serialization: records kept for the round trip (and the
    // retries) would reach V8's old generation, and the heap would grow with the rate.
    const count = records.length;
    const settle = (exported: number, exportError?: string) => {
      const error = exportError ?? mappingError;
      this.report({ type: "settled", exported, failed: count - exported + unmappable, bytes, ...(error && { error }) });
    };
    if (count === 0) return settle(0);
    this.inFlight++;
    const finish = (error?: Error) => {
      this.inFlight--;
      settle(error ? 0 : count, error?.message);
      this.pump();
    };
    try {
      this.exporter.export(records, (result) => finish(result.code === ExportResultCode.SUCCESS ? undefined : (result.error ?? new Error("export failed"))));
    } catch (e) {
      finish(e as Error);
    }
  }
}

async function main(port: NonNullable<typeof parentPort>, setup: WorkerSetup) {
  const resource = resourceFromAttributes(setup.resourceAttributes);
  const post = (message: FromWorker) => port.postMessage(message);
  const batches = new BatchExporter(await exporterFor(setup.config), (chunks) => recordsOf(chunks, setup, resource), post);
  port.on("message", (message: ToWorker) => {
    if (message.type === "flush") batches.flush(() => post({ type: "flushed", id: message.id }));
    else batches.add(message);
  });
  post({ type: "ready" });
}

function recordsOf(chunks: Chunk[], setup: WorkerSetup, resource: Resource): { records: ReadableLogRecord[]; unmappable: number; error?: string } {
  const records: ReadableLogRecord[] = [];
  let unmappable = 0;
  let error: string | undefined;
  for (const chunk of chunks) {
    const observed = millisToHrTime(chunk.observedAtMillis);
    const events = JSON.parse(chunk.eventsJson) as RuntimeEvent[];
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      try {
        records.push(logRecordOf(event, { backend: setup.backends[event.hook], ruleVersion: chunk.ruleVersions?.[i] }, resource, observed));
      } catch (e) {
        // An event this code cannot map is a bug; it costs that event, not the batch.
        unmappable++;
        error = `cannot map an event to a log record: ${(e as Error).message}`;
      }
    }
  }
  return { records, unmappable, ...(error && { error }) };
}

if (parentPort) await main(parentPort, workerData as WorkerSetup);
