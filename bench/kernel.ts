// The enforcer's cost per system call, on the real kernel: execve (fork + exec + wait of a
// tiny static binary), openat + close, and connect (a UDP socket connecting to 127.0.0.1),
// each timed by a small C loop built at bench time with cc into a temp directory.
//
// Configurations, measured side by side in one run, interleaved round by round
// (A B C D E F, then F E D C B A, ...) so that the machine's drift cancels out:
//   no agent                      nothing attached
//   agent, no rule on the hook    programs attached, the hook idle (its floor)
//   10 / 1,000 / 10,000 rules     per hook, on the dimension the call is decided by
//                                 (process.binary, file.path, net.daddr), none matching
//   10 rules over 4 dimensions: (process.binary, .parent.binary, .name suffix, uid for exec;
//                                 file.path, name suffix, dir, process.binary for open;
//                                 daddr, dport, protocol, process.binary for connect)
//   10 / 10,000 rules + one matching-dimension rule: the call's own value is in the trie,
//                                 and the rule fails only on a second dimension
//                                 (process.uid), so the event goes through a hit, a second
//                                 lookup and the mask work, and still no rule holds
// Filler rules are audit rules on values nothing uses: the kernel does the same lookups for
// every action, and an audit rule cannot kill anything else running on a shared machine
// (enforcing file rules hold for paths the kernel cannot resolve, for every process).
//
// Two measures: wall time per call (medians of the rounds, and ratios taken within each
// round), and the BPF programs' own run time per call from the kernel's statistics
// (kernel.bpf_stats_enabled: run_time_ns / run_cnt), measured in separate loop runs so that
// the statistics' own overhead does not bias the wall times.
// Needs root, BPF, the built enforcer (scripts/build-enforcer) and cc. Asserts nothing.

import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { arch } from "node:os";
import { performance } from "node:perf_hooks";
import { compile } from "../src/compiler/index.ts";
import { capabilitiesOf, Enforcer, probe } from "../src/enforcer/index.ts";
import { native, type ProgramInfo } from "../src/enforcer/native.ts";
import { privilegeProblem } from "../src/enforcer/system.ts";
import type { KernelPlan } from "../src/plan/types.ts";
import { makePolicy, type RuleSpec } from "../test/support/policies.ts";

const PIN_DIR = "/sys/fs/bpf/palisade-bench-kernel";
const STATS = "/proc/sys/kernel/bpf_stats_enabled";
const OPEN_TARGET = "/etc/hostname";
/** An unused uid: the second dimension of the matching-dimension rule. */
const NO_UID = 4242;
/**
 * Blocks per timed loop (the fastest counts). This machine's speed drifts by up to 70% over
 * tens of milliseconds (a shared VM); its floor is stable. Short blocks find the floor.
 */
const BLOCKS = 15;
/** Windows of the statistics loop (the fastest counts, for the same reason). */
const STATS_WINDOWS = 5;

// One loop program for the three calls. Runs N calls, after N/10 of warm-up, in BLOCKS
// blocks, and prints the nanoseconds per call of the fastest block: interference from the
// rest of the machine only ever adds time, so the fastest block is the least disturbed. exec: fork + execve + waitpid of BIN; open: openat + close of PATH;
// connect: connect() of one UDP socket to a bound UDP socket on 127.0.0.1, repeated (each
// call runs the cgroup connect hook; no handshake, no listener backlog).
const LOOP_C = String.raw`
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int udp = -1;
static struct sockaddr_in peer;

static int once(const char *mode, const char *arg) {
  if (mode[0] == 'o') {
    int fd = openat(AT_FDCWD, arg, O_RDONLY);
    if (fd < 0) return -1;
    close(fd);
    return 0;
  }
  if (mode[0] == 'c') return connect(udp, (struct sockaddr *)&peer, sizeof peer);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execl(arg, arg, (char *)NULL);
    _exit(127);
  }
  int status;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 5) return 2;
  const char *mode = argv[1], *arg = argv[2];
  long n = atol(argv[3]), blocks = atol(argv[4]);
  if (blocks < 1) blocks = 1;
  long per = n / blocks > 0 ? n / blocks : 1;
  if (mode[0] == 'c') {
    int listener = socket(AF_INET, SOCK_DGRAM, 0);
    memset(&peer, 0, sizeof peer);
    peer.sin_family = AF_INET;
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof peer;
    if (listener < 0 || bind(listener, (struct sockaddr *)&peer, sizeof peer) < 0 || getsockname(listener, (struct sockaddr *)&peer, &len) < 0) return 3;
    udp = socket(AF_INET, SOCK_DGRAM, 0);
    if (udp < 0) return 3;
  }
  for (long i = 0; i < n / 10 + 1; i++)
    if (once(mode, arg) < 0) { perror(mode); return 4; }
  double best = 1e300;
  for (long k = 0; k < blocks; k++) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < per; i++)
      if (once(mode, arg) < 0) { perror(mode); return 4; }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / per;
    if (ns < best) best = ns;
  }
  printf("%.2f\n", best);
  return 0;
}
`;

