// Where the agent's events and numbers go, in one bundle whatever feeds the agent (policy
// files or Kubernetes): JSON lines, OpenTelemetry (when the OTEL_EXPORTER_OTLP_* variables
// say where), the observe stream, and the Prometheus metrics endpoint.
//
//   const outputs = startOutputs({...});
//   outputs.write(event);          // per event, never waits
//   outputs.planApplied(plan, ms); // per plan put in force
//   await outputs.close();

import type { RuntimeEvent } from "../events/event.ts";
import type { KernelPlan } from "../plan/types.ts";
import type { Hook } from "../policy/model.ts";
import { AgentMetrics, type KernelSource, type SinkCounts } from "../metrics/agent-metrics.ts";
import { DEFAULT_METRICS_ADDRESS, serveMetrics, type MetricsServer } from "../metrics/server.ts";
import { DEFAULT_OBSERVE_SOCKET } from "../observe/protocol.ts";
import { ObserveServer } from "../observe/server.ts";
import { eventJson, JsonLinesSink } from "../sinks/jsonl.ts";
import { otelSinkFromEnv } from "../sinks/otel.ts";

export interface OutputsOptions {
  node: string;
  /** JSON lines destination; "-" or undefined: stdout. */
  eventsFile?: string;
  /** The backend of each hook on this node (for OpenTelemetry's palisade.backend). */
  backends: Partial<Record<Hook, string>>;
  /** security_rule.version of the events now: the plan's digest, or the policy's generation. */
  ruleVersion: (event: RuntimeEvent) => string | undefined;
  /** host:port for /metrics (default 127.0.0.1:9464); false: no metrics endpoint. */
  metricsAddress?: string | false | undefined;
  /** Unix socket for `palisade observe` (default /run/palisade/observe.sock); false: no observe stream. */
  observeSocket?: string | false | undefined;
  /** The enforcer, once open, read at scrape time. */
  kernel: () => KernelSource | undefined;
  log: (line: string) => void;
}

export interface Outputs {
  write(event: RuntimeEvent): void;
  /** A plan is in force: policies by mode, and how long applying it took (when it was a change). */
  planApplied(plan: KernelPlan, durationMs?: number): void;
  /** A policy change was refused. */
  policyRejected(): void;
  metrics: AgentMetrics;
  close(): Promise<void>;
}

/**
 * Opens every output. The metrics endpoint and the observe socket start listening in the
 * background (a log line says where, once they do). One that cannot listen is logged and
 * left off: enforcement does not stop for want of a port. A bad events file or OTel
 * setting throws here (nothing would be reported where it was asked to be).
 */
export function startOutputs(options: OutputsOptions): Outputs {
  const { log } = options;
  const jsonl = new JsonLinesSink(options.eventsFile, { onError: (e) => log(`events file: ${e.message}; events are dropped and counted`) });
  const otel = otelSinkFromEnv({ backends: options.backends, ruleVersion: options.ruleVersion, warn: log });
  if (otel) log("exporting events to OpenTelemetry");

  const socket = options.observeSocket ?? DEFAULT_OBSERVE_SOCKET;
  const observe = socket ? new ObserveServer({ path: socket, node: options.node }) : undefined;
  const observing = observe?.listen().then(
    () => log(`observe stream on ${observe.path}`),
    (e: Error) => log(`observe: cannot listen on ${observe.path}: ${e.message}; no observe stream`),
  );

  const sinks = (): Record<string, SinkCounts> => ({
    jsonl: { exported: jsonl.written, dropped: jsonl.dropped },
    ...(otel && { otel: { exported: otel.exported, dropped: otel.dropped, pending: otel.pending } }),
    ...(observe && { observe: { exported: observe.exported, dropped: observe.dropped } }),
  });
  const metrics = new AgentMetrics({ kernel: options.kernel, sinks, ...(observe && { observers: () => observe.clientCount }) });
  const address = options.metricsAddress ?? DEFAULT_METRICS_ADDRESS;
  let planInForce = false;
  const serving: Promise<MetricsServer | undefined> = address
    ? serveMetrics(metrics.registry, address, () => planInForce).then(
        (server) => {
          log(`metrics on http://${server.address}/metrics`);
          return server;
        },
        (e: Error) => {
          log(`metrics: cannot listen on ${address}: ${e.message}; no metrics endpoint`);
          return undefined;
        },
      )
    : Promise.resolve(undefined);

  return {
    metrics,
    write(event) {
      metrics.event(event);
      // Serialized once for every output: at tens of thousands of events a second, each
      // JSON.stringify more is a microsecond of the thread that drains the ring buffer.
      const json = eventJson(event);
      jsonl.write(event, json);
      otel?.write(event, json);
      observe?.publish(event, json);
    },
    planApplied(plan, durationMs) {
      planInForce = true;
      const byMode = { enforce: 0, monitor: 0 };
      for (const p of plan.policies) byMode[p.mode]++;
      metrics.setPolicies(byMode);
      if (durationMs !== undefined) metrics.planApplied(durationMs);
    },
    policyRejected: () => metrics.policyRejected(),
    async close() {
      await observing;
      await Promise.all([jsonl.close(), otel?.close(), observe?.close(), serving.then((server) => server?.close())]);
    },
  };
}
