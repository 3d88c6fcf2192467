// The backend scenarios, run inside a test VM (test/e2e/vm) with Node 24, all of one boot's
// backends in one run. It loads the enforcer, applies one plan, makes every call a rule
// should stop (and the ones it should not), each the plain way and the ways around a
// path rule, and prints what happened as one machine-readable line:
//
//   PALISADE-SCENARIOS {"kernel":..., "phases":[{"backend":..., "scenarios":{...}}], "bench":...}
//
// It judges nothing: the host's tests (test/e2e/backends/*.test.ts) hold the expectations.
//
//   node test/e2e/backends/scenarios.ts --tricks PATH [--phase BACKEND]... [--bench N [--bench-backend BACKEND]...]
//
// --phase lsm|fmod_ret|kprobe|tracepoint|auto: allow only that backend on every hook (auto: the
// enforcer's own choice); one phase per flag, in order (default: auto, unless --bench).
// --bench N: afterwards, ns per openat+close of a tmpfs file (5 rounds of N calls) with no agent,
// with the agent but no file.open rule, and with 10 and 10,000 file.path rules, and the
// file.open program's own ns per run (bpf_stats), for each --bench-backend (default auto).
// test/e2e/backends/bench.ts runs it in both VMs.

import { spawnSync } from "node:child_process";
import {
  chmodSync, closeSync, copyFileSync, ftruncateSync, linkSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, realpathSync, statSync,
  symlinkSync, writeFileSync, writeSync,
} from "node:fs";
import { createServer, type Server } from "node:net";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { compile, type Capabilities } from "../../../src/compiler/index.ts";
import { Enforcer, type Backend, type EnforcerEvent, type Workload } from "../../../src/enforcer/index.ts";
import type { KernelPlan } from "../../../src/plan/types.ts";
import type { Hook } from "../../../src/policy/model.ts";
import { makePolicy, type PolicySpec, type RuleSpec } from "../../support/policies.ts";
import { parseTrick, type TrickResult } from "../../enforcer/tricks.ts";

export interface ScenarioResult {
  argv: string[];
  pid?: number;
  status: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  trick?: TrickResult;
  /** A file's content after the scenario, where the scenario says which. */
  after?: string;
  events: { event: EnforcerEvent["event"]; acted: boolean; signalFailed: boolean; mappedIpv4: boolean; openedAs?: string }[];
}

export interface PhaseResult {
  requested: string;
  compat: boolean;
  hooks: {
    hook: Hook; selected: Backend | null; available: Backend[]; attempts: Record<string, boolean>;
    actions: Record<string, string | null>; how?: string; cannotSee: string[]; notes: string[];
  }[];
  capabilities: Capabilities;
  programs: string[];
  openMs: number;
  applyMs: number;
  scenarios: Record<string, ScenarioResult>;
  counters: Record<string, string>;
  errors: string[];
  /** Rules left out of the plan: their action is impossible with this backend. */
  dropped: string[];
  /** What went wrong, should anything have thrown. */
  refused?: string;
}

export interface BenchResult {
  backend: Backend | null;
  opens: number;
  rounds: number;
  /** ns per openat+close (the whole syscall pair, in the emulator), per case: median and minimum over the rounds. */
  loopNs: Record<string, { median: number; min: number }>;
  /** ns per run of the file.open program itself (kernel.bpf_stats_enabled), per case: median and minimum. */
  programNs: Record<string, { median: number; min: number }>;
  samples: Record<string, { loop: number[]; program: number[] }>;
}

export interface RunResult {
  /** The runner: the parent of every scenario's process. */
  pid: number;
  execPath: string;
  kernel: string;
  lsms: string;
  dir: string;
  ports: Record<string, number>;
  phases: PhaseResult[];
  bench?: BenchResult[];
}

const { values } = parseArgs({
  options: {
    tricks: { type: "string" },
    phase: { type: "string", multiple: true },
    bench: { type: "string" },
    "bench-backend": { type: "string", multiple: true },
    pin: { type: "string", default: "/sys/fs/bpf/palisade-scenarios" },
  },
});
if (!values.tricks) throw new Error("--tricks PATH is required");
const T = resolve(values.tricks);

