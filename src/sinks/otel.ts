// Events as OpenTelemetry log records (otel-record.ts), exported over OTLP by the
// OpenTelemetry JS exporters (http/protobuf, http/json or grpc, as otel-config.ts reads
// them from the standard variables) on a worker thread (otel-export-worker.ts).
//
// write() never waits and never lets memory grow without bound: the kernel's ring buffer
// must keep draining whatever the collector does. Events accepted and not yet exported
// (queued or in an export) may take at most `maxPendingBytes` of JSON; beyond that, and
// for every batch whose export fails (after the exporter's retries, within
// OTEL_EXPORTER_OTLP_TIMEOUT), events are dropped and counted, with at most one warning
// per 30 s. Nothing needs to happen for a collector that comes back: the next export
// simply succeeds. At any moment written = exported + dropped + pending.

import { hostname } from "node:os";
import { Worker } from "node:worker_threads";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import type { Attributes } from "@opentelemetry/api";
import type { RuntimeEvent } from "../events/event.ts";
import type { Hook } from "../policy/model.ts";
import { otlpLogsConfigFromEnv, type OtlpLogsConfig } from "./otel-config.ts";
import type { FromWorker, ToWorker, WorkerSetup } from "./otel-export-worker.ts";
import { RESOURCE_ATTR } from "./otel-semconv.ts";

export interface OtelSinkOptions {
  /** Who reports; default palisadeResourceAttributes(). */
  resourceAttributes?: Attributes;
  /** The backend enforcing each hook on this node (the enforcer's probe), for palisade.backend. */
  backends?: Partial<Record<Hook, string>>;
  /** security_rule.version of an event: the policy's generation, or the plan's digest. */
  ruleVersion?: (event: RuntimeEvent) => string | undefined;
  /** JSON of events accepted and not yet exported beyond which write() drops (default 32 MiB). */
  maxPendingBytes?: number;
  /** Where warnings about drops go (default stderr). */
  warn?: (message: string) => void;
}

// Bytes, not events: an event is about 350 bytes of JSON, but one with three 4 KiB paths
// is 12 KiB. 32 MiB is some 100,000 typical events: over a minute and a half of a
// collector restart at 1,000 events/s (a busy node) without a loss.
const DEFAULT_MAX_PENDING_BYTES = 32 * 2 ** 20;
/**
 * Events handed to the worker in one message: enough to make a message's cost small, few
 * enough that a chunk of the largest events (three 4 KiB paths and long arguments, 21 KB
 * of JSON) stays within one export batch's 1.5 MiB.
 */
export const CHUNK_SIZE = 64;
const WARNING_INTERVAL_MILLIS = 30_000;
/** Two export batches of records (2,048 each, some kilobytes of objects a record), the exporter's modules and gRPC's. */
const WORKER_HEAP_HEADROOM_MB = 64;
const CLOSE_TIMEOUT_MILLIS = 5_000;

export class OtelSink {
  exported = 0;
  dropped = 0;
  /** Accepted, not yet exported or dropped: queued, on the way to the worker, or in an export. */
  pending = 0;
  /** The JSON of the pending events handed to the worker (not of the chunk still being filled). */
  pendingBytes = 0;

  private readonly url: string;
  private readonly setup: WorkerSetup;
  private readonly maxPendingBytes: number;
  private readonly ruleVersion: ((event: RuntimeEvent) => string | undefined) | undefined;
  private readonly warn: (message: string) => void;
  private worker: Worker;
  /** The JSON of each event written since the last chunk went to the worker. */
  private chunk: string[] = [];
  private chunkRuleVersions: (string | undefined)[] = [];
  private chunkScheduled = false;
  private readonly flushes = new Map<number, () => void>();
  private nextFlushId = 0;
  private droppedSinceWarning = 0;
  private lastWarningAt = -Infinity;
  /** An export failed and a warning said so: the next success is worth saying too. */
  private failureWarned = false;
  private closing: Promise<void> | undefined;
  /** Why events cannot be exported at all: the worker could not even start. */
  private broken: string | undefined;
  private workerReady = false;

  constructor(config: OtlpLogsConfig, options: OtelSinkOptions = {}) {
    this.url = config.url;
    this.setup = { config, resourceAttributes: options.resourceAttributes ?? palisadeResourceAttributes(), backends: options.backends ?? {} };
    this.maxPendingBytes = options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    this.ruleVersion = options.ruleVersion;
    this.warn = options.warn ?? ((message) => process.stderr.write(message + "\n"));
    this.worker = this.startWorker();
  }

  /** `json`: the event as JSON, when the caller has it already (the agent serializes each event once for every output). */
  write(event: RuntimeEvent, json: string = JSON.stringify(event)): void {
    if (this.closing || this.broken) {
      this.drop(1, this.broken ?? "the sink is closed");
      return;
    }
    if (this.pendingBytes >= this.maxPendingBytes) {
      this.drop(1, `${this.pending} events (${(this.pendingBytes / 2 ** 20).toFixed(1)} MiB) already wait for ${this.url}`);
      return;
    }
    if (this.pending++ === 0) this.updateRef();
    this.chunk.push(json);
    if (this.ruleVersion) this.chunkRuleVersions.push(this.ruleVersion(event));
    if (this.chunk.length >= CHUNK_SIZE) this.sendChunk();
    else if (!this.chunkScheduled) {
      // The rest of this turn of the event loop may bring more: send them together.
      this.chunkScheduled = true;
      setImmediate(() => this.sendChunk());
    }
  }

  /** Resolves when everything written so far is exported or dropped. */
  flush(): Promise<void> {
    if (this.broken) return Promise.resolve();
    this.sendChunk();
    const id = this.nextFlushId++;
    return new Promise((resolve) => {
      this.flushes.set(id, resolve);
      this.updateRef();
      this.worker.postMessage({ type: "flush", id } satisfies ToWorker);
    });
  }

