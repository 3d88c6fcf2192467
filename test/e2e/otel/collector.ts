// A real OpenTelemetry Collector for the OTel e2e tests and the benchmark: built from
// upstream by ./build (manifest.yaml next to this file), started on 127.0.0.1 with free
// ports for OTLP/gRPC and OTLP/HTTP. What it receives it writes with the file exporter as
// OTLP JSON, one request per line, which records() reads back; or, for the benchmark,
// only counts (a million records a second would be gigabytes of JSON).

import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const HERE = import.meta.dirname;
const DIR_PREFIX = "palisade-otelcol-";

/** One log record as the collector received it, attribute values decoded. */
export interface ReceivedRecord {
  eventName?: string;
  /** Nanoseconds since the epoch, as OTLP JSON writes them: a decimal string. */
  timeUnixNano?: string;
  observedTimeUnixNano?: string;
  severityNumber?: number;
  severityText?: string;
  body?: unknown;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
  scope?: string;
}

export interface Collector {
  version: string;
  /** http://127.0.0.1:<port>: OTLP/gRPC. */
  grpcEndpoint: string;
  /** http://127.0.0.1:<port>: OTLP/HTTP (append /v1/logs for the logs URL). */
  httpEndpoint: string;
  /** Everything received since start, across restarts. Only with output "file". */
  records(): ReceivedRecord[];
  /** How many log records arrived since start, across restarts. */
  recordCount(): number;
  /** The running collector's process id (the benchmark reads its CPU time). */
  pid(): number | undefined;
  /** Polls until at least `count` records arrived; rejects after `timeoutMillis`. */
  waitForRecords(count: number, timeoutMillis?: number): Promise<void>;
  /** Stops it (SIGTERM: the exporters flush). Records stay readable. */
  stop(): Promise<void>;
  /** Starts it again on the same ports, keeping what it received so far. */
  restart(): Promise<void>;
  /** Stops it and removes its directory. */
  dispose(): Promise<void>;
}

export interface StartOptions {
  /** "file" (default): keep every record for records(); "count": only count them. */
  output?: "file" | "count";
}

let built: Promise<{ version: string; binary: string }> | undefined;

/**
 * Builds otelcol (or finds it in the cache) with ./build. A cold build takes minutes.
 * Rejects with the build's own explanation (no Go toolchain, a failed compile): never skips.
 */
export function ensureCollector(): Promise<{ version: string; binary: string }> {
  return (built ??= new Promise((resolve, reject) => {
    const child = spawn(join(HERE, "build"), [], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      process.stderr.write(chunk); // a cold build is long: show its progress
    });
    child.once("error", (e) => reject(new Error(`cannot run test/e2e/otel/build: ${e.message}`)));
    child.once("close", (code) => {
      const vars = Object.fromEntries(stdout.split("\n").map((l) => l.split("=", 2)).filter((kv) => kv.length === 2));
      if (code === 0 && vars.OTELCOL && vars.OTELCOL_VERSION) resolve({ version: vars.OTELCOL_VERSION, binary: vars.OTELCOL });
      else reject(new Error(`test/e2e/otel/build failed (exit ${code}); the OpenTelemetry tests need it:\n${stderr.trimEnd().split("\n").slice(-30).join("\n")}`));
    });
  }));
}

const live = new Set<{ child: () => ChildProcess | undefined; dir: string }>();
let exitHookInstalled = false;

/** An exiting test process leaves no collector and no directory behind. */
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const collector of live) {
      collector.child()?.kill("SIGKILL");
      rmSync(collector.dir, { recursive: true, force: true });
    }
  });
}