/** The smallest static program there is: exit(0) with no libc, no loader, no file opened. */
const TINY_C: Record<string, string> = {
  x64: `void _start(void) { __asm__ volatile("mov $60, %eax\\n xor %edi, %edi\\n syscall"); }`,
  arm64: `void _start(void) { __asm__ volatile("mov x8, #93\\n mov x0, #0\\n svc #0"); }`,
};

type Call = "exec" | "open" | "connect";
const CALLS: readonly Call[] = ["exec", "open", "connect"];
const CALL_LABEL: Record<Call, string> = {
  exec: "execve (fork + exec + wait of a static binary)",
  open: `openat + close (${OPEN_TARGET})`,
  connect: "connect (UDP socket to 127.0.0.1)",
};

interface Config {
  key: string;
  label: string;
  /** undefined: no agent. */
  plan?: KernelPlan;
}

/** Filler rules per hook: none matches anything the benchmark (or anything else) does. */
function fillerRules(n: number): RuleSpec[] {
  const rules: RuleSpec[] = [];
  for (let i = 0; i < n; i++) {
    const prefix = i % 10 === 9; // a tenth are prefixes, in the same tries
    const hi = (i >> 8) & 255;
    const lo = i & 255;
    rules.push(
      { name: `exec-${i}`, hook: "process.exec", action: "audit",
        match: prefix ? `process.binary.startsWith("/nonexistent/palisade-bench/d${i}/")` : `process.binary == "/nonexistent/palisade-bench/bin/${i}"` },
      { name: `open-${i}`, hook: "file.open", action: "audit",
        match: prefix ? `file.path.startsWith("/nonexistent/palisade-bench/d${i}/")` : `file.path == "/nonexistent/palisade-bench/f/${i}.key"` },
      { name: `connect-${i}`, hook: "net.connect", action: "audit",
        match: prefix ? `cidr("198.19.${hi}.${lo}/32").containsIP(net.daddr)` : `net.daddr == "198.18.${hi}.${lo}"` },
    );
  }
  return rules;
}

/** One rule per hook whose first dimension hits the benchmark's own call; it fails on process.uid. */
function matchingDimensionRules(tiny: string): RuleSpec[] {
  return [
    { name: "hit-exec", hook: "process.exec", action: "audit", match: `process.binary == "${tiny}" && process.uid == ${NO_UID}` },
    { name: "hit-open", hook: "file.open", action: "audit", match: `file.path == "${OPEN_TARGET}" && process.uid == ${NO_UID}` },
    { name: "hit-connect", hook: "net.connect", action: "audit", match: `net.daddr == "127.0.0.1" && process.uid == ${NO_UID}` },
  ];
}

