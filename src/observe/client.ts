// `palisade observe`: connects to a running agent's observe socket and prints its events,
// as JSON lines (the brief's format) or one compact line each, optionally filtered by CEL.
// With --reconnect it outlives the agent: it retries with backoff and, once back, asks for
// what came after the last event it printed, so nothing is printed twice.

import { connect } from "node:net";
import { createInterface } from "node:readline";
import type { RuntimeEvent } from "../events/event.ts";
import { eventJson } from "../sinks/jsonl.ts";
import { compileFilter, type EventFilter } from "./filter.ts";
import type { ObserveMessage, ObserveRequest } from "./protocol.ts";

export interface ObserveOptions {
  socket: string;
  output: "json" | "compact";
  filter?: string;
  sinceMillis?: number;
  reconnect?: boolean;
  print?: (line: string) => void;
  /** Notices (drops, reconnects) go here, never among the events. */
  notice?: (line: string) => void;
}

const FIRST_RETRY_MILLIS = 100;
const MAX_RETRY_MILLIS = 5_000;

/** Resolves with the exit code: 0 when the agent ended the stream, 2 when it cannot be reached (without --reconnect). */
export async function observe(options: ObserveOptions): Promise<number> {
  const accept: EventFilter = options.filter ? compileFilter(options.filter) : () => true;
  const print = options.print ?? ((line: string) => process.stdout.write(line + "\n"));
  const notice = options.notice ?? ((line: string) => process.stderr.write(`observe: ${line}\n`));
  const format = options.output === "json" ? eventJson : compactLine;
  let last: { instance: string; seq: number } | undefined;
  let retryMillis = FIRST_RETRY_MILLIS;
  let outage: string | undefined;

  for (;;) {
    const request: ObserveRequest = last ? { after: last } : options.sinceMillis ? { sinceMillis: options.sinceMillis } : {};
    const ended = await stream(options.socket, request, (message) => {
      switch (message.type) {
        case "hello":
          if (outage) notice(`connected again to the agent on ${message.node}`);
          outage = undefined;
          retryMillis = FIRST_RETRY_MILLIS;
          return;
        case "dropped":
          notice(`${message.count} event(s) not shown: ${message.reason}`);
          return;
      }
    }, (instance, seq, event) => {
      // The agent replays from `last`; this guards against printing one twice all the same.
      if (last && last.instance === instance && seq <= last.seq) return;
      last = { instance, seq };
      if (accept(event)) print(format(event));
    });
    if (!options.reconnect) {
      if (ended.connected) {
        notice("the agent ended the stream (it stopped?)");
        return 0;
      }
      notice(`cannot reach the agent at ${options.socket}: ${explain(ended.error)}`);
      return 2;
    }
    const why = ended.connected ? "the agent ended the stream" : explain(ended.error);
    if (!outage) notice(`${why}; retrying until it is back (Ctrl-C to stop)`);
    outage = why;
    await new Promise((resolve) => setTimeout(resolve, retryMillis));
    retryMillis = Math.min(retryMillis * 2, MAX_RETRY_MILLIS);
  }
}

/** One connection: sends the request, hands on what arrives, resolves when it ends. */
function stream(
  path: string,
  request: ObserveRequest,
  onMessage: (message: Exclude<ObserveMessage, { type: "event" }>) => void,
  onEvent: (instance: string, seq: number, event: RuntimeEvent) => void,
): Promise<{ connected: boolean; error?: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const socket = connect(path);
    let connected = false;
    let error: NodeJS.ErrnoException | undefined;
    let instance = "";
    socket.once("connect", () => {
      connected = true;
      socket.write(JSON.stringify(request) + "\n");
    });
    socket.on("error", (e) => (error = e));
    const lines = createInterface({ input: socket, crlfDelay: Infinity });
    lines.on("error", () => {}); // the socket's own, recorded above
    lines.on("line", (line) => {
      if (!line) return;
      const message = JSON.parse(line) as ObserveMessage;
      if (message.type === "hello") instance = message.instance;
      if (message.type === "event") onEvent(instance, message.seq, message.event);
      else onMessage(message);
    });
    socket.once("close", () => resolve({ connected, ...(error && { error }) }));
  });
}

function explain(error: NodeJS.ErrnoException | undefined): string {
  switch (error?.code) {
    case "ENOENT":
      return "no agent is listening there (no such socket; is `palisade run` running, with this --observe-socket?)";
    case "ECONNREFUSED":
      return "no agent is listening there (the socket is left from an agent that stopped)";
    case "EACCES":
      return "permission denied (the socket is root's only: run as root)";
    default:
      return error?.message ?? "the connection closed";
  }
}

/**
 * One line a person reads: time (UTC), action, policy/rule, hook, pid, binary, what it
 * went for, and the pod when there is one:
 *   20:51:03.456 denied  baseline/no-secrets open    pid 17 /usr/bin/cat -> /etc/shadow
 */
export function compactLine(event: RuntimeEvent): string {
  const time = event.time ? event.time.slice(11, 23) : "--:--:--.---";
  const verb = { "process.exec": "exec", "file.open": "open", "net.connect": "connect" }[event.hook];
  const net = event.net;
  const target = event.file ? event.file.path : net ? `${net.family === "ipv6" ? `[${net.daddr}]` : net.daddr}:${net.dport}/${net.protocol}` : undefined;
  const k8s = event.k8s;
  const pod = k8s?.pod ? `${k8s.namespace ? `${k8s.namespace}/` : ""}${k8s.pod}${k8s.container ? `:${k8s.container}` : ""}` : undefined;
  return [
    time,
    (event.action ?? "seen").padEnd(7),
    `${event.policy ?? "-"}/${event.rule ?? "-"}`,
    verb.padEnd(7),
    `pid ${event.process.pid}`,
    event.process.binary + (target ? ` -> ${target}` : ""),
    ...(pod ? [`pod ${pod}`] : []),
  ].join(" ");
}

/** "500ms", "30s", "5m", "1h30m" as milliseconds. */
export function parseDuration(text: string): number {
  const units: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (!parts.length || parts.map((p) => p[0]).join("") !== text) throw new Error(`--since "${text}": expected a duration such as 30s, 5m or 1h30m`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * units[p[2]!]!, 0);
}
