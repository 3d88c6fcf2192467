// The agent's side of `palisade observe`: a live event stream on a unix socket, readable by
// root only (mode 0600), with a bounded buffer of recent events for --since and for
// clients that reconnect.
//
// A slow client never slows the agent: each client has a bounded queue (the socket's
// unsent bytes); an event that would exceed it is dropped for that client, counted, and
// the client is told how many it missed once its queue drains.

import { randomUUID } from "node:crypto";
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import type { RuntimeEvent } from "../events/event.ts";
import { eventJson } from "../sinks/jsonl.ts";
import { MAX_REQUEST_BYTES, type ObserveMessage, type ObserveRequest } from "./protocol.ts";

export interface ObserveServerOptions {
  path: string;
  node: string;
  /** Recent events kept for --since and reconnects: at most this many… (default 10,000) */
  bufferEvents?: number;
  /** …this many bytes of JSON (default 16 MiB)… */
  bufferBytes?: number;
  /** …and none older than this (default 1 h). */
  bufferMaxAgeMillis?: number;
  /** Unsent bytes per client beyond which its events are dropped (default 1 MiB). */
  clientQueueBytes?: number;
  /** A client that has not sent its request line by then is disconnected (default 10 s). */
  requestTimeoutMillis?: number;
}

interface Buffered {
  seq: number;
  receivedAt: number;
  line: string;
}

interface Client {
  socket: Socket;
  /** Unsent bytes allowed now: more while a replay goes out, back to the bound once it drained. */
  allowance: number;
  /** Events dropped for this client since it was last told. */
  untold: number;
  live: boolean;
}

/** A bounded queue of recent events, oldest first, trimmed by count, bytes and age. */
class RecentEvents {
  private items: Buffered[] = [];
  private head = 0;
  private bytes = 0;
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  private readonly maxAgeMillis: number;

  constructor(maxEvents: number, maxBytes: number, maxAgeMillis: number) {
    this.maxEvents = maxEvents;
    this.maxBytes = maxBytes;
    this.maxAgeMillis = maxAgeMillis;
  }

  push(item: Buffered): void {
    this.items.push(item);
    this.bytes += item.line.length;
    this.trim(item.receivedAt);
  }

  /** Kept events with seq > `afterSeq` and received at or after `notBefore`. */
  since(afterSeq: number, notBefore: number, now: number): Buffered[] {
    this.trim(now);
    const out: Buffered[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const item = this.items[i]!;
      if (item.seq > afterSeq && item.receivedAt >= notBefore) out.push(item);
    }
    return out;
  }

  oldestSeq(): number | undefined {
    return this.items[this.head]?.seq;
  }

  private trim(now: number): void {
    while (this.head < this.items.length) {
      const oldest = this.items[this.head]!;
      const size = this.items.length - this.head;
      if (size <= this.maxEvents && this.bytes <= this.maxBytes && now - oldest.receivedAt <= this.maxAgeMillis) break;
      this.bytes -= oldest.line.length;
      this.head++;
    }
    // Compact now and then rather than shift() per event.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

export class ObserveServer {
  readonly path: string;
  /** This agent process; a client that sees another one knows the agent restarted. */
  readonly instance = randomUUID();
  /** Events queued to clients, and dropped for slow ones (each client counts). */
  exported = 0;
  dropped = 0;
  private readonly node: string;
  private readonly recent: RecentEvents;
  private readonly clientQueueBytes: number;
  private readonly requestTimeoutMillis: number;
  private readonly clients = new Set<Client>();
  private server: Server | undefined;
  private seq = 0;

  constructor(options: ObserveServerOptions) {
    this.path = options.path;
    this.node = options.node;
    this.recent = new RecentEvents(options.bufferEvents ?? 10_000, options.bufferBytes ?? 16 * 2 ** 20, options.bufferMaxAgeMillis ?? 3_600_000);
    this.clientQueueBytes = options.clientQueueBytes ?? 2 ** 20;
    this.requestTimeoutMillis = options.requestTimeoutMillis ?? 10_000;
  }

  get clientCount(): number {
    return [...this.clients].filter((c) => c.live).length;
  }

  /** Listens; a socket left by an agent that died is replaced, one another process serves is not. */
  async listen(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o755 });
    try {
      this.server = await this.bind();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE" || !lstatSync(this.path).isSocket()) throw e;
      if (await answers(this.path)) throw new Error(`${this.path}: another process serves observe there (another agent?)`);
      unlinkSync(this.path);
      this.server = await this.bind();
    }
    // The umask made it 0600 from the start; this says so for a reader of the code too.
    chmodSync(this.path, 0o600);
  }

