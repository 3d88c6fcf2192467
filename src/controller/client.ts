// The controller's HTTP calls to the API server: JSON requests (lists, gets, writes) and a
// streamed GET (watches, one JSON object per line). Credentials and TLS come from
// @kubernetes/client-node's KubeConfig (KUBECONFIG, or the in-cluster service account), so
// every auth method it knows works; the requests are plain node:https so that the informer
// controls connection, timeout and retry behaviour itself.

import { existsSync } from "node:fs";
import { Agent, request as httpsRequest, type RequestOptions } from "node:https";
import { homedir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";

/** The API server answered with an error status (a `Status` object, usually). */
export class ApiError extends Error {
  override name = "ApiError";
  readonly status: number;
  readonly reason: string | undefined;
  constructor(status: number, message: string, reason?: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

export type Query = Record<string, string | number | boolean | undefined>;

/** `kubeconfig`, else KUBECONFIG or ~/.kube/config when there is one, else the in-cluster service account. */
export function loadKubeConfig(kubeconfig?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else {
    // With nothing configured, the library falls back to http://localhost:8080: an agent
    // would retry that forever instead of saying what is missing.
    const configured = process.env.KUBECONFIG || existsSync(join(homedir(), ".kube", "config")) || process.env.KUBERNETES_SERVICE_HOST;
    if (!configured) throw new Error("no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, or run in a pod with a service account");
    kc.loadFromDefault();
  }
  if (!kc.getCurrentCluster()) throw new Error("the Kubernetes configuration names no current cluster (current-context)");
  return kc;
}

/** What a write sends: an object without the server's metadata (uid, resourceVersion...). */
export interface ObjectBody {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; ownerReferences?: OwnerReference[] };
  [field: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
}

/** Where a resource lives: `/api/v1/...` for the core group, `/apis/<group>/<version>/...` otherwise. */
export interface ResourcePath {
  apiVersion: string;
  /** Lower-case plural, e.g. "policyreports". */
  resource: string;
  namespace?: string;
  name?: string;
}

export function resourcePath({ apiVersion, resource, namespace, name }: ResourcePath): string {
  const group = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return `${group}${namespace ? `/namespaces/${encodeURIComponent(namespace)}` : ""}/${resource}${name ? `/${encodeURIComponent(name)}` : ""}`;
}

export const isNotFound = (error: unknown) => error instanceof ApiError && error.status === 404;

const REQUEST_TIMEOUT_MS = 30_000;

/**
 * The controller's one API client: informers' lists and watches, and every write (status,
 * node state, leases, reports). Requests other than watches share one keep-alive pool: the
 * library's own clients open a new TLS connection per request, a handshake per write on the
 * agent and on the API server, times every node.
 */
export class KubeClient {
  readonly config: KubeConfig;
  private readonly server: URL;
  private readonly userAgent: string;
  private pool: Agent | undefined;

  constructor(config: KubeConfig, userAgent = "palisade") {
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error("the Kubernetes configuration names no current cluster (current-context)");
    this.config = config;
    this.server = new URL(cluster.server);
    this.userAgent = userAgent;
  }

  get<T>(path: string, query: Query = {}, timeoutMs = REQUEST_TIMEOUT_MS): Promise<T> {
    return this.send<T>("GET", path, { query, timeoutMs });
  }

  /** The object, or undefined when it does not exist. */
  async getIfExists<T>(path: string): Promise<T | undefined> {
    try {
      return await this.get<T>(path);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  create<T>(path: string, body: ObjectBody): Promise<T> {
    return this.send<T>("POST", path, { body });
  }

  /** An update that fails with 409 Conflict when the object changed since `body`'s resourceVersion. */
  replace<T>(path: string, body: ObjectBody): Promise<T> {
    return this.send<T>("PUT", path, { body });
  }

  /** Server-side apply: creates the object or updates the fields `fieldManager` owns, taking them over from others. */
  apply<T>(path: string, body: Pick<ObjectBody, "apiVersion" | "kind" | "metadata">, fieldManager: string): Promise<T> {
    return this.send<T>("PATCH", path, { body, query: { fieldManager, force: true }, contentType: "application/apply-patch+yaml" });
  }

  /** Closes pooled connections (watches end with their own signal). */
  close(): void {
    this.pool?.destroy();
    this.pool = undefined;
  }

  private async options(method: string, path: string, query: Query, signal?: AbortSignal): Promise<RequestOptions> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    const opts: RequestOptions = { method, hostname: url.hostname, port: url.port, path: url.pathname + url.search, headers: { Accept: "application/json", "User-Agent": this.userAgent } };
    // Per request: an in-cluster service-account token is rotated under a running agent.
    await this.config.applyToHTTPSOptions(opts);
    if (signal) opts.signal = signal;
    return opts;
  }

  private async send<T>(method: string, path: string, request: { query?: Query; body?: object; contentType?: string; timeoutMs?: number }): Promise<T> {
    const payload = request.body === undefined ? undefined : JSON.stringify(request.body);
    const opts = await this.options(method, path, request.query ?? {}, AbortSignal.timeout(request.timeoutMs ?? REQUEST_TIMEOUT_MS));
    if (payload !== undefined) opts.headers = { ...opts.headers, "Content-Type": request.contentType ?? "application/json", "Content-Length": Buffer.byteLength(payload) };
    // Behind a proxy, the agent applyToHTTPSOptions installed is what reaches the server: keep it.
    if (!this.config.getCurrentCluster()?.proxyUrl) {
      this.pool ??= new Agent({ keepAlive: true });
      opts.agent = this.pool; // the request's own TLS options (CA, client certificate) still apply
    }
    return new Promise<T>((resolve, reject) => {
      const req = httpsRequest(opts, (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
        res.on("error", reject);
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          if (status >= 300) return reject(statusError(status, text, `${method} ${path}`));
          try {
            resolve((text ? JSON.parse(text) : undefined) as T);
          } catch (e) {
            reject(new Error(`${method} ${path}: the answer is not JSON (${(e as Error).message})`));
          }
        });
      });
      req.on("error", (e) => reject(e instanceof ApiError ? e : new Error(`${method} ${path}: ${e.message}`)));
      req.end(payload);
    });
  }

  /**
   * A streamed GET: calls onObject for each line's JSON object until the server ends the
   * response (resolves), the connection fails or `signal` aborts (rejects), or no byte
   * arrives for `idleMs` (rejects: a half-open connection must not stall a watch forever).
   */
  async stream(path: string, query: Query, onObject: (o: unknown) => void, options: { signal: AbortSignal; idleMs: number }): Promise<void> {
    const opts = await this.options("GET", path, query, options.signal);
    return new Promise<void>((resolve, reject) => {
      const req = httpsRequest(opts, (res) => {
        if ((res.statusCode ?? 0) >= 300) {
          let body = "";
          res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
          res.on("end", () => reject(statusError(res.statusCode ?? 0, body, `GET ${path}`)));
          res.on("error", reject);
          return;
        }
        let pending = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          pending += chunk;
          let nl: number;
          while ((nl = pending.indexOf("\n")) >= 0) {
            const line = pending.slice(0, nl);
            pending = pending.slice(nl + 1);
            if (!line.trim()) continue;
            try {
              onObject(JSON.parse(line));
            } catch (e) {
              req.destroy(e as Error);
              return;
            }
          }
        });
        let ended = false;
        res.on("end", () => {
          ended = true;
          resolve();
        });
        res.on("error", reject);
        // A connection cut mid-response (the server crashed) closes without an end.
        res.on("close", () => ended || reject(new Error("the API server closed the watch connection")));
      });
      req.setTimeout(options.idleMs, () => req.destroy(new Error(`no data from the API server for ${options.idleMs / 1000} s`)));
      req.on("error", reject);
      req.end();
    });
  }
}

function statusError(status: number, body: string, what: string): ApiError {
  try {
    const s = JSON.parse(body) as { message?: string; reason?: string; code?: number };
    return new ApiError(s.code ?? status, `${what}: ${s.message ?? `HTTP ${status}`}`, s.reason);
  } catch {
    return new ApiError(status, `${what}: HTTP ${status}: ${body.slice(0, 200)}`);
  }
}
