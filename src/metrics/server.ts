// The metrics endpoint: GET /metrics in the Prometheus text format, on one address
// (loopback by default in standalone; the Helm chart listens on every interface), with
// the probes a DaemonSet needs: /healthz (the agent's event loop answers) and /readyz
// (a plan is in force).

import { createServer, type Server } from "node:http";
import type { Registry } from "./exposition.ts";

export const DEFAULT_METRICS_ADDRESS = "127.0.0.1:9464";

/** "host:port", "[v6]:port" or ":port" (every interface). */
export function parseListenAddress(text: string): { host?: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  const port = match && Number(match[3]);
  if (!match || !Number.isInteger(port) || port! > 65535) throw new Error(`metrics address "${text}": expected host:port, e.g. 127.0.0.1:9464, [::1]:9464 or :9464`);
  const host = match[1] ?? match[2];
  return { ...(host && { host }), port: port! };
}

export interface MetricsServer {
  /** The address it listens on (the port resolved when 0 was asked for). */
  address: string;
  close(): Promise<void>;
}

export async function serveMetrics(registry: Registry, address: string, ready: () => boolean = () => true): Promise<MetricsServer> {
  const { host, port } = parseListenAddress(address);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz" || path === "/readyz") {
      const ok = path === "/healthz" || ready();
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ok\n" : "no plan in force yet\n");
      return;
    }
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: metrics are at /metrics (probes: /healthz, /readyz)\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    let body: string;
    try {
      body = registry.expose();
    } catch (e) {
      res.writeHead(500, { "content-type": "text/plain" }).end(`cannot read the metrics: ${(e as Error).message}\n`);
      return;
    }
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(req.method === "HEAD" ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  // Scrapers keep connections alive; they must not keep a stopping agent alive.
  server.unref();
  const bound = server.address();
  const resolved = typeof bound === "object" && bound ? (bound.family === "IPv6" ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`) : address;
  return {
    address: resolved,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