// ---- fixtures ----

const dir = realpathSync(mkdtempSync("/tmp/palisade-backends-"));
const d = dir;
const SECRET = "top secret\n";
copyFileSync("/bin/echo", `${d}/denied-echo`);
copyFileSync("/bin/echo", `${d}/ok-echo`);
copyFileSync("/bin/echo", `${d}/killed-echo`);
copyFileSync("/bin/echo", `${d}/watched-echo`);
writeFileSync(`${d}/denied.sh`, "#!/bin/sh\necho RAN\n");
chmodSync(`${d}/denied.sh`, 0o755);
writeFileSync(`${d}/secret.txt`, SECRET);
writeFileSync(`${d}/public.txt`, "public\n");
writeFileSync(`${d}/kill.txt`, "kill\n");
writeFileSync(`${d}/watched.txt`, "watched\n");
writeFileSync(`${d}/notes.txt`, "notes\n");
mkdirSync(`${d}/vault`);
writeFileSync(`${d}/vault/key`, "vault key\n");
mkdirSync(`${d}/sub`);
symlinkSync(`${d}/denied-echo`, `${d}/link-echo`);
linkSync(`${d}/denied-echo`, `${d}/sub/hard-echo`);
symlinkSync(`${d}/secret.txt`, `${d}/sub/innocent`);
linkSync(`${d}/secret.txt`, `${d}/sub/hard-link.txt`);
copyFileSync("/bin/echo", `${d}/pod-echo`);

// Workloads: two pod cgroups (the guest's own cgroup v2 hierarchy), each with a container
// child; only the pods are classified, as the Kubernetes controller does.
const POD_IN = "/sys/fs/cgroup/palisade-pod-in", POD_OUT = "/sys/fs/cgroup/palisade-pod-out";
for (const pod of [POD_IN, POD_OUT]) mkdirSync(`${pod}/main`, { recursive: true });
const WORKLOADS = new Map<bigint, Workload>([
  [statSync(POD_IN, { bigint: true }).ino, { namespace: "prod", pod: "pod-in", podUid: "uid-in", container: "main" }],
  [statSync(POD_OUT, { bigint: true }).ino, { namespace: "dev", pod: "pod-out", podUid: "uid-out" }],
]);

// The guest starts with its loopback interface down.
spawnSync("ip", ["link", "set", "lo", "up"]);

async function listen(): Promise<Server> {
  const server = createServer((s) => s.end("hello\n"));
  await new Promise<void>((resolve, reject) => server.listen(0, "127.0.0.1", resolve).on("error", reject));
  return server;
}
const servers = [await listen(), await listen(), await listen(), await listen(), await listen()];
// Five distinct ports: three TCP servers, and two numbers for UDP datagrams (nobody listens).
const [allowedPort, deniedPort, killPort, udpPort, udpAllowedPort] = servers.map((s) => (s.address() as { port: number }).port) as [number, number, number, number, number];

// ---- the plan ----

type Spec = Omit<PolicySpec, "rules"> & { rules: (RuleSpec & { fallback?: "kill" })[] };

/**
 * The plan for these capabilities. A rule asking for an action the backend cannot carry out
 * (even through its fallback) is left out and listed in `dropped`: a kill on connect where
 * the cgroup hooks may not send signals (6.1).
 */
function planOf(capabilities: Capabilities, specs: Spec[], dropped: string[] = []): KernelPlan {
  const policies = specs.map((spec) => {
    const rules = spec.rules.filter((r) => {
      const can = capabilities[r.hook] ?? [];
      const ok = r.action === "audit" || spec.mode === "monitor" || can.includes(r.action) || (r.fallback !== undefined && can.includes(r.fallback));
      if (!ok) dropped.push(r.name);
      return ok;
    });
    const policy = makePolicy({ ...spec, rules });
    rules.forEach((r, i) => r.fallback && (policy.rules[i]!.fallback = r.fallback));
    return policy;
  });
  const { plan, diagnostics } = compile(policies, { capabilities });
  if (!plan) throw new Error(`scenario policies do not compile: ${JSON.stringify(diagnostics)}`);
  return plan;
}