  /** `json`: eventJson(event), when the caller has it already. */
  publish(event: RuntimeEvent, json: string = eventJson(event)): void {
    const seq = ++this.seq;
    const line = `{"type":"event","seq":${seq},"event":${json}}\n`;
    this.recent.push({ seq, receivedAt: Date.now(), line });
    for (const client of this.clients) if (client.live) this.send(client, line);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const c of this.clients) c.socket.destroy();
    this.clients.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private bind(): Promise<Server> {
    const server = createServer((socket) => this.accept(socket));
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      // Created 0600 (root only, the agent runs as root): no moment when others could connect.
      const umask = process.umask(0o177);
      try {
        server.listen(this.path, () => {
          server.off("error", reject);
          server.unref();
          resolve(server);
        });
      } finally {
        process.umask(umask);
      }
    });
  }

  private accept(socket: Socket): void {
    const client: Client = { socket, allowance: this.clientQueueBytes, untold: 0, live: false };
    this.clients.add(client);
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.clients.delete(client));
    socket.on("drain", () => {
      client.allowance = this.clientQueueBytes;
      if (client.untold > 0) {
        this.message(client, { type: "dropped", count: client.untold, reason: "this observer read too slowly; the agent does not wait" });
        client.untold = 0;
      }
    });
    let request = "";
    const silent = setTimeout(() => socket.destroy(), this.requestTimeoutMillis);
    socket.once("close", () => clearTimeout(silent));
    const onData = (chunk: Buffer) => {
      request += chunk.toString("utf8");
      const end = request.indexOf("\n");
      if (end < 0) {
        if (request.length > MAX_REQUEST_BYTES) socket.destroy();
        return;
      }
      socket.off("data", onData);
      clearTimeout(silent);
      let parsed: ObserveRequest;
      try {
        parsed = JSON.parse(request.slice(0, end)) as ObserveRequest;
      } catch {
        socket.end(JSON.stringify({ type: "dropped", count: 0, reason: "bad request: not JSON" }) + "\n");
        return;
      }
      this.start(client, parsed);
    };
    socket.on("data", onData);
  }

  /** Hello, the replay the request asks for, then live events. */
  private start(client: Client, request: ObserveRequest): void {
    this.message(client, { type: "hello", instance: this.instance, node: this.node });
    const now = Date.now();
    let replay: Buffered[] = [];
    if (request.after?.instance === this.instance) {
      const oldest = this.recent.oldestSeq() ?? this.seq + 1;
      const missed = Math.min(oldest, this.seq + 1) - request.after.seq - 1;
      if (missed > 0) this.message(client, { type: "dropped", count: missed, reason: "they left the agent's buffer of recent events before this observer reconnected" });
      replay = this.recent.since(request.after.seq, 0, now);
    } else if (request.after) {
      replay = this.recent.since(0, 0, now);
    } else if (request.sinceMillis !== undefined && request.sinceMillis > 0) {
      replay = this.recent.since(0, now - request.sinceMillis, now);
    }
    // The buffer bounds the replay: it goes out whole, then the usual bound applies again.
    for (const item of replay) {
      client.allowance += item.line.length;
      this.send(client, item.line);
    }
    client.live = true;
  }

  private send(client: Client, line: string): void {
    if (client.socket.writableLength + line.length > client.allowance) {
      client.untold++;
      this.dropped++;
      return;
    }
    client.socket.write(line);
    this.exported++;
  }

  private message(client: Client, message: ObserveMessage): void {
    client.socket.write(JSON.stringify(message) + "\n");
  }
}

/** Whether something accepts connections at this unix socket path. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
}