/** Ten rules per hook over four dimensions each, none matching: cost follows dimensions, not rules. */
function fourDimensionRules(): RuleSpec[] {
  const rules: RuleSpec[] = [];
  for (let i = 0; i < 5; i++) {
    rules.push(
      { name: `exec-a${i}`, hook: "process.exec", action: "audit", match: `process.binary.startsWith("/nonexistent/palisade-bench/${i}/") && process.parent.binary == "/nonexistent/palisade-bench/parent${i}"` },
      { name: `exec-b${i}`, hook: "process.exec", action: "audit", match: `process.name.endsWith(".bench${i}") && process.uid == ${NO_UID + i}` },
      { name: `open-a${i}`, hook: "file.open", action: "audit", match: `file.path.startsWith("/nonexistent/palisade-bench/${i}/") && process.binary == "/nonexistent/palisade-bench/bin${i}"` },
      { name: `open-b${i}`, hook: "file.open", action: "audit", match: `file.name.endsWith(".bench${i}") && file.dir != "/etc/ssl"` },
      { name: `connect-a${i}`, hook: "net.connect", action: "audit", match: `net.daddr == "198.18.0.${i}" && net.dport == ${1000 + i}` },
      { name: `connect-b${i}`, hook: "net.connect", action: "audit", match: `net.protocol == "tcp" && process.binary == "/nonexistent/palisade-bench/bin${i}"` },
    );
  }
  return rules;
}

