// The metrics endpoint and the observe stream of a real agent (`palisade run`), read the
// way users read them: an HTTP scrape and `palisade observe`, with real processes killed
// and audited by the kernel. Needs root and BPF (fails, never skips, without them).

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { copyFileSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../support/cli.ts";

const PIN_DIR = "/sys/fs/bpf/palisade-test-observe";
const dir = mkdtempSync(join(tmpdir(), "palisade-observe-"));
const forbidden = join(dir, "forbidden");
const watched = join(dir, "watched");
const policies = join(dir, "policies");
const socket = join(dir, "observe.sock");
const palisade = join(ROOT, "bin", "palisade");

const policy = (action: string) =>
  `apiVersion: palisade.dev/v1alpha1\nkind: TracingPolicy\nmetadata: {name: demo}\nspec:\n  rules:\n` +
  `    - {name: no-forbidden, hook: process.exec, match: 'process.binary == "${forbidden}"', action: ${action}, severity: high}\n` +
  `    - {name: watched-file, hook: file.open, match: 'file.path == "${watched}"', action: audit, severity: info}\n`;

interface RunningAgent {
  process: ChildProcess;
  log: () => string;
  waitForLog(pattern: RegExp, after?: number): Promise<RegExpExecArray>;
}

function startAgent(): RunningAgent {
  const child = spawn(palisade, ["run", "--policies", policies, "--events-file", join(dir, "events.jsonl"), "--pin-dir", PIN_DIR,
    "--metrics-address", "127.0.0.1:0", "--observe-socket", socket], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (log += d));
  return { process: child, log: () => log, waitForLog: (pattern, after = 0) => waitFor(() => pattern.exec(log.slice(after)), () => `agent never logged ${pattern}; log:\n${log}`) };
}

async function waitFor<T>(probe: () => T | null | undefined | false | Promise<T | null | undefined | false>, describe: () => string | Promise<string>, timeoutMillis = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMillis;
  for (;;) {
    const found = await probe();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(await describe());
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopAgent(agent: RunningAgent): Promise<void> {
  if (agent.process.exitCode !== null) return;
  agent.process.kill("SIGTERM");
  await new Promise((resolve) => agent.process.once("exit", resolve));
}

/** Every observer started, so that none outlives a failed test. */
const started: ChildProcess[] = [];

/** `palisade observe` as a user runs it, its output collected. */
function startObserver(args: string[]) {
  const child = spawn(palisade, ["observe", "--socket", socket, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  started.push(child);
  const out = { stdout: "", stderr: "" };
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out.stdout += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (out.stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, out, exited, lines: () => out.stdout.split("\n").filter(Boolean) };
}

/** Stops an observer and waits until the agent no longer counts it, so the next one's connection is its own. */
async function stopObserver(observer: ReturnType<typeof startObserver>): Promise<void> {
  observer.child.kill();
  await observer.exited;
  await waitFor(async () => (await observers()) === 0, () => "the agent still counts a client that left");
}

/** Starts an observer and waits until the agent counts it. */
async function connectedObserver(args: string[]) {
  const observer = startObserver(args);
  await waitFor(async () => (await observers()) === 1, () => `observe never connected: ${observer.out.stderr}`);
  return observer;
}

let agent: RunningAgent;
let metricsUrl: string;

/** One scrape, as series text ("name{labels}") to value. */
async function scrape(): Promise<{ text: string; value: (series: string) => number | undefined }> {
  const response = await fetch(metricsUrl);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    values.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return { text, value: (series) => values.get(series) };
}

const KILLED = 'palisade_events_total{policy="demo",rule="no-forbidden",hook="process.exec",action="killed"}';
const observers = async () => (await scrape()).value("palisade_observe_clients");
const runForbidden = () => spawnSync(forbidden, [], { encoding: "utf8" });

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("the agent tests need root (CAP_BPF, CAP_SYS_ADMIN): run them as root");
  copyFileSync("/usr/bin/id", forbidden);
  writeFileSync(watched, "x");
  mkdirSync(policies);
  writeFileSync(join(policies, "demo.yaml"), policy("kill"));
  agent = startAgent();
  const [, address] = await agent.waitForLog(/metrics on (http:\/\/[\d.:]+\/metrics)\n/);
  metricsUrl = address!;
  await agent.waitForLog(/observe stream on /);
}, 60_000);

afterAll(async () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await stopAgent(agent);
});

describe("the metrics endpoint", () => {
  it("counts a killed exec by policy, rule, hook and action, and the kernel's kill", async () => {
    const before = await scrape();
    expect(runForbidden().signal).toBe("SIGKILL");
    await waitFor(async () => (await scrape()).value(KILLED) === (before.value(KILLED) ?? 0) + 1, () => `${KILLED} did not move`);
    const after = await scrape();
    expect(after.value("palisade_kernel_kills_total")).toBeGreaterThan(before.value("palisade_kernel_kills_total")!);
    expect(after.value('palisade_exported_events_total{sink="jsonl"}')).toBeGreaterThan(0);
  });

  it("shows the backend per hook, policies by state, map sizes, drops, with HELP and TYPE for each", async () => {
    const { text, value } = await scrape();
    expect(value('palisade_hook_backend_info{hook="process.exec",backend="tracepoint"}')).toBe(1);
    expect(value('palisade_policies{state="enforce"}')).toBe(1);
    expect(value('palisade_policies{state="monitor"}')).toBe(0);
    expect(value("palisade_ringbuf_dropped_events_total")).toBe(0);
    expect(value('palisade_export_dropped_events_total{sink="jsonl"}')).toBe(0);
    expect(value("process_resident_memory_bytes")).toBeGreaterThan(10 * 2 ** 20);
    expect(value("process_cpu_seconds_total")).toBeGreaterThan(0);
    // The exec rule's binary is matched by inode and by path.
    expect(value('palisade_map_entries{map="pal_inodes"}')).toBeGreaterThan(0);
    expect(value('palisade_map_capacity_entries{map="pal_inodes"}')).toBe(65536);
    for (const family of new Set([...text.matchAll(/^(palisade_\w+?)(?:_bucket|_sum|_count)?(?:\{| )/gm)].map((m) => m[1]!))) {
      expect(text, family).toMatch(new RegExp(`^# HELP ${family} \\S`, "m"));
      expect(text, family).toMatch(new RegExp(`^# TYPE ${family} (counter|gauge|histogram)$`, "m"));
    }
  });

  it("observes how long each plan change took to apply", async () => {
    const before = (await scrape()).value("palisade_plan_apply_duration_seconds_count")!;
    const mark = agent.log().length;
    writeFileSync(join(policies, "demo.yaml"), policy("audit"));
    await agent.waitForLog(/enforcing plan .*demo\.yaml/, mark);
    const after = await scrape();
    expect(after.value("palisade_plan_apply_duration_seconds_count")).toBe(before + 1);
    expect(after.value('palisade_plan_apply_duration_seconds_bucket{le="+Inf"}')).toBe(before + 1);
    expect(after.value("palisade_plan_apply_duration_seconds_sum")).toBeGreaterThan(0);
    writeFileSync(join(policies, "demo.yaml"), policy("kill"));
    await agent.waitForLog(/enforcing plan .*demo\.yaml/, agent.log().length);
  });

  it("answers /metrics and the DaemonSet's probes, nothing else", async () => {
    expect((await fetch(metricsUrl.replace("/metrics", "/"))).status).toBe(404);
    expect((await fetch(metricsUrl.replace("/metrics", "/healthz"))).status).toBe(200);
    expect((await fetch(metricsUrl.replace("/metrics", "/readyz"))).status).toBe(200); // a plan is in force
  });
});

describe("palisade observe", () => {
  it("creates the socket for root only", () => {
    expect(statSync(socket).mode & 0o777).toBe(0o600);
  });

  it("streams events live as JSON lines in the brief's format", async () => {
    const observer = await connectedObserver(["-o", "json"]);
    const { pid } = runForbidden();
    const line = await waitFor(() => observer.lines().find((l) => JSON.parse(l).process.pid === pid), async () => `no event for pid ${pid}: ${observer.out.stdout} ${observer.out.stderr} ${(await scrape()).text.split("\n").filter((l) => l.includes("observe")).join("\n")} ${agent.log()}`);
    expect(Object.keys(JSON.parse(line))).toEqual(["time", "node", "hook", "action", "policy", "rule", "severity", "process", "parent"]);
    expect(JSON.parse(line)).toMatchObject({ hook: "process.exec", action: "killed", policy: "demo", rule: "no-forbidden", process: { binary: forbidden } });
    await stopObserver(observer);
  });

  it("prints compact lines, filtered by CEL", async () => {
    const observer = await connectedObserver(["--filter", `hook == "file.open" && file.name == "watched"`]);
    runForbidden();
    const child = spawnSync(process.execPath, ["-e", `require("fs").readFileSync(${JSON.stringify(watched)})`]);
    const line = await waitFor(() => observer.lines()[0], () => `nothing printed: ${observer.out.stderr}`);
    expect(line).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} audited demo/watched-file open +pid ${child.pid} \\S+ -> ${watched}$`));
    await new Promise((r) => setTimeout(r, 300));
    expect(observer.lines()).toHaveLength(1); // the killed exec did not pass the filter
    await stopObserver(observer);
  });

  it("says where a filter is wrong, by column", async () => {
    const observer = startObserver(["--filter", `action == "killed" && process.binnary == "x"`]);
    expect(await observer.exited).toBe(2);
    expect(observer.out.stderr).toContain("--filter, column 31: No such key: binnary");
  });

  it("replays recent events with --since", async () => {
    const { pid } = runForbidden();
    await waitFor(async () => (await scrape()).value('palisade_exported_events_total{sink="jsonl"}'), () => "");
    await new Promise((r) => setTimeout(r, 200));
    const observer = startObserver(["-o", "json", "--since", "1m"]);
    await waitFor(() => observer.lines().some((l) => JSON.parse(l).process.pid === pid), () => `no replay of pid ${pid}: ${observer.out.stdout}${observer.out.stderr}`);
    await stopObserver(observer);
  });

  it("tells a client that does not read that it missed events, and the agent goes on", async () => {
    // A client that asks and then reads nothing while 20,000 events are published.
    const stalled = connect(socket);
    await new Promise((resolve) => stalled.once("connect", resolve));
    stalled.write("{}\n");
    stalled.pause();
    await waitFor(async () => (await observers()) === 1, () => "stalled client never counted");
    const opener = spawnSync(process.execPath, ["-e", `const fs = require("fs"); for (let i = 0; i < 20000; i++) fs.closeSync(fs.openSync(${JSON.stringify(watched)}, "r"))`]);
    expect(opener.status).toBe(0);
    const dropped = await waitFor(async () => (await scrape()).value('palisade_export_dropped_events_total{sink="observe"}'), () => "nothing dropped for the stalled client");
    expect(dropped).toBeGreaterThan(0);
    // Still enforcing, still reporting.
    expect(runForbidden().signal).toBe("SIGKILL");
    // Once the client reads, it learns how many it missed.
    let received = "";
    stalled.setEncoding("utf8").on("data", (d: string) => (received += d));
    stalled.resume();
    await waitFor(() => /"type":"dropped","count":[1-9]\d*,"reason":"this observer read too slowly/.test(received), () => "no dropped notice");
    stalled.destroy();
    await waitFor(async () => (await observers()) === 0, () => "the agent still counts the stalled client");
  });

  it("with --reconnect, goes on across an agent restart without printing an event twice", async () => {
    const observer = await connectedObserver(["-o", "json", "--reconnect"]);
    const first = runForbidden().pid;
    await waitFor(() => observer.lines().length >= 1, () => "first event not printed");
    await stopAgent(agent);
    await waitFor(() => /retrying until it is back/.test(observer.out.stderr), () => `no retry notice: ${observer.out.stderr}`);
    agent = startAgent();
    metricsUrl = (await agent.waitForLog(/metrics on (http:\/\/[\d.:]+\/metrics)\n/))[1]!;
    await agent.waitForLog(/observe stream on /);
    await waitFor(() => /connected again/.test(observer.out.stderr), () => `never reconnected: ${observer.out.stderr}`);
    const second = runForbidden().pid;
    await waitFor(() => observer.lines().some((l) => JSON.parse(l).process.pid === second), () => `no event after the restart: ${observer.out.stdout}`);
    const pids = observer.lines().map((l) => JSON.parse(l).process.pid);
    expect(pids).toEqual([first, second]);
    await stopObserver(observer);
  });

  it("without an agent, says so and exits 2", async () => {
    const observer = spawnSync(palisade, ["observe", "--socket", join(dir, "nothing.sock")], { encoding: "utf8" });
    expect(observer.status).toBe(2);
    expect(observer.stderr).toContain("no agent is listening there");
  });
});