/** deny rules say fallback: kill, so the plan compiles for kill-only backends too (where they kill). */
const SPECS: Spec[] = [
  {
    name: "enforce",
    rules: [
      { name: "no-denied-echo", hook: "process.exec", match: `process.binary == "${d}/denied-echo"`, action: "deny", fallback: "kill", severity: "high" },
      { name: "kill-echo", hook: "process.exec", match: `process.binary == "${d}/killed-echo"`, action: "kill", severity: "critical" },
      { name: "no-pod-echo", hook: "process.exec", match: `process.binary == "${d}/pod-echo" && k8s.namespace == "prod"`, action: "deny", fallback: "kill" },
      { name: "no-script", hook: "process.exec", match: `process.binary == "${d}/denied.sh"`, action: "deny", fallback: "kill" },
      { name: "no-secret", hook: "file.open", match: `file.path == "${d}/secret.txt"`, action: "deny", fallback: "kill", severity: "critical" },
      { name: "no-vault", hook: "file.open", match: `file.path.startsWith("${d}/vault/")`, action: "deny", fallback: "kill" },
      { name: "kill-file", hook: "file.open", match: `file.path == "${d}/kill.txt"`, action: "kill" },
      { name: "audit-notes", hook: "file.open", match: `file.path == "${d}/notes.txt"`, action: "audit", severity: "info" },
      { name: "no-port", hook: "net.connect", match: `net.dport == ${deniedPort} && net.daddr == "127.0.0.1"`, action: "deny", fallback: "kill" },
      { name: "kill-port", hook: "net.connect", match: `net.dport == ${killPort}`, action: "kill" },
      { name: "no-udp", hook: "net.connect", match: `net.protocol == "udp" && net.dport == ${udpPort}`, action: "deny", fallback: "kill" },
    ],
  },
  {
    name: "watch",
    mode: "monitor",
    rules: [
      { name: "would-kill-exec", hook: "process.exec", match: `process.binary == "${d}/watched-echo"`, action: "kill" },
      { name: "would-kill-open", hook: "file.open", match: `file.path == "${d}/watched.txt"`, action: "kill" },
    ],
  },
];

// ---- scenarios ----

interface Scenario {
  argv: string[];
  cwd?: string;
  /** Give the child, as its fd 3, a descriptor of secret.txt opened before the plan was applied. */
  inherit?: boolean;
  /** Report secret.txt's content afterwards (side effects), and put it back. */
  after?: boolean;
  /** Run in this cgroup from the first instruction (a shell moves itself there, then execs argv). */
  cgroup?: string;
}

