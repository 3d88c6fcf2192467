// Events as JSON lines, one object per line in the brief's field order, to a file or stdout.
// Writes are queued on the stream and never wait: the kernel's ring buffer must keep
// draining. If the destination stops draining, lines beyond `maxPendingBytes` are dropped and
// counted (never silently); the count is in `dropped`. Lines written in one turn of the
// event loop go to the stream as one string: a stream chunk (and a Buffer) a line was the
// agent's busiest allocation at tens of thousands of events a second, and let the stream
// fall behind even writing to /dev/null.

import { createWriteStream, openSync, type WriteStream } from "node:fs";
import type { Writable } from "node:stream";
import type { RuntimeEvent } from "../events/event.ts";

export class JsonLinesSink {
  private readonly out: Writable;
  private readonly ownsStream: boolean;
  private readonly maxPendingBytes: number;
  private failed = false;
  /** Lines (each with its newline) not yet handed to the stream, and their length. */
  private batch: string[] = [];
  private batchLength = 0;
  dropped = 0;
  written = 0;

  /** `path` "-" or undefined writes to stdout. Opening happens now, so a bad path throws here. */
  constructor(path?: string, options: { maxPendingBytes?: number; onError?: (e: Error) => void } = {}) {
    this.ownsStream = path !== undefined && path !== "-";
    this.out = this.ownsStream ? createWriteStream("", { fd: openSync(path!, "a") }) : process.stdout;
    // A write error later (disk full) must not take the agent down: lines are dropped and counted.
    this.out.on("error", (e: Error) => {
      this.failed = true;
      options.onError?.(e);
    });
    this.maxPendingBytes = options.maxPendingBytes ?? 64 * 1024 * 1024;
  }


  /** `json`: eventJson(event), when the caller has it already. */
  write(event: RuntimeEvent, json: string = eventJson(event)): void {
    if (this.failed || this.out.writableLength + this.batchLength > this.maxPendingBytes) {
      this.dropped++;
      return;
    }
    if (this.batch.length === 0) setImmediate(() => this.flushBatch());
    this.batch.push(json + "\n");
    this.batchLength += json.length + 1;
    this.written++;
  }

  private flushBatch(): void {
    if (this.batch.length === 0) return;
    this.out.write(this.batch.join(""));
    this.batch = [];
    this.batchLength = 0;
  }

  async close(): Promise<void> {
    this.flushBatch();
    if (!this.ownsStream) return;
    await new Promise<void>((resolve, reject) => (this.out as WriteStream).end((e?: Error | null) => (e ? reject(e) : resolve())));
  }
}

const ORDER = ["time", "node", "hook", "action", "policy", "rule", "severity", "process", "parent", "k8s", "file", "net"] as const;

/** An event as one line of JSON (without the newline) in the brief's field order: what the JSON lines file and `observe -o json` print. */
export function eventJson(event: RuntimeEvent): string {
  return JSON.stringify(ordered(event));
}

/** The brief's field order, so lines read the same way every time; unknown extras follow. */
function ordered(event: RuntimeEvent): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ORDER) if (event[key] !== undefined) out[key] = event[key];
  for (const [key, value] of Object.entries(event)) if (!(key in out) && value !== undefined) out[key] = value;
  return out;
}
