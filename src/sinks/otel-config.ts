// Where and how the OTel sink exports: read only from the standard OTLP exporter
// variables, each logs-specific one (OTEL_EXPORTER_OTLP_LOGS_*) winning over its generic
// one (OTEL_EXPORTER_OTLP_*), an empty value counting as unset, as the OpenTelemetry
// specification says. docs/observability.md has the table.
//
// The sink is off unless an endpoint variable is set: a security agent that silently
// sent its events to localhost:4318 (the specification's default) would look configured
// and deliver nothing.

import { parseKeyPairsIntoRecord } from "@opentelemetry/core";
import { CompressionAlgorithm } from "@opentelemetry/otlp-exporter-base";

export const OTLP_PROTOCOLS = ["http/protobuf", "http/json", "grpc"] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

export interface OtlpLogsConfig {
  protocol: OtlpProtocol;
  /** http/*: the full URL records are POSTed to (…/v1/logs); grpc: scheme://host:port. */
  url: string;
  headers: Record<string, string>;
  /** Per export, retries included. */
  timeoutMillis: number;
  compression: CompressionAlgorithm;
}

type Env = Record<string, string | undefined>;

const DEFAULT_PROTOCOL: OtlpProtocol = "http/protobuf";
const DEFAULT_TIMEOUT_MILLIS = 10_000;
const HTTP_LOGS_PATH = "v1/logs";

/** The sink's configuration, or undefined when no endpoint is set (the sink stays off). */
export function otlpLogsConfigFromEnv(env: Env = process.env): OtlpLogsConfig | undefined {
  const logsEndpoint = setting(env, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT");
  const genericEndpoint = setting(env, "OTEL_EXPORTER_OTLP_ENDPOINT");
  if (!logsEndpoint && !genericEndpoint) return undefined;

  const protocol = logsOrGeneric(env, "PROTOCOL");
  if (protocol && !(OTLP_PROTOCOLS as readonly string[]).includes(protocol.value)) {
    throw new Error(`${protocol.name}="${protocol.value}": expected one of ${OTLP_PROTOCOLS.join(", ")}`);
  }
  const chosen = (protocol?.value as OtlpProtocol | undefined) ?? DEFAULT_PROTOCOL;

  const timeout = logsOrGeneric(env, "TIMEOUT");
  const timeoutMillis = timeout ? Number(timeout.value) : DEFAULT_TIMEOUT_MILLIS;
  if (!Number.isFinite(timeoutMillis) || timeoutMillis <= 0) {
    throw new Error(`${timeout!.name}="${timeout!.value}": expected a number of milliseconds greater than 0`);
  }

  const compression = logsOrGeneric(env, "COMPRESSION");
  if (compression && !(Object.values(CompressionAlgorithm) as string[]).includes(compression.value)) {
    throw new Error(`${compression.name}="${compression.value}": expected gzip or none`);
  }

  return {
    protocol: chosen,
    url: endpointUrl(chosen, logsEndpoint, genericEndpoint),
    // Merged per key, the logs-specific value winning: what the OpenTelemetry JS exporters
    // do with these variables themselves, so the headers sent are exactly these.
    headers: {
      ...parseKeyPairsIntoRecord(setting(env, "OTEL_EXPORTER_OTLP_HEADERS")?.value),
      ...parseKeyPairsIntoRecord(setting(env, "OTEL_EXPORTER_OTLP_LOGS_HEADERS")?.value),
    },
    timeoutMillis,
    compression: (compression?.value as CompressionAlgorithm | undefined) ?? CompressionAlgorithm.NONE,
  };
}

/**
 * The logs-specific endpoint is used as given. The generic one is a base: http/* appends
 * v1/logs to it, grpc uses it as is (the service path is part of the protocol).
 */
function endpointUrl(protocol: OtlpProtocol, logs: Setting | undefined, generic: Setting | undefined): string {
  const chosen = (logs ?? generic)!;
  let url: URL | undefined;
  try {
    url = new URL(chosen.value);
  } catch {
    url = undefined;
  }
  if (url?.protocol !== "http:" && url?.protocol !== "https:") {
    throw new Error(`${chosen.name}="${chosen.value}": expected an http:// or https:// URL such as http://collector:${protocol === "grpc" ? 4317 : 4318}`);
  }
  if (logs || protocol === "grpc") return url.href;
  return new URL(HTTP_LOGS_PATH, url.href.endsWith("/") ? url.href : url.href + "/").href;
}

interface Setting {
  name: string;
  value: string;
}

function setting(env: Env, name: string): Setting | undefined {
  const value = env[name]?.trim();
  return value ? { name, value } : undefined;
}

function logsOrGeneric(env: Env, suffix: string): Setting | undefined {
  return setting(env, `OTEL_EXPORTER_OTLP_LOGS_${suffix}`) ?? setting(env, `OTEL_EXPORTER_OTLP_${suffix}`);
}