const SCENARIOS: Record<string, Scenario> = {
  "exec.denied": { argv: [T, "exec", `${d}/denied-echo`, "denied-echo", "RAN"] },
  "exec.allowed": { argv: [T, "exec", `${d}/ok-echo`, "ok-echo", "RAN"] },
  "exec.killed": { argv: [T, "exec", `${d}/killed-echo`, "killed-echo", "RAN"] },
  "exec.monitor": { argv: [T, "exec", `${d}/watched-echo`, "watched-echo", "RAN"] },
  "exec.script": { argv: [T, "exec", `${d}/denied.sh`, "denied.sh"] },
  "exec.bypass.symlink": { argv: [T, "exec", `${d}/link-echo`, "link-echo", "RAN"] },
  "exec.bypass.dotdot": { argv: [T, "exec", `${d}/sub/../denied-echo`, "x", "RAN"] },
  "exec.bypass.relative": { argv: [T, "exec", "../denied-echo", "x", "RAN"], cwd: `${d}/sub` },
  "exec.bypass.hardlink": { argv: [T, "exec", `${d}/sub/hard-echo`, "hard-echo", "RAN"] },
  "exec.bypass.execveat": { argv: [T, "execveat", `${d}/denied-echo`, "x", "RAN"] },
  "exec.bypass.execveat-empty-path": { argv: [T, "execveat-fd", `${d}/denied-echo`, "x", "RAN"] },
  "exec.bypass.execveat-dirfd": { argv: [T, "execveat-dir", d, "denied-echo", "x", "RAN"] },
  "exec.bypass.fexecve": { argv: [T, "fexecve", `${d}/denied-echo`, "x", "RAN"] },
  "workload.in": { argv: [T, "exec", `${d}/pod-echo`, "pod-echo", "RAN"], cgroup: `${POD_IN}/main` },
  "workload.out": { argv: [T, "exec", `${d}/pod-echo`, "pod-echo", "RAN"], cgroup: `${POD_OUT}/main` },
  "workload.host": { argv: [T, "exec", `${d}/pod-echo`, "pod-echo", "RAN"] },
  "exec.bypass.proc-fd": { argv: [T, "exec-procfd", `${d}/denied-echo`, "x", "RAN"] },

  "open.denied": { argv: [T, "open", `${d}/secret.txt`] },
  "open.allowed": { argv: [T, "open", `${d}/public.txt`] },
  "open.killed": { argv: [T, "open", `${d}/kill.txt`] },
  "open.monitor": { argv: [T, "open", `${d}/watched.txt`] },
  "open.audit": { argv: [T, "open", `${d}/notes.txt`] },
  "open.prefix": { argv: [T, "open", `${d}/vault/key`] },
  "open.truncate": { argv: [T, "truncate", `${d}/secret.txt`], after: true },
  "open.bypass.symlink": { argv: [T, "open", `${d}/sub/innocent`] },
  "open.bypass.dotdot": { argv: [T, "open", `${d}/sub/../secret.txt`] },
  "open.bypass.relative": { argv: [T, "open", "../secret.txt"], cwd: `${d}/sub` },
  "open.bypass.hardlink": { argv: [T, "open", `${d}/sub/hard-link.txt`] },
  "open.bypass.proc-fd-reopen": { argv: [T, "reopen", `${d}/secret.txt`] },
  "open.bypass.openat2-beneath": { argv: [T, "openat2", d, "secret.txt", "beneath"] },
  "open.bypass.openat2-in-root": { argv: [T, "openat2", d, "/secret.txt", "in-root"] },
  "open.bypass.openat2-no-symlinks": { argv: [T, "openat2", d, "secret.txt", "no-symlinks,no-magiclinks,no-xdev"] },
  "open.bypass.openat2-prefix": { argv: [T, "openat2", `${d}/vault`, "key", "beneath"] },
  "open.bypass.io_uring": { argv: [T, "iouring-open", `${d}/secret.txt`] },
  // A descriptor opened before the plan was applied, passed to the child as fd 3.
  "open.bypass.inherited-fd-reopen": { argv: [T, "reopen-fd", "3"], inherit: true },
  "open.inherited-fd-read": { argv: ["/bin/sh", "-c", "cat <&3"], inherit: true },

  "net.denied": { argv: [T, "connect", "127.0.0.1", String(deniedPort)] },
  "net.allowed": { argv: [T, "connect", "127.0.0.1", String(allowedPort)] },
  "net.killed": { argv: [T, "connect", "127.0.0.1", String(killPort)] },
  "net.udp-denied": { argv: [T, "sendto", "127.0.0.1", String(udpPort)] },
  "net.udp-allowed": { argv: [T, "sendto", "127.0.0.1", String(udpAllowedPort)] },
  "net.mapped-ipv4": { argv: [T, "connect", "::ffff:127.0.0.1", String(deniedPort)] },
  "net.fastopen": { argv: [T, "fastopen", "127.0.0.1", String(deniedPort)] },
};

