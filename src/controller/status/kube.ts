// The status plane's writes: server-side apply, Lease reads and optimistic updates, over one
// keep-alive connection pool per client (an agent writes its node's state and heartbeat for
// as long as it runs; the aggregator writes statuses in bursts). Reads of whole collections
// go through the controller's informers (../informer.ts).

import { Agent, request, type RequestOptions } from "node:https";
import type { IncomingMessage } from "node:http";
import type { KubeConfig } from "@kubernetes/client-node";
import { ApiError } from "../client.ts";

const APPLY = "application/apply-patch+yaml";

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
}

/** What a write sends: an object without the server's metadata (uid, resourceVersion...). */
export interface ObjectBody {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; ownerReferences?: OwnerReference[] };
  [field: string]: unknown;
}

export class StatusClient {
  private readonly kubeConfig: KubeConfig;
  private readonly server: string;
  private readonly userAgent: string;
  private agent: Agent | undefined;

  constructor(kubeConfig: KubeConfig, userAgent: string) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig has no current cluster");
    this.kubeConfig = kubeConfig;
    this.server = cluster.server.replace(/\/$/, "");
    this.userAgent = userAgent;
  }

  async get<T>(path: string): Promise<T> {
    return (await this.send("GET", path)) as T;
  }

  async create<T>(path: string, body: ObjectBody): Promise<T> {
    return (await this.send("POST", path, body)) as T;
  }

  /** An update that fails with 409 Conflict when the object changed since `body`'s resourceVersion. */
  async replace<T>(path: string, body: ObjectBody): Promise<T> {
    return (await this.send("PUT", path, body)) as T;
  }

  /** Server-side apply: creates the object or updates the fields `fieldManager` owns, taking them over from others. */
  async apply<T>(path: string, body: ObjectBody, fieldManager: string): Promise<T> {
    return (await this.send("PATCH", `${path}?fieldManager=${encodeURIComponent(fieldManager)}&force=true`, body, APPLY)) as T;
  }

  /** Closes pooled connections. */
  close() {
    this.agent?.destroy();
    this.agent = undefined;
  }

  private async send(method: string, path: string, body?: ObjectBody, contentType = "application/json"): Promise<unknown> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const options: RequestOptions = {};
    // Per request: an in-cluster service-account token is rotated under a running agent.
    await this.kubeConfig.applyToHTTPSOptions(options);
    this.agent ??= new Agent({ keepAlive: true, ca: options.ca, cert: options.cert, key: options.key, rejectUnauthorized: options.rejectUnauthorized, servername: options.servername });
    const headers: Record<string, string> = { ...(options.headers as Record<string, string> | undefined), accept: "application/json", "user-agent": this.userAgent };
    if (payload !== undefined) {
      headers["content-type"] = contentType;
      headers["content-length"] = String(Buffer.byteLength(payload));
    }
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(new URL(this.server + path), { method, headers, agent: this.agent, auth: options.auth, timeout: 30_000 }, resolve);
      req.on("timeout", () => req.destroy(new Error("no answer in 30 s")));
      req.on("error", (err) => reject(new Error(`${method} ${path}: ${err.message}`)));
      req.end(payload);
    });
    const text = await new Promise<string>((resolve, reject) => {
      let chunks = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (chunks += chunk));
      response.on("end", () => resolve(chunks));
      response.on("error", reject);
    });
    const status = response.statusCode ?? 0;
    if (status >= 300) throw statusError(status, text, method, path);
    return text ? JSON.parse(text) : undefined;
  }
}

function statusError(status: number, text: string, method: string, path: string): ApiError {
  try {
    const parsed = JSON.parse(text) as { reason?: string; message?: string };
    return new ApiError(status, `${method} ${path}: ${parsed.message ?? `HTTP ${status}`}`, parsed.reason);
  } catch {
    return new ApiError(status, `${method} ${path}: HTTP ${status}: ${text.slice(0, 200)}`);
  }
}
