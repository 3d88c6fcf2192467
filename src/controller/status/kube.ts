// A small HTTP client for the status plane: server-side apply, Lease updates and list+watch
// over one keep-alive connection pool per client. The status plane talks to the API server
// on every node and at 5,000-node scale, so it keeps its requests explicit and countable
// rather than going through the generated client.

import { Agent, request, type RequestOptions } from "node:https";
import type { IncomingMessage } from "node:http";
import type { KubeConfig } from "@kubernetes/client-node";

/** An API error with the server's HTTP status and its Status message. */
export class KubeError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    labels?: Record<string, string>;
    creationTimestamp?: string;
  };
  [field: string]: unknown;
}

export interface ObjectList<T> {
  metadata: { resourceVersion: string };
  items: T[];
}

export type WatchEvent<T> =
  | { type: "ADDED" | "MODIFIED" | "DELETED"; object: T }
  | { type: "BOOKMARK"; object: { metadata: { resourceVersion: string } } }
  | { type: "ERROR"; object: { code?: number; reason?: string; message?: string } };

export interface Watching {
  /** Resolves when the stream ends: the server closed it, the connection dropped, or abort(). */
  ended: Promise<void>;
  abort(): void;
}

const APPLY = "application/apply-patch+yaml";
const MERGE = "application/merge-patch+json";

export class KubeClient {
  readonly server: string;
  private readonly kubeConfig: KubeConfig;
  private agent: Agent | undefined;
  private readonly userAgent: string;

  constructor(kubeConfig: KubeConfig, userAgent = "palisade") {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig has no current cluster");
    this.kubeConfig = kubeConfig;
    this.server = cluster.server.replace(/\/$/, "");
    this.userAgent = userAgent;
  }

  async get<T>(path: string): Promise<T> {
    return (await this.send("GET", path)) as T;
  }

  async create<T>(path: string, body: unknown): Promise<T> {
    return (await this.send("POST", path, body, "application/json")) as T;
  }

  async replace<T>(path: string, body: unknown): Promise<T> {
    return (await this.send("PUT", path, body, "application/json")) as T;
  }

  /** Server-side apply: creates or updates the fields `fieldManager` owns, taking them over from others. */
  async apply<T>(path: string, body: unknown, fieldManager: string): Promise<T> {
    const query = `?fieldManager=${encodeURIComponent(fieldManager)}&force=true`;
    return (await this.send("PATCH", path + query, body, APPLY)) as T;
  }

  async mergePatch<T>(path: string, body: unknown): Promise<T> {
    return (await this.send("PATCH", path, body, MERGE)) as T;
  }

  /** A watch from `resourceVersion`; `onEvent` gets each event as it arrives, in order. */
  async watch<T>(path: string, resourceVersion: string, onEvent: (event: WatchEvent<T>) => void): Promise<Watching> {
    // The server ends every watch after timeoutSeconds (we resume from the last version);
    // bookmarks keep that version fresh, so a resumed watch rarely meets 410 Gone.
    const separator = path.includes("?") ? "&" : "?";
    const query = `${separator}watch=true&allowWatchBookmarks=true&timeoutSeconds=${240 + Math.floor(Math.random() * 120)}&resourceVersion=${encodeURIComponent(resourceVersion)}`;
    const response = await this.open("GET", path + query);
    if (response.statusCode !== 200) throw await errorOf(response, "GET", path);
    let buffered = "";
    response.setEncoding("utf8");
    response.on("data", (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line.trim()) onEvent(JSON.parse(line) as WatchEvent<T>);
      }
    });
    const ended = new Promise<void>((resolve) => {
      response.once("close", resolve);
      response.once("error", () => resolve());
    });
    return { ended, abort: () => response.destroy() };
  }

  /** Closes idle pooled connections. */
  close() {
    this.agent?.destroy();
    this.agent = undefined;
  }

  private async send(method: string, path: string, body?: unknown, contentType?: string): Promise<unknown> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const response = await this.open(method, path, payload, contentType);
    const text = await readAll(response);
    if (response.statusCode === undefined || response.statusCode >= 300) throw statusError(response.statusCode ?? 0, text, method, path);
    return text ? JSON.parse(text) : undefined;
  }

  private async open(method: string, path: string, payload?: string, contentType?: string): Promise<IncomingMessage> {
    const options: RequestOptions = {};
    // Per request: a service-account token file is rotated under a running agent.
    await this.kubeConfig.applyToHTTPSOptions(options);
    this.agent ??= new Agent({
      keepAlive: true,
      ca: options.ca,
      cert: options.cert,
      key: options.key,
      rejectUnauthorized: options.rejectUnauthorized,
      servername: options.servername,
    });
    const headers: Record<string, string> = { ...(options.headers as Record<string, string> | undefined), accept: "application/json", "user-agent": this.userAgent };
    if (payload !== undefined) {
      headers["content-type"] = contentType ?? "application/json";
      headers["content-length"] = String(Buffer.byteLength(payload));
    }
    const url = new URL(this.server + path);
    return new Promise((resolve, reject) => {
      const req = request(url, { method, headers, agent: this.agent, auth: options.auth }, resolve);
      req.on("error", (err) => reject(new Error(`${method} ${path}: ${err.message}`)));
      req.end(payload);
    });
  }
}

function readAll(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    response.setEncoding("utf8");
    response.on("data", (chunk: string) => (text += chunk));
    response.on("end", () => resolve(text));
    response.on("error", reject);
  });
}

async function errorOf(response: IncomingMessage, method: string, path: string): Promise<KubeError> {
  return statusError(response.statusCode ?? 0, await readAll(response), method, path);
}

function statusError(status: number, text: string, method: string, path: string): KubeError {
  let reason = "";
  let message = text.slice(0, 500);
  try {
    const parsed = JSON.parse(text) as { reason?: string; message?: string };
    reason = parsed.reason ?? "";
    message = parsed.message ?? message;
  } catch {
    // not a Status object: keep the raw text
  }
  return new KubeError(status, reason, `${method} ${path}: ${status} ${reason}: ${message}`);
}

/** Exponential backoff with jitter, for retrying a failing request without flooding the server. */
export function backoffMillis(attempt: number, baseMillis = 500, maxMillis = 30_000): number {
  const ceiling = Math.min(maxMillis, baseMillis * 2 ** Math.min(attempt, 16));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}