function runScenario(s: Scenario, inherited: number): Omit<ScenarioResult, "events"> {
  const stdio: ("ignore" | "pipe" | number)[] = ["ignore", "pipe", "pipe", ...(s.inherit ? [inherited] : [])];
  const [file, args] = s.cgroup ? ["/bin/sh", ["-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', s.cgroup, ...s.argv]] : [s.argv[0]!, s.argv.slice(1)];
  const r = spawnSync(file, args, { encoding: "utf8", timeout: 60_000, cwd: s.cwd, stdio });
  const out: Omit<ScenarioResult, "events"> = {
    argv: s.argv, pid: r.pid, status: r.status, signal: r.signal, stdout: r.stdout ?? "", stderr: `${r.stderr ?? ""}${r.error ? `spawn: ${r.error.message}` : ""}`,
  };
  const trick = s.argv[0] === T ? parseTrick(out.stdout) : undefined;
  if (trick) out.trick = trick;
  if (s.after) {
    // Through the descriptor opened before the plan: the rules forbid this process to open it.
    const buf = Buffer.alloc(4096);
    out.after = buf.subarray(0, readSync(inherited, buf, 0, buf.length, 0)).toString("utf8");
    writeSync(inherited, SECRET, 0);
    ftruncateSync(inherited, SECRET.length);
  }
  return out;
}

async function settle(ms: number) {
  await new Promise((r) => setTimeout(r, ms));
}

async function phase(requested: string): Promise<PhaseResult> {
  const events: EnforcerEvent[] = [];
  const errors: string[] = [];
  const backends = requested === "auto" ? undefined : Object.fromEntries(["process.exec", "file.open", "net.connect"].map((h) => [h, [requested as Backend]]));
  let started = performance.now();
  const enforcer = Enforcer.open({ pinDir: values.pin!, reuse: false, backends, onEvent: (e) => events.push(e), onError: (e) => errors.push(e.message) });
  const openMs = performance.now() - started;
  const result: PhaseResult = {
    requested, compat: enforcer.compat, capabilities: enforcer.capabilities, openMs, applyMs: 0,
    hooks: enforcer.probe.hooks.map((h) => ({
      hook: h.hook, selected: h.selected, available: h.available, attempts: Object.fromEntries(Object.entries(h.attempts).map(([k, v]) => [k, v.ok])),
      actions: h.actions, how: h.how, cannotSee: h.cannotSee, notes: h.notes,
    })),
    programs: enforcer.programs().filter((p) => p.fd >= 0).map((p) => p.name),
    scenarios: {}, counters: {}, errors, dropped: [],
  };
  try {
    // Opened while no rule is in force: the inherited-descriptor scenarios get it.
    const inherited = openSync(`${d}/secret.txt`, "r+");
    started = performance.now();
    enforcer.applyPlan(planOf(enforcer.capabilities, SPECS, result.dropped));
    result.applyMs = performance.now() - started;
    enforcer.setWorkloads(WORKLOADS);
    const ran: Record<string, Omit<ScenarioResult, "events">> = {};
    for (const [name, s] of Object.entries(SCENARIOS)) {
      ran[name] = runScenario(s, inherited);
    }
    closeSync(inherited);
    await settle(1500);
    for (const [name, r] of Object.entries(ran)) {
      result.scenarios[name] = {
        ...r,
        events: events.filter((e) => e.event.process.pid === r.pid).map((e) => ({
          event: e.event, acted: e.record.acted, signalFailed: e.record.signalFailed, mappedIpv4: e.record.mappedIpv4,
          ...(e.record.file?.openedAs !== undefined && { openedAs: e.record.file.openedAs }),
        })),
      };
    }
    result.counters = Object.fromEntries(Object.entries(enforcer.counters()).map(([k, v]) => [k, v.toString()]));
  } catch (e) {
    result.refused = (e as Error).stack ?? String(e);
  } finally {
    enforcer.close();
  }
  return result;
}

// On the guest's tmpfs: a file of the host's root (9p) costs a round trip to qemu per open.
const BENCH_FILE = `${d}/bench.txt`;
writeFileSync(BENCH_FILE, "bench\n");

function benchOpen(n: number): number {
  const r = spawnSync(T, ["bench-open", BENCH_FILE, String(n)], { encoding: "utf8" });
  const trick = parseTrick(r.stdout);
  if (!trick?.nsPerOp) throw new Error(`bench-open failed: ${r.stdout} ${r.stderr}`);
  return trick.nsPerOp;
}

const BENCH_PROGRAMS = new Set(["pal_lsm_open", "pal_fmr_open", "pal_kp_open", "pal_open_exit"]);

/** The file.open program's run count and run time so far (kernel.bpf_stats_enabled). */
function programStats(enforcer: Enforcer): { count: bigint; ns: bigint } {
  const p = enforcer.programs().find((x) => BENCH_PROGRAMS.has(x.name) && x.fd >= 0);
  return { count: p?.runCount ?? 0n, ns: p?.runTimeNs ?? 0n };
}

async function bench(n: number, requested: string, rounds = 5): Promise<BenchResult> {
  const files = (k: number): Spec => ({
    name: `files-${k}`,
    rules: Array.from({ length: k }, (_, i) => ({ name: `r${i}`, hook: "file.open" as const, match: `file.path == "/srv/denied/${i}.key"`, action: "kill" as const })),
  });
  const cases = ["no agent", "agent, no file.open rule", "10 file.path rules", "10,000 file.path rules"];
  const samples: BenchResult["samples"] = Object.fromEntries(cases.map((c) => [c, { loop: [], program: [] }]));
  const backends = requested === "auto" ? undefined : { "file.open": [requested as Backend] };
  writeFileSync("/proc/sys/kernel/bpf_stats_enabled", "1");
  let backend: Backend | null = null;
  let plans: Record<string, KernelPlan> | undefined;
  benchOpen(Math.ceil(n / 10)); // warm up: page cache, the binary
  // Each round measures every case, the agent stopped and started again, so a slow spell
  // of the emulator falls on all of them.
  for (let round = 0; round < rounds; round++) {
    samples["no agent"]!.loop.push(benchOpen(n));
    const enforcer = Enforcer.open({ pinDir: values.pin!, reuse: false, backends });
    try {
      backend = enforcer.probe.hooks.find((h) => h.hook === "file.open")!.selected;
      plans ??= {
        "agent, no file.open rule": planOf(enforcer.capabilities, [{ name: "exec-only", rules: [{ name: "x", hook: "process.exec", match: 'process.binary == "/srv/x"', action: "kill" }] }]),
        "10 file.path rules": planOf(enforcer.capabilities, [files(10)]),
        "10,000 file.path rules": planOf(enforcer.capabilities, [files(10_000)]),
      };
      for (const [name, plan] of Object.entries(plans)) {
        enforcer.applyPlan(plan);
        const before = programStats(enforcer);
        samples[name]!.loop.push(benchOpen(n));
        const after = programStats(enforcer);
        const runs = after.count - before.count;
        if (runs > 0n) samples[name]!.program.push(Number(after.ns - before.ns) / Number(runs));
      }
    } finally {
      enforcer.close();
    }
  }
  const stat = (xs: number[]) => ({ median: [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN, min: Math.min(...xs) });
  return {
    backend, opens: n, rounds, samples,
    loopNs: Object.fromEntries(cases.map((c) => [c, stat(samples[c]!.loop)])),
    programNs: Object.fromEntries(cases.filter((c) => samples[c]!.program.length).map((c) => [c, stat(samples[c]!.program)])),
  };
}

const phases: PhaseResult[] = [];
for (const p of values.phase ?? (values.bench ? [] : ["auto"])) phases.push(await phase(p));
const out: RunResult = {
  pid: process.pid,
  execPath: process.execPath,
  kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
  lsms: (() => { try { return readFileSync("/sys/kernel/security/lsm", "utf8").trim(); } catch { return ""; } })(),
  dir, ports: { allowedPort, deniedPort, killPort, udpPort, udpAllowedPort }, phases,
};
if (values.bench) {
  out.bench = [];
  for (const b of values["bench-backend"] ?? ["auto"]) out.bench.push(await bench(Number(values.bench), b));
}
for (const s of servers) s.close();
process.stdout.write(`PALISADE-SCENARIOS ${JSON.stringify(out)}\n`);
// The servers and the ring buffer thread must not keep the VM waiting.
process.exit(0);