function planOf(rules: RuleSpec[], capabilities: ReturnType<typeof capabilitiesOf>): KernelPlan {
  const { plan, diagnostics } = compile([makePolicy({ name: "bench", rules })], { capabilities });
  if (!plan) throw new Error(`benchmark policies do not compile: ${JSON.stringify(diagnostics.slice(0, 3))}`);
  return plan;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** BPF programs whose names say they are ours, loaded by someone else (another agent or test): they would add to every configuration. */
function foreignPrograms(ours: Set<number>): string[] {
  const r = spawnSync("bpftool", ["-j", "prog", "show"], { encoding: "utf8" });
  if (r.status !== 0) return [];
  try {
    const progs = JSON.parse(r.stdout) as { id: number; name?: string; type?: string }[];
    return progs.filter((p) => p.name?.startsWith("pal_") && !ours.has(p.id) && !p.name.startsWith("probe")).map((p) => `${p.name}#${p.id}`);
  } catch {
    return [];
  }
}

export interface KernelBenchOptions {
  /** Rounds of the interleaved sequence (each visits every configuration once). */
  rounds?: number;
  /** Target duration of one timed loop, ms. */
  sampleMs?: number;
  /** Target duration of one statistics loop, ms. */
  statsMs?: number;
  log?: (line: string) => void;
}

export interface KernelBenchResult {
  configs: { key: string; label: string }[];
  /** ns per call: [call][config] -> one value per round. */
  wall: Record<Call, Record<string, number[]>>;
  /** BPF program ns per call (sum of our programs' run time / calls): [call][config] -> per round. */
  prog: Record<Call, Record<string, number[]>>;
  /** Our programs that ran per call, with their runs per call: [call] -> name -> runs per call. */
  programsRun: Record<Call, Record<string, number>>;
  iterations: Record<Call, number>;
  backends: string;
  rounds: number;
  applyMs: Record<string, number[]>;
  foreign: string[];
  loadAverage: string;
}

/** Why the kernel benchmark cannot run here, or undefined. */
export function kernelBenchProblem(): string | undefined {
  const privileges = privilegeProblem();
  if (privileges) return privileges;
  try {
    native();
  } catch (e) {
    return (e as Error).message;
  }
  if (spawnSync(process.env.CC ?? "cc", ["--version"]).status !== 0) return "no C compiler (cc) to build the syscall loops";
  return undefined;
}

export function runKernelBench(options: KernelBenchOptions = {}): KernelBenchResult {
  const rounds = options.rounds ?? 8;
  const sampleMs = options.sampleMs ?? 250;
  const statsMs = options.statsMs ?? 125;
  const log = options.log ?? (() => {});
  const dir = mkdtempSync("/tmp/palisade-bench-kernel-");
  const cc = process.env.CC ?? "cc";
  let enforcer: Enforcer | undefined;
  const statsWas = readFileSync(STATS, "utf8").trim();
  try {
    writeFileSync(`${dir}/loop.c`, LOOP_C);
    execFileSync(cc, ["-O2", "-o", `${dir}/loop`, `${dir}/loop.c`]);
    let tiny = `${dir}/tiny`;
    try {
      const src = TINY_C[arch()];
      if (!src) throw new Error(`no tiny program for ${arch()}`);
      writeFileSync(`${dir}/tiny.c`, src);
      execFileSync(cc, ["-O2", "-static", "-nostdlib", "-o", tiny, `${dir}/tiny.c`], { stdio: "pipe" });
    } catch {
      tiny = "/bin/true";
    }
    const loop = (call: Call, n: number, blocks = BLOCKS): number => {
      const arg = call === "exec" ? tiny : call === "open" ? OPEN_TARGET : "-";
      return Number(execFileSync(`${dir}/loop`, [call, arg, String(n), String(blocks)], { encoding: "utf8" }));
    };

    // Iterations per loop, so that one timed loop takes about sampleMs with no agent.
    const iterations = {} as Record<Call, number>;
    for (const call of CALLS) {
      const probeN = call === "exec" ? 200 : 20_000;
      const ns = Math.min(loop(call, probeN), loop(call, probeN));
      iterations[call] = Math.max(100, Math.round((sampleMs * 1e6) / ns));
    }

    const capabilities = capabilitiesOf(probe());
    log("kernel bench: compiling plans");
    const configs: Config[] = [
      { key: "none", label: "no agent" },
      { key: "idle", label: "agent, no rule on the hook", plan: planOf([], capabilities) },
      { key: "10", label: "10 rules", plan: planOf(fillerRules(10), capabilities) },
      { key: "10+hit", label: "10 rules + 1 hitting the call's value", plan: planOf([...fillerRules(9), ...matchingDimensionRules(tiny)], capabilities) },
      { key: "4dims", label: "10 rules over 4 dimensions", plan: planOf(fourDimensionRules(), capabilities) },
      { key: "1k", label: "1,000 rules", plan: planOf(fillerRules(1000), capabilities) },
      { key: "10k", label: "10,000 rules", plan: planOf(fillerRules(10_000), capabilities) },
      { key: "10k+hit", label: "10,000 rules + 1 hitting the call's value", plan: planOf([...fillerRules(9_999), ...matchingDimensionRules(tiny)], capabilities) },
    ];
    const empty = (): Record<string, number[]> => Object.fromEntries(configs.map((c) => [c.key, []]));
    const wall = { exec: empty(), open: empty(), connect: empty() } as Record<Call, Record<string, number[]>>;
    const prog = { exec: empty(), open: empty(), connect: empty() } as Record<Call, Record<string, number[]>>;
    const programsRun = { exec: {}, open: {}, connect: {} } as Record<Call, Record<string, number>>;
    const applyMs = empty();
    const foreign = new Set<string>();
    let backends = "";

    const enter = (config: Config) => {
      const t = performance.now();
      if (!config.plan) {
        enforcer?.close();
        enforcer = undefined;
        return;
      }
      if (!enforcer) {
        Enforcer.removePinned(PIN_DIR);
        enforcer = Enforcer.open({ pinDir: PIN_DIR, reuse: false, plan: config.plan });
        backends ||= enforcer.hooks().map((h) => `${h.hook}: ${h.backend ?? "none"}`).join(", ");
      } else {
        enforcer.applyPlan(config.plan);
      }
      applyMs[config.key]!.push(performance.now() - t);
    };
    const programRuns = (): Map<string, ProgramInfo> => new Map((enforcer?.programs() ?? []).map((p) => [p.name, p]));
    /** Which of our programs a call runs: by what they are attached to. */
    const programsOf = (call: Call): Set<string> => {
      const names = new Set<string>();
      for (const link of enforcer?.links() ?? []) {
        const key = `${link.pin.split("/").pop()} ${link.target}`;
        const what: Call | undefined = /open/.test(key) ? "open" : /connect|sendmsg/.test(key) ? "connect" : /exec|fork|exit|task/.test(key) ? "exec" : undefined;
        if (what === call) names.add(link.program);
      }
      return names;
    };

    for (let round = 0; round < rounds; round++) {
      const order = round % 2 ? [...configs].reverse() : configs;
      for (const config of order) {
        enter(config);
        const ours = new Set((enforcer?.programs() ?? []).map((p) => p.id!).filter((id) => id !== undefined));
        for (const f of foreignPrograms(ours)) foreign.add(f);
        for (const call of CALLS) {
          wall[call][config.key]!.push(loop(call, iterations[call]));
          if (!enforcer) continue;
          const n = Math.max(50, Math.round((iterations[call] * statsMs) / sampleMs / STATS_WINDOWS));
          const calls = n + Math.floor(n / 10) + 1; // with the loop's warm-up
          const mine = programsOf(call);
          let best = Infinity;
          writeFileSync(STATS, "1");
          try {
            for (let w = 0; w < STATS_WINDOWS; w++) {
              const before = programRuns();
              loop(call, n, 1);
              const after = programRuns();
              // Each program of the call runs once per call: the sum of their mean run
              // times. (Their counts include other processes' calls meanwhile.)
              let ns = 0;
              for (const name of mine) {
                const a = after.get(name);
                const b = before.get(name);
                const runs = Number((a?.runCount ?? 0n) - (b?.runCount ?? 0n));
                if (!a || runs < calls * 0.5) continue;
                ns += Number((a.runTimeNs ?? 0n) - (b?.runTimeNs ?? 0n)) / runs;
                programsRun[call][name] = runs / calls;
              }
              best = Math.min(best, ns);
            }
          } finally {
            writeFileSync(STATS, "0");
          }
          prog[call][config.key]!.push(best);
        }
      }
      log(`kernel bench: round ${round + 1}/${rounds} done`);
    }
    return {
      configs: configs.map(({ key, label }) => ({ key, label })),
      wall, prog, programsRun, iterations, backends, rounds, applyMs, foreign: [...foreign],
      loadAverage: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" "),
    };
  } finally {
    try {
      writeFileSync(STATS, statsWas);
    } catch {
      // leave it
    }
    enforcer?.close();
    Enforcer.removePinned(PIN_DIR);
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (x: number, digits = 0) => x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const pct = (ratio: number) => `${ratio >= 1 ? "+" : "−"}${fmt(Math.abs(ratio - 1) * 100, 1)}%`;
/** The per-round ratios a/b (paired within each round), their median and range. */
function paired(a: number[], b: number[]): { median: number; min: number; max: number } {
  const r = a.map((x, i) => x / b[i]!);
  return { median: median(r), min: Math.min(...r), max: Math.max(...r) };
}

/** The 10-rule configuration of the same shape: what "vs 10 rules" compares with. */
const tenOf = (key: string) => (key.endsWith("+hit") ? "10+hit" : "10");
const comparedWithTen = (key: string) => !["none", "idle", "4dims"].includes(key) && key !== tenOf(key);

/** One table per call: wall time per call, overhead and ratios. */
export function kernelCallTables(r: KernelBenchResult): string {
  const out: string[] = [];
  for (const call of CALLS) {
    const w = r.wall[call];
    out.push(`**${CALL_LABEL[call]}**, ${fmt(r.iterations[call])} calls per loop, ${r.rounds} rounds:\n`);
    out.push("| configuration | ns per call (median) | overhead vs no agent | vs no agent (range over rounds) | vs 10 rules of the same shape |", "|---|---:|---:|---:|---:|");
    for (const c of r.configs) {
      const ns = median(w[c.key]!);
      if (c.key === "none") {
        out.push(`| ${c.label} | ${fmt(ns)} | — | — | — |`);
        continue;
      }
      const vsNone = paired(w[c.key]!, w.none!);
      const overhead = median(w[c.key]!.map((x, i) => x - w.none![i]!));
      const vs10 = comparedWithTen(c.key) ? pct(paired(w[c.key]!, w[tenOf(c.key)]!).median) : "—";
      out.push(`| ${c.label} | ${fmt(ns)} | ${overhead >= 0 ? "+" : "−"}${fmt(Math.abs(overhead))} ns | ${pct(vsNone.median)} (${pct(vsNone.min)} … ${pct(vsNone.max)}) | ${vs10} |`);
    }
    out.push("");
  }
  return out.join("\n").trimEnd();
}

/** The programs' own run time per call (kernel statistics). */
export function kernelProgramTable(r: KernelBenchResult): string {
  const out = [
    `| configuration | ${CALLS.map((c) => `${c}: program ns per call, median [lowest]`).join(" | ")} |`,
    `|---|${CALLS.map(() => "---:").join("|")}|`,
  ];
  for (const c of r.configs) {
    if (c.key === "none") continue;
    const cells = CALLS.map((call) => {
      const ns = median(r.prog[call][c.key]!);
      const lowest = Math.min(...r.prog[call][c.key]!);
      const vs10 = comparedWithTen(c.key) ? ` (${pct(paired(r.prog[call][c.key]!, r.prog[call][tenOf(c.key)]!).median)} vs 10)` : "";
      return `${fmt(ns)} [${fmt(lowest)}]${vs10}`;
    });
    out.push(`| ${c.label} | ${cells.join(" | ")} |`);
  }
  const ran = CALLS.map((call) => `${call}: ${Object.entries(r.programsRun[call]).map(([name, per]) => `\`${name}\` ×${fmt(per, 2)}`).join(", ")}`).join("; ");
  out.push("", `Programs counted, with their runs per call during the loop (above 1: other processes' calls meanwhile): ${ran}.`);
  return out.join("\n");
}

/** The goals, and whether this run met them. */
export function kernelGoalTable(r: KernelBenchResult): string {
  const out = ["| goal | measured | met |", "|---|---|:---:|"];
  for (const call of CALLS) {
    for (const [what, m] of [["wall time per call", r.wall[call]], ["program time per call", r.prog[call]]] as const) {
      const plain = paired(m["10k"]!, m["10"]!).median;
      const hit = paired(m["10k+hit"]!, m["10+hit"]!).median;
      // Cheaper is never a miss (below 1 is the measure's noise).
      const met = plain <= 1.1 && hit <= 1.1;
      out.push(`| ${call}: 10,000 rules within 10% of 10 rules (${what}) | ${pct(plain)}; with a rule hitting the call's value: ${pct(hit)} | ${met ? "yes" : "no"} |`);
    }
  }
  const open1k = paired(r.wall.open["1k"]!, r.wall.open.none!).median;
  const idle = paired(r.wall.open.idle!, r.wall.open.none!).median;
  out.push(`| openat: overhead with 1,000 rules under 15% vs no agent | ${pct(open1k)} (of which the attached, idle hook: ${pct(idle)}) | ${open1k - 1 < 0.15 ? "yes" : "no"} |`);
  return out.join("\n");
}

/** Runs the benchmark and returns its Markdown (or why it cannot run here). */
export function benchKernel(options: KernelBenchOptions = {}): string {
  const problem = kernelBenchProblem();
  if (problem) return `Not measured: ${problem}.`;
  let r: KernelBenchResult;
  try {
    r = runKernelBench(options);
  } catch (e) {
    return `Not measured: ${(e as Error).message}`;
  }
  const applies = r.configs.filter((c) => c.key !== "none" && c.key !== "idle")
    .map((c) => `${c.label}: ${fmt(median(r.applyMs[c.key]!))} ms`).join(", ");
  return [
    `Backends: ${r.backends}. Load average after the run: ${r.loadAverage}.` +
      (r.foreign.length ? ` **Other agents' programs were attached during the run** (${r.foreign.join(", ")}): they add to every configuration, including "no agent".` : ""),
    "",
    "### Wall time per call",
    "",
    kernelCallTables(r),
    "",
    "### BPF program time per call (kernel statistics)",
    "",
    kernelProgramTable(r),
    "",
    "### Goals",
    "",
    kernelGoalTable(r),
    "",
    `Switching configuration (open or apply, median): ${applies}.`,
  ].join("\n");
}

// `node bench/kernel.ts [rounds]`: this benchmark alone.
if (import.meta.main) {
  console.log(benchKernel({ rounds: process.argv[2] ? Number(process.argv[2]) : undefined, log: (l) => console.error(l) }));
}