export async function startCollector(options: StartOptions = {}): Promise<Collector> {
  const { version, binary } = await ensureCollector();
  removeStaleDirs();
  const output = options.output ?? "file";
  const dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  const dataFile = join(dir, "logs.jsonl");
  const logFile = join(dir, "collector.log");
  const [grpcPort, httpPort] = (await freePorts(2)) as [number, number];
  const config = join(dir, "collector.yaml");
  writeFileSync(config, collectorConfig({ grpcPort, httpPort, dataFile, output }));

  let child: ChildProcess | undefined;
  const handle = { child: () => child, dir };
  live.add(handle);
  installExitHook();

  // Its log goes to a file, not a pipe: nobody has to keep reading it (the benchmark's
  // parent blocks for minutes), and runs before a restart stay in it.
  const log = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
  const start = async () => {
    const fd = openSync(logFile, "a");
    child = spawn(binary, [`--config=file:${config}`], { stdio: ["ignore", "ignore", fd] });
    closeSync(fd);
    await waitUntilListening(child, [grpcPort, httpPort], log);
  };
  const stop = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    running.kill("SIGTERM");
    const timer = setTimeout(() => running.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  };

  const records = () => {
    if (output !== "file") throw new Error('records() needs startCollector({ output: "file" })');
    return existsSync(dataFile) ? parseRecords(readFileSync(dataFile, "utf8")) : [];
  };
  // In "count" mode the debug exporter logs one line per batch: "log records": N.
  const recordCount = () => (output === "file" ? records().length : countDebugRecords(log()));

  await start();
  return {
    version,
    grpcEndpoint: `http://127.0.0.1:${grpcPort}`,
    httpEndpoint: `http://127.0.0.1:${httpPort}`,
    records,
    recordCount,
    pid: () => child?.pid,
    async waitForRecords(count, timeoutMillis = 20_000) {
      const deadline = Date.now() + timeoutMillis;
      let seen = recordCount();
      while (seen < count) {
        if (Date.now() > deadline) throw new Error(`the collector received ${seen} log records within ${timeoutMillis} ms, expected ${count}`);
        await sleep(50);
        seen = recordCount();
      }
    },
    stop,
    async restart() {
      await stop();
      await start();
    },
    async dispose() {
      await stop();
      live.delete(handle);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function collectorConfig(o: { grpcPort: number; httpPort: number; dataFile: string; output: "file" | "count" }): string {
  // JSON is YAML: no quoting questions. Internal metrics would listen on :8888 in every
  // collector at once; the log sampler would thin out the debug exporter's count lines.
  const exporters =
    o.output === "file"
      ? // append: a restart must not truncate what arrived before it.
        { file: { path: o.dataFile, append: true, flush_interval: "100ms" } }
      : { debug: { verbosity: "basic" } };
  return JSON.stringify({
    receivers: { otlp: { protocols: { grpc: { endpoint: `127.0.0.1:${o.grpcPort}` }, http: { endpoint: `127.0.0.1:${o.httpPort}` } } } },
    exporters,
    service: {
      telemetry: { metrics: { level: "none" }, logs: { sampling: { enabled: false } } },
      pipelines: { logs: { receivers: ["otlp"], exporters: Object.keys(exporters) } },
    },
  });
}

function countDebugRecords(log: string): number {
  let total = 0;
  for (const match of log.matchAll(/"log records": (\d+)/g)) total += Number(match[1]);
  return total;
}

// --- OTLP JSON as the file exporter writes it --------------------------------------

interface AnyValueJson {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
  bytesValue?: string;
  arrayValue?: { values?: AnyValueJson[] };
  kvlistValue?: { values?: KeyValueJson[] };
}
interface KeyValueJson {
  key: string;
  value?: AnyValueJson;
}
interface LogRecordJson extends Omit<ReceivedRecord, "body" | "attributes" | "resource" | "scope"> {
  body?: AnyValueJson;
  attributes?: KeyValueJson[];
}
interface ExportRequestJson {
  resourceLogs?: { resource?: { attributes?: KeyValueJson[] }; scopeLogs?: { scope?: { name?: string }; logRecords?: LogRecordJson[] }[] }[];
}

/** Complete lines only: the exporter may be halfway through writing the last one. */
export function parseRecords(text: string): ReceivedRecord[] {
  const out: ReceivedRecord[] = [];
  const complete = text.slice(0, text.lastIndexOf("\n") + 1);
  for (const line of complete.split("\n")) {
    if (!line) continue;
    const request = JSON.parse(line) as ExportRequestJson;
    for (const rl of request.resourceLogs ?? []) {
      const resource = attributesOf(rl.resource?.attributes);
      for (const sl of rl.scopeLogs ?? []) {
        for (const { body, attributes, ...rest } of sl.logRecords ?? []) {
          out.push({ ...rest, body: body && valueOf(body), attributes: attributesOf(attributes), resource, scope: sl.scope?.name });
        }
      }
    }
  }
  return out;
}

function attributesOf(list: KeyValueJson[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, kv.value && valueOf(kv.value)]));
}

function valueOf(v: AnyValueJson): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  // int64 is a decimal string in OTLP JSON; every integer we send fits a double.
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.bytesValue !== undefined) return v.bytesValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(valueOf);
  if (v.kvlistValue) return attributesOf(v.kvlistValue.values);
  return undefined;
}

// --- processes and ports -------------------------------------------------------------

async function waitUntilListening(child: ChildProcess, ports: number[], log: () => string): Promise<void> {
  // Every port: the gRPC and HTTP servers start one after the other.
  const deadline = Date.now() + 30_000;
  for (const port of ports) {
    while (!(await accepts(port))) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`otelcol exited (${child.exitCode ?? child.signalCode}) before listening:\n${log()}`);
      if (Date.now() > deadline) throw new Error(`otelcol did not listen on 127.0.0.1:${port} within 30 s:\n${log()}`);
      await sleep(50);
    }
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Free TCP ports on 127.0.0.1, all distinct (each is held until all are found). */
async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((resolve, reject) => {
            server.once("error", reject);
            server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port));
          }),
      ),
    );
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

/** Directories of collectors whose test process died without cleaning up (SIGKILL, OOM). */
function removeStaleDirs() {
  for (const entry of readdirSync(tmpdir())) {
    const pid = Number(new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(entry)?.[1]);
    if (!pid || pid === process.pid || existsSync(`/proc/${pid}`)) continue;
    rmSync(join(tmpdir(), entry), { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
