// The few API calls reports need (GET, list, server-side apply), over one kept-alive TLS
// connection. @kubernetes/client-node's generic object API builds a new connection agent
// for every request: a TLS handshake per report write, on the agent and on the API server,
// times every node. Credentials still come from its KubeConfig (any auth method it knows).

import { Agent, request, type RequestOptions } from "node:https";
import type { KubeConfig } from "@kubernetes/client-node";

/** The API server answered with an error status. */
export class ReportApiError extends Error {
  override name = "ReportApiError";
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export const isNotFound = (error: unknown) => error instanceof ReportApiError && error.status === 404;

export interface ObjectPath {
  apiVersion: string;
  /** Lower-case plural, e.g. "policyreports". */
  resource: string;
  namespace?: string;
  name?: string;
}

const TIMEOUT_MS = 30_000;

export class ReportApi {
  private readonly config: KubeConfig;
  private readonly server: URL;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });

  constructor(config: KubeConfig) {
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error("no Kubernetes cluster configured for policy reports");
    this.config = config;
    this.server = new URL(cluster.server);
  }

  /** The object, or undefined when it does not exist. */
  async get<T>(path: ObjectPath): Promise<T | undefined> {
    try {
      return await this.call<T>("GET", urlPath(path));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  list<T>(path: ObjectPath, labelSelector: string): Promise<{ items: T[] }> {
    return this.call("GET", `${urlPath(path)}?labelSelector=${encodeURIComponent(labelSelector)}`);
  }

  /** Server-side apply of the whole object, taking over any field another manager set. */
  apply<T extends { apiVersion: string; metadata: { name: string; namespace?: string } }>(path: ObjectPath, object: T, fieldManager: string): Promise<T> {
    return this.call("PATCH", `${urlPath(path)}?fieldManager=${encodeURIComponent(fieldManager)}&force=true`, JSON.stringify(object), "application/apply-patch+yaml");
  }

  private async call<T>(method: string, path: string, body?: string, contentType?: string): Promise<T> {
    const url = new URL(path, this.server);
    const opts: RequestOptions = { method, hostname: url.hostname, port: url.port, path: url.pathname + url.search, headers: { Accept: "application/json" } };
    if (body !== undefined) opts.headers = { ...opts.headers, "Content-Type": contentType ?? "application/json", "Content-Length": Buffer.byteLength(body) };
    await this.config.applyToHTTPSOptions(opts);
    // Ours instead of the one applyToHTTPSOptions installs (which closes the connection after
    // each request); the request's own TLS options (CA, client certificate) still apply.
    // Behind a proxy, its agent is what reaches the server: keep it.
    if (!this.config.getCurrentCluster()?.proxyUrl) opts.agent = this.agent;
    opts.signal = AbortSignal.timeout(TIMEOUT_MS);
    return new Promise<T>((resolve, reject) => {
      const req = request(opts, (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
        res.on("error", reject);
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            return reject(new ReportApiError(status, `${method} ${url.pathname}: HTTP ${status}, not JSON: ${text.slice(0, 200)}`));
          }
          if (status >= 300) return reject(new ReportApiError(status, (parsed as { message?: string }).message ?? `${method} ${url.pathname}: HTTP ${status}`));
          resolve(parsed as T);
        });
      });
      req.on("error", reject);
      req.end(body);
    });
  }
}

function urlPath({ apiVersion, resource, namespace, name }: ObjectPath): string {
  const group = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return `${group}${namespace ? `/namespaces/${encodeURIComponent(namespace)}` : ""}/${resource}${name ? `/${encodeURIComponent(name)}` : ""}`;
}
