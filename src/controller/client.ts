// The few HTTP calls the controller's informers make to the API server: a JSON GET (lists)
// and a streamed GET (watches, one JSON object per line). Credentials and TLS come from
// @kubernetes/client-node's KubeConfig (KUBECONFIG, or the in-cluster service account), so
// every auth method it knows works; the requests are plain node:https so that the informer
// controls connection, timeout and retry behaviour itself.

import { existsSync } from "node:fs";
import { request, type RequestOptions } from "node:https";
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

export class KubeClient {
  readonly config: KubeConfig;
  private readonly server: URL;

  constructor(config: KubeConfig) {
    this.config = config;
    this.server = new URL(config.getCurrentCluster()!.server);
  }

  private async options(path: string, query: Query, signal?: AbortSignal): Promise<RequestOptions> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    const opts: RequestOptions = { method: "GET", hostname: url.hostname, port: url.port, path: url.pathname + url.search, headers: { Accept: "application/json" } };
    await this.config.applyToHTTPSOptions(opts);
    if (signal) opts.signal = signal;
    return opts;
  }

  async getJson<T>(path: string, query: Query = {}, timeoutMs = 60_000): Promise<T> {
    const opts = await this.options(path, query, AbortSignal.timeout(timeoutMs));
    return new Promise<T>((resolve, reject) => {
      const req = request(opts, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
        res.on("error", reject);
        res.on("end", () => {
          if ((res.statusCode ?? 0) >= 300) return reject(statusError(res.statusCode ?? 0, body));
          try {
            resolve(JSON.parse(body) as T);
          } catch (e) {
            reject(new Error(`GET ${path}: the answer is not JSON (${(e as Error).message})`));
          }
        });
      });
      req.on("error", reject);
      req.end();
    });
  }

  /**
   * A streamed GET: calls onObject for each line's JSON object until the server ends the
   * response (resolves), the connection fails or `signal` aborts (rejects), or no byte
   * arrives for `idleMs` (rejects: a half-open connection must not stall a watch forever).
   */
  async stream(path: string, query: Query, onObject: (o: unknown) => void, options: { signal: AbortSignal; idleMs: number }): Promise<void> {
    const opts = await this.options(path, query, options.signal);
    return new Promise<void>((resolve, reject) => {
      const req = request(opts, (res) => {
        if ((res.statusCode ?? 0) >= 300) {
          let body = "";
          res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
          res.on("end", () => reject(statusError(res.statusCode ?? 0, body)));
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

function statusError(status: number, body: string): ApiError {
  try {
    const s = JSON.parse(body) as { message?: string; reason?: string; code?: number };
    return new ApiError(s.code ?? status, s.message ?? `HTTP ${status}`, s.reason);
  } catch {
    return new ApiError(status, `HTTP ${status}: ${body.slice(0, 200)}`);
  }
}