  /**
   * Exports what is pending, for at most `timeoutMillis`; what is still pending then is
   * counted as dropped. Later writes are dropped. Idempotent.
   */
  close(timeoutMillis = CLOSE_TIMEOUT_MILLIS): Promise<void> {
    this.closing ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMillis)));
      await Promise.race([this.flush(), deadline]);
      clearTimeout(timer);
      const worker = this.worker;
      worker.removeAllListeners();
      await worker.terminate();
      if (this.pending > 0) this.drop(this.pending, `they were not exported to ${this.url} within ${timeoutMillis} ms of closing`);
      this.pending = 0;
      this.pendingBytes = 0;
    })();
    return this.closing;
  }

  private sendChunk(): void {
    this.chunkScheduled = false;
    if (this.chunk.length === 0) return;
    const message: ToWorker = { type: "events", count: this.chunk.length, eventsJson: `[${this.chunk.join(",")}]`, observedAtMillis: Date.now() };
    if (this.ruleVersion) message.ruleVersions = this.chunkRuleVersions;
    this.pendingBytes += message.eventsJson.length;
    this.chunk = [];
    this.chunkRuleVersions = [];
    this.worker.postMessage(message);
  }

  private startWorker(): Worker {
    // Left alone, V8 lets the worker's heap grow with the export rate (RSS 350 MiB at
    // 40,000 events/s, BENCHMARKS.md). Its live data is bounded: the pending JSON (counted
    // twice: text that is not Latin-1 takes two bytes a character) and two batches of
    // records in export; capped at that plus headroom, it collects sooner instead.
    const maxOldGenerationSizeMb = Math.ceil(WORKER_HEAP_HEADROOM_MB + (2 * this.maxPendingBytes) / 2 ** 20);
    const worker = new Worker(new URL("./otel-export-worker.ts", import.meta.url), { workerData: this.setup, resourceLimits: { maxOldGenerationSizeMb } });
    worker.on("message", (message: FromWorker) => this.onWorkerMessage(message));
    worker.on("error", (error) => this.onWorkerDied(error));
    this.workerReady = false;
    this.updateRef(worker);
    return worker;
  }

  /**
   * A bug, not weather: lose what it held and say so. A worker that had started is
   * replaced; one that could not start (a broken installation) would fail again.
   */
  private onWorkerDied(error: Error): void {
    const lost = this.pending - this.chunk.length;
    this.pending -= lost;
    this.pendingBytes = 0;
    this.lastWarningAt = -Infinity;
    if (this.workerReady) {
      this.drop(lost, `the export worker failed (${error.stack ?? error.message}); starting a new one`);
      this.worker = this.startWorker();
    } else {
      this.broken = `the export worker cannot start: ${error.message}`;
      this.drop(lost + this.chunk.length, this.broken);
      this.pending = 0;
      this.chunk = [];
      this.chunkRuleVersions = [];
    }
    // Flushes waiting on the dead worker would wait forever: there is nothing left to wait for.
    for (const resolve of this.flushes.values()) resolve();
    this.flushes.clear();
  }

  private onWorkerMessage(message: FromWorker): void {
    switch (message.type) {
      case "ready":
        this.workerReady = true;
        return;
      case "settled":
        this.pending -= message.exported + message.failed;
        this.pendingBytes -= message.bytes;
        if (this.pending === 0) this.updateRef();
        this.exported += message.exported;
        if (message.failed > 0) {
          if (this.drop(message.failed, `exporting them to ${this.url} failed: ${message.error}`)) this.failureWarned = true;
        } else if (this.failureWarned) {
          this.failureWarned = false;
          this.warn(`otel: exporting to ${this.url} works again; ${this.droppedSinceWarning} more event(s) dropped since the last warning`);
          this.droppedSinceWarning = 0;
        }
        return;
      case "flushed":
        this.flushes.get(message.id)?.();
        this.flushes.delete(message.id);
        this.updateRef();
        return;
    }
  }

  /** Pending events and flushes keep the process alive until done; an idle exporter must not. */
  private updateRef(worker = this.worker): void {
    if (this.pending > 0 || this.flushes.size > 0) worker.ref();
    else worker.unref();
  }

  /** Counts dropped events; warns unless it did so less than 30 s ago. Returns whether it warned. */
  private drop(count: number, reason: string): boolean {
    this.dropped += count;
    this.droppedSinceWarning += count;
    const now = performance.now();
    if (now - this.lastWarningAt < WARNING_INTERVAL_MILLIS) return false;
    this.warn(`otel: dropped ${this.droppedSinceWarning} event(s): ${reason} (${this.dropped} dropped in all; next warning in 30 s at the earliest)`);
    this.droppedSinceWarning = 0;
    this.lastWarningAt = now;
    return true;
  }
}

/** The sink the OTEL_EXPORTER_OTLP_* variables ask for, or undefined when they set no endpoint. */
export function otelSinkFromEnv(options: OtelSinkOptions = {}, env: Record<string, string | undefined> = process.env): OtelSink | undefined {
  const config = otlpLogsConfigFromEnv(env);
  return config && new OtelSink(config, options);
}

/**
 * service.name palisade and host.name, under what OTEL_RESOURCE_ATTRIBUTES and
 * OTEL_SERVICE_NAME say (they win), over the SDK's telemetry.sdk.* attributes.
 */
export function palisadeResourceAttributes(): Attributes {
  return defaultResource()
    .merge(resourceFromAttributes({ [RESOURCE_ATTR.serviceName]: "palisade", [RESOURCE_ATTR.hostName]: hostname() }))
    .merge(detectResources({ detectors: [envDetector] })).attributes;
}
