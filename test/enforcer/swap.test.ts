// Update safety on the real kernel: processes hammer a denied binary and a denied file
// from several concurrent loops while the agent swaps plans 1,000 times. Every plan of the
// stream denies that binary and that file, but the plans differ everywhere else (rules
// added and removed, policies reordered, other rules' actions and severities changed so
// that ranks move, the denying rule itself moved to other dimensions and other policies).
// Requires: not one exec of the denied binary and not one open of the denied file got
// through (each attempt died by SIGKILL before writing a byte), every kill came back as an
// event, and plans that fail to load mid-stream leave the plan in force enforcing.
//
// Deterministic by construction, not by timing: the stream waits after each swap until both
// a denied exec and a denied open were killed under the new generation (so each of the
// 1,000 plans was exercised by live processes), and nothing here asserts a duration.
// Needs root, BPF and a C compiler (the hammer is a small C program built in a temp dir).

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, writeFileSync } from "node:fs";
import { ApplyError, Enforcer } from "../../src/enforcer/index.ts";
import type { EnforcerEvent } from "../../src/enforcer/events.ts";
import type { CounterName } from "../../src/enforcer/abi.ts";
import { native } from "../../src/enforcer/native.ts";
import type { KernelPlan } from "../../src/plan/types.ts";
import { compile } from "../../src/compiler/index.ts";
import { makePolicy } from "../support/policies.ts";
import { planOf, removeDir, requireKernel, tempDir, type TestPolicySpec } from "./support.ts";

const PIN_DIR = "/sys/fs/bpf/palisade-test-swap";
const SWAPS = 1000;
/** Every this many swaps, a plan that fails to load is tried instead (then the stream goes on). */
const FAIL_EVERY = 100;
const EXEC_LOOPS = 3;
const OPEN_LOOPS = 2;
/** How long one swap may wait for the live kills that prove its plan enforces (a stall, not a timing check). */
const STALL_MS = 20_000;

// The hammer: until the stop file exists, fork a child that execs TARGET (exec modes) or
// opens TARGET and copies it to stdout (open modes), its stdout and stderr into a pipe the
// parent drains. Denied modes expect every child to die by SIGKILL having written nothing;
// allowed modes expect exit 0 and exactly EXPECTED on stdout. Prints "k <pid>" per child
// killed as expected (the events are matched to these pids), "ok" counts only in the
// summary, "X <pid> <status> <bytes> <output>" for anything else, and "done <n> <good> <bad>".
const HAMMER_C = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  const char *mode = argv[1], *target = argv[2], *stop = argv[3];
  const char *expected = argc > 4 ? argv[4] : "";
  int denied = strncmp(mode, "denied-", 7) == 0;
  int exec_mode = strstr(mode, "exec") != NULL;
  long n = 0, good = 0, bad = 0;
  setvbuf(stdout, NULL, _IOLBF, 0);
  while (access(stop, F_OK) != 0) {
    int p[2];
    if (pipe(p) < 0) return 3;
    pid_t pid = fork();
    if (pid < 0) return 4;
    if (pid == 0) {
      dup2(p[1], 1);
      dup2(p[1], 2);
      close(p[0]);
      close(p[1]);
      if (exec_mode) {
        execl(target, target, "RAN", (char *)NULL);
        _exit(127);
      }
      int fd = open(target, O_RDONLY);
      if (fd < 0) _exit(126);
      char buf[256];
      ssize_t r = read(fd, buf, sizeof buf);
      if (r > 0) write(1, buf, (size_t)r);
      _exit(0);
    }
    close(p[1]);
    char out[256];
    size_t got = 0;
    for (;;) {
      char buf[256];
      ssize_t r = read(p[0], buf, sizeof buf);
      if (r <= 0) break;
      for (ssize_t i = 0; i < r && got < sizeof out - 1; i++) out[got++] = buf[i] == '\n' ? '|' : buf[i];
    }
    out[got] = 0;
    close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {}
    n++;
    int as_expected = denied
      ? (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && got == 0)
      : (WIFEXITED(status) && WEXITSTATUS(status) == 0 && strcmp(out, expected) == 0);
    if (as_expected) {
      good++;
      if (denied) printf("k %d\n", (int)pid);
    } else {
      bad++;
      printf("X %d %d %zu %s\n", (int)pid, status, got, out);
    }
  }
  printf("done %ld %ld %ld\n", n, good, bad);
  return 0;
}
`;

interface Hammer {
  mode: string;
  /** Pid -> how many children with that pid were killed as expected (pids wrap). */
  killed: Map<number, number>;
  anomalies: string[];
  done: Promise<{ attempts: number; good: number; bad: number }>;
}

let dir: string;
let enforcer: Enforcer | undefined;
const hammers: Hammer[] = [];

/** What the stream found, for the assertions below. */
const stream = {
  swaps: 0,
  failedApplies: [] as { kind: string; error: string; generationKept: boolean; planKept: boolean }[],
  /** Per hook: pid -> kill events for the denied binary / file. */
  execEvents: new Map<number, number>(),
  openEvents: new Map<number, number>(),
  /** Events of the denied exec or open that did not say the kernel killed. */
  notKilled: [] as string[],
  /** Flip numbers (event seq) under which a denied exec / open was killed. */
  execSeqs: new Set<number>(),
  openSeqs: new Set<number>(),
  /** Kernel time (boot clock) of the latest denied exec / open event. */
  lastExecNs: 0n,
  lastOpenNs: 0n,
  /** Events whose plan the agent no longer knew (older than the plans it keeps). */
  withoutPlan: 0,
  /** Events on anything else (no rule of the stream matches anything the test runs besides the two). */
  others: [] as string[],
  decodeErrors: [] as string[],
  counters: {} as Record<CounterName, bigint>,
  recursionMisses: 0n,
  /** For the report only (nothing asserts durations). */
  applyMs: 0,
  waitMs: 0,
};

const deniedBinary = () => `${dir}/denied-echo`;
const secret = () => `${dir}/secret.txt`;
const DENYING_RULES = new Set(["no-denied-echo", "denied-prefix", "denied-by-name", "denied-unless-4242", "a-denied-first", "no-secret", "secret-prefix", "secret-by-name", "secret-unless-4242", "a-secret-first"]);

const bump = (m: Map<number, number>, k: number) => m.set(k, (m.get(k) ?? 0) + 1);
const total = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);

function onEvent(e: EnforcerEvent): void {
  const r = e.record;
  const isExec = r.hook === "process.exec" && r.binary.path === deniedBinary();
  const isOpen = r.hook === "file.open" && r.file?.path === secret();
  if (!isExec && !isOpen) {
    if (stream.others.length < 20) stream.others.push(`${r.hook} ${r.binary.path} ${r.file?.path ?? ""} rule=${e.event.rule}`);
    return;
  }
  if (!e.slot) stream.withoutPlan++;
  else if (!DENYING_RULES.has(e.slot.rule)) stream.notKilled.push(`seq ${r.seq}: decided by ${e.slot.rule}`);
  if (!r.acted || r.signalFailed || (r.verdict !== "kill" && r.verdict !== "deny")) {
    stream.notKilled.push(`seq ${r.seq} ${r.hook} pid ${r.pid}: verdict ${r.verdict} acted ${r.acted} signalFailed ${r.signalFailed}`);
  }
  bump(isExec ? stream.execEvents : stream.openEvents, r.pid);
  (isExec ? stream.execSeqs : stream.openSeqs).add(r.seq);
  if (isExec && r.bootTimeNs > stream.lastExecNs) stream.lastExecNs = r.bootTimeNs;
  if (isOpen && r.bootTimeNs > stream.lastOpenNs) stream.lastOpenNs = r.bootTimeNs;
}

function startHammer(hammer: string, mode: string, target: string, stop: string, expected = ""): Hammer {
  const child = spawn(hammer, [mode, target, stop, expected], { stdio: ["ignore", "pipe", "inherit"] });
  const h: Hammer = { mode, killed: new Map(), anomalies: [], done: undefined! };
  let rest = "";
  let summary: { attempts: number; good: number; bad: number } | undefined;
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith("k ")) bump(h.killed, Number(line.slice(2)));
      else if (line.startsWith("done ")) {
        const [attempts, good, bad] = line.slice(5).split(" ").map(Number);
        summary = { attempts: attempts!, good: good!, bad: bad! };
      } else h.anomalies.push(line);
    }
  });
  h.done = new Promise((resolve, reject) =>
    child.on("close", (code, signal) =>
      summary ? resolve(summary) : reject(new Error(`hammer ${mode} ended without a summary (code ${code}, signal ${signal})`)),
    ),
  );
  hammers.push(h);
  return h;
}

/**
 * The stream's plans: every one kills the denied binary and the denied file (through one of
 * several rule shapes), and each differs from the others elsewhere. Filler rules never match
 * anything the test runs: their targets live in the test's directory or are unused values.
 */
function variant(k: number, d: string): KernelPlan {
  // Enforcing file.open rules hold for a path the kernel cannot resolve (fail closed), for
  // every process on the machine: scoped to the test's own binaries, they cannot kill a
  // process of another test running at the same time that opens a too-deep path.
  const mine = `process.binary.startsWith("${d}/")`;
  const exec: TestPolicySpec["rules"] = [];
  const open: TestPolicySpec["rules"] = [];
  // The denying rules, in the shape this variant uses.
  switch (k % 5) {
    case 0:
      exec.push({ name: "no-denied-echo", hook: "process.exec", match: `process.binary == "${d}/denied-echo"`, action: "kill", severity: "high" });
      open.push({ name: "no-secret", hook: "file.open", match: `file.path == "${d}/secret.txt" && ${mine}`, action: "kill", severity: "critical" });
      break;
    case 1:
      exec.push({ name: "denied-prefix", hook: "process.exec", match: `process.binary.startsWith("${d}/denied-")`, action: "deny", fallback: "kill", severity: "low" });
      open.push({ name: "secret-prefix", hook: "file.open", match: `file.path.startsWith("${d}/secret") && ${mine}`, action: "deny", fallback: "kill", severity: "info" });
      break;
    case 2:
      exec.push({ name: "denied-by-name", hook: "process.exec", match: `process.name == "denied-echo" && process.binary.startsWith("${d}/")`, action: "kill" });
      open.push({ name: "secret-by-name", hook: "file.open", match: `file.name == "secret.txt" && file.dir == "${d}" && ${mine}`, action: "kill" });
      break;
    case 3:
      exec.push({ name: "denied-unless-4242", hook: "process.exec", match: `process.binary == "${d}/denied-echo" && process.uid != 4242`, action: "kill", severity: "low" });
      open.push({ name: "secret-unless-4242", hook: "file.open", match: `file.path == "${d}/secret.txt" && process.uid != 4242 && ${mine}`, action: "kill", severity: "low" });
      break;
    default:
      exec.push({ name: "no-denied-echo", hook: "process.exec", match: `process.binary in ["${d}/denied-echo", "${d}/other-exec-x"]`, action: "kill", severity: "medium" });
      open.push({ name: "no-secret", hook: "file.open", match: `file.path in ["${d}/secret.txt", "${d}/other-x.txt"] && ${mine}`, action: "kill", severity: "medium" });
  }
  // Filler: a different number of unrelated rules per variant, whose actions and severities
  // change from variant to variant so the denying rule's rank moves.
  const n = [3, 40, 0, 250, 12, 120, 7][k % 7]!;
  const severities = ["critical", "high", "medium", "low", "info"] as const;
  const filler: TestPolicySpec["rules"] = [];
  for (let i = 0; i < n; i++) {
    const audit = (i + k) % 3 === 0;
    const severity = severities[(i + k) % 5]!;
    const action = audit ? ("audit" as const) : ("kill" as const);
    filler.push({ name: `exec-${i}`, hook: "process.exec", match: `process.binary == "${d}/other-exec-${k}-${i}"`, action, severity });
    filler.push({ name: `open-${i}`, hook: "file.open", match: `${i % 4 === 1 ? `file.path.startsWith("${d}/other-dir-${i}/")` : `file.path == "${d}/other-${k}-${i}.txt"`} && ${mine}`, action, severity });
    if (i % 5 === 0) filler.push({ name: `net-${i}`, hook: "net.connect", match: `net.daddr == "198.18.${k % 250}.${i % 250}"`, action: audit ? "audit" : "deny", severity });
    if (i % 17 === 3) filler.push({ name: `uid-${i}`, hook: "file.open", match: `process.uid == ${40000 + i} && file.path.startsWith("${d}/") && ${mine}`, action: "kill", severity });
  }
  const policies: TestPolicySpec[] = [];
  // The denying rules sit in policies whose names sort before or after the filler's.
  const denyName = k % 2 ? "zz-deny" : "aa-deny";
  if (k % 3 === 0) {
    policies.push({ name: denyName, rules: [...exec, ...open] }, { name: "filler", rules: filler });
  } else if (k % 3 === 1) {
    policies.push({ name: "filler", rules: filler.slice().reverse() }, { name: `${denyName}-exec`, rules: exec }, { name: `${denyName}-open`, rules: open });
  } else {
    // Together with the filler, plus a monitor-mode policy whose would-kill rules rank after.
    policies.push({ name: "mixed", rules: [...filler, ...exec, ...open] });
    policies.push({ name: "watching", mode: "monitor", rules: [{ name: "would-kill", hook: "process.exec", match: `process.binary == "${d}/watched-${k}"`, action: "kill" }] });
  }
  if (k % 4 === 2) {
    // A second, higher-precedence kill of the same binary and file in another policy: both deny.
    policies.push({ name: "a-first", rules: [
      { name: "a-denied-first", hook: "process.exec", match: `process.binary == "${d}/denied-echo"`, action: "kill", severity: "critical" },
      { name: "a-secret-first", hook: "file.open", match: `file.path == "${d}/secret.txt" && ${mine}`, action: "kill", severity: "critical" },
    ] });
  }
  return planOf(...policies);
}

/** Plans that must fail without touching the plan in force, each of which would free the denied binary and file. */
function failingPlans(d: string): { kind: string; plan: KernelPlan; error: RegExp; apply: ApplyErrorKind }[] {
  const halfWritten = structuredClone(planOf({ name: "broken", rules: [
    { name: "frees-everything", hook: "process.exec", match: `process.binary == "${d}/other-broken"`, action: "kill" },
    { name: "broken-uid", hook: "file.open", match: "process.uid == 12345", action: "kill" },
  ] }));
  // An integer entry longer than 32 bits: the kernel refuses it after the string tries were written.
  const uid = halfWritten.hooks.find((h) => h.hook === "file.open")!.dimensions.find((x) => x.name === "process.uid")!;
  (uid.entries[0] as { prefixLength: number }).prefixLength = 48;
  // Compiled without this kernel's capabilities: deny on file.open, which this backend cannot do.
  const { plan: uncheckable } = compile([makePolicy({ name: "uncheckable", rules: [{ name: "d", hook: "file.open", match: `file.path == "${d}/other.txt"`, action: "deny" }] })]);
  return [
    { kind: "kernel refuses an entry half-way through the write", plan: halfWritten, error: /plan in force stays in force/, apply: "ApplyError" },
    { kind: "encoder refuses an action this hook cannot carry out", plan: uncheckable!, error: /cannot do there/, apply: "Error" },
  ];
}
type ApplyErrorKind = "ApplyError" | "Error";

async function waitFor(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + STALL_MS;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`stalled: ${what} (after ${stream.swaps} swaps)`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const canRun = requireKernel();

beforeAll(async () => {
  if (!canRun) return;
  Enforcer.removePinned(PIN_DIR);
  dir = tempDir("palisade-swap");
  copyFileSync("/bin/echo", `${dir}/denied-echo`);
  copyFileSync("/bin/echo", `${dir}/ok-echo`);
  writeFileSync(`${dir}/secret.txt`, "top secret\n");
  writeFileSync(`${dir}/public.txt`, "public\n");
  writeFileSync(`${dir}/hammer.c`, HAMMER_C);
  execFileSync(process.env.CC ?? "cc", ["-O2", "-Wall", "-o", `${dir}/hammer`, `${dir}/hammer.c`]);
  const plans = Array.from({ length: 14 }, (_, k) => variant(k, dir));
  const failing = failingPlans(dir);
  const stop = `${dir}/stop`;

  enforcer = Enforcer.open({ pinDir: PIN_DIR, reuse: false, plan: plans[0], onEvent, onError: (e) => stream.decodeErrors.push(e.message) });
  let seq = 1; // flips so far: the plan given to open() was the first
  const hammer = `${dir}/hammer`;
  for (let i = 0; i < EXEC_LOOPS; i++) startHammer(hammer, "denied-exec", deniedBinary(), stop);
  for (let i = 0; i < OPEN_LOOPS; i++) startHammer(hammer, "denied-open", secret(), stop);
  startHammer(hammer, "allowed-exec", `${dir}/ok-echo`, stop, "RAN|");
  startHammer(hammer, "allowed-open", `${dir}/public.txt`, stop, "public|");

  try {
    await waitFor("the first kills", () => stream.execSeqs.has(seq) && stream.openSeqs.has(seq));
    for (let i = 1; i <= SWAPS; i++) {
      if (i % FAIL_EVERY === FAIL_EVERY / 2) {
        const f = failing[(i / FAIL_EVERY) % 2 | 0]!;
        const generation = enforcer.activeGeneration;
        const inForce = enforcer.plan;
        let error = "";
        try {
          enforcer.applyPlan(f.plan);
        } catch (e) {
          error = `${(e as Error).name}: ${(e as Error).message}`;
          if (f.apply === "ApplyError" && !(e instanceof ApplyError)) error = `not an ApplyError: ${error}`;
          else if (!f.error.test(error)) error = `unexpected: ${error}`;
        }
        stream.failedApplies.push({ kind: f.kind, error: error || "it applied", generationKept: enforcer.activeGeneration === generation, planKept: enforcer.plan === inForce });
        // The plan in force still kills: kills that began after the failed apply returned.
        const after = native().bootTimeNs();
        await waitFor("kills after a failed apply", () => stream.lastExecNs > after && stream.lastOpenNs > after);
      }
      const t0 = performance.now();
      enforcer.applyPlan(plans[i % plans.length]!);
      const t1 = performance.now();
      seq++;
      stream.swaps++;
      // Each plan of the stream is exercised by live processes before the next replaces it.
      await waitFor(`kills under flip ${seq}`, () => stream.execSeqs.has(seq) && stream.openSeqs.has(seq));
      stream.applyMs += t1 - t0;
      stream.waitMs += performance.now() - t1;
    }
  } finally {
    writeFileSync(stop, "");
  }
  const results = await Promise.all(hammers.map((h) => h.done));
  hammers.forEach((h, i) => Object.assign(h, results[i]));
  // Every kill has happened; let the ring buffer drain into events.
  const execKills = hammers.filter((h) => h.mode === "denied-exec").reduce((s, h) => s + total(h.killed), 0);
  const openKills = hammers.filter((h) => h.mode === "denied-open").reduce((s, h) => s + total(h.killed), 0);
  const drained = Date.now() + 10_000;
  while ((total(stream.execEvents) < execKills || total(stream.openEvents) < openKills) && Date.now() < drained) {
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 200));
  stream.counters = enforcer.counters();
  stream.recursionMisses = enforcer.programs().reduce((s, p) => s + (p.recursionMisses ?? 0n), 0n);
}, 300_000);

afterAll(() => {
  enforcer?.close();
  if (dir) {
    try {
      writeFileSync(`${dir}/stop`, "");
    } catch {
      // gone
    }
    removeDir(dir);
  }
});

const summaryOf = (mode: string) => {
  const hs = hammers.filter((h) => h.mode === mode) as (Hammer & { attempts: number; good: number; bad: number })[];
  return {
    loops: hs.length,
    attempts: hs.reduce((s, h) => s + h.attempts, 0),
    asExpected: hs.reduce((s, h) => s + h.good, 0),
    anomalies: hs.flatMap((h) => h.anomalies).slice(0, 10),
    killed: hs.reduce((m, h) => {
      for (const [pid, c] of h.killed) m.set(pid, (m.get(pid) ?? 0) + c);
      return m;
    }, new Map<number, number>()),
  };
};

describe(`${SWAPS} plan swaps while denied execs and opens hammer the kernel`, () => {
  it("swapped every time and exercised every plan with live kills", () => {
    expect(stream.swaps).toBe(SWAPS);
    expect(stream.execSeqs.size).toBeGreaterThanOrEqual(SWAPS + 1);
    expect(stream.openSeqs.size).toBeGreaterThanOrEqual(SWAPS + 1);
  });

  it("no exec of the denied binary escaped: every one died by SIGKILL before writing a byte", () => {
    const s = summaryOf("denied-exec");
    console.log(`denied execs: ${s.attempts} in ${s.loops} loops, killed before output: ${s.asExpected}, escapes: ${s.attempts - s.asExpected}`);
    expect(s.anomalies).toEqual([]);
    expect(s.asExpected).toBe(s.attempts);
    expect(s.attempts).toBeGreaterThan(SWAPS);
  });

  it("no open of the denied file escaped: every opener died by SIGKILL before writing a byte", () => {
    const s = summaryOf("denied-open");
    console.log(`denied opens: ${s.attempts} in ${s.loops} loops, killed before output: ${s.asExpected}, escapes: ${s.attempts - s.asExpected}`);
    expect(s.anomalies).toEqual([]);
    expect(s.asExpected).toBe(s.attempts);
    expect(s.attempts).toBeGreaterThan(SWAPS);
  });

  it("allowed execs and opens kept working throughout (no generation ever killed what no plan denies)", () => {
    for (const mode of ["allowed-exec", "allowed-open"]) {
      const s = summaryOf(mode);
      console.log(`${mode}: ${s.attempts}, as expected: ${s.asExpected}`);
      expect(s.anomalies, mode).toEqual([]);
      expect(s.asExpected, mode).toBe(s.attempts);
      expect(s.attempts, mode).toBeGreaterThan(0);
    }
    expect(stream.others).toEqual([]);
  });

  it("every kill came back as exactly one event, from a denying rule, saying the kernel killed", () => {
    const c = stream.counters;
    console.log(`swaps: ${stream.swaps}, applying ${(stream.applyMs / 1000).toFixed(1)} s, waiting for kills under each new plan ${(stream.waitMs / 1000).toFixed(1)} s`);
    console.log(`counters: ${Object.entries(c).map(([k, v]) => `${k}=${v}`).join(" ")} recursionMisses=${stream.recursionMisses}; events decoded without their plan: ${stream.withoutPlan}`);
    expect(stream.decodeErrors).toEqual([]);
    expect(stream.notKilled).toEqual([]);
    expect(c.ringbufDrops).toBe(0n);
    expect(c.signalFailed).toBe(0n);
    expect(c.scratchBusy).toBe(0n);
    expect(c.classMissing).toBe(0n);
    // Same multiset of pids: the hammers' kills and the kernel's events.
    const sorted = (m: Map<number, number>) => [...m.entries()].sort((a, b) => a[0] - b[0]);
    expect(sorted(stream.execEvents)).toEqual(sorted(summaryOf("denied-exec").killed));
    expect(sorted(stream.openEvents)).toEqual(sorted(summaryOf("denied-open").killed));
    expect(stream.withoutPlan).toBe(0);
  });

  it("plans that failed to load mid-stream left the plan in force enforcing", () => {
    console.log(`failed applies: ${stream.failedApplies.length}`);
    expect(stream.failedApplies).toHaveLength(SWAPS / FAIL_EVERY);
    for (const f of stream.failedApplies) {
      expect(f.error, f.kind).not.toMatch(/^(it applied|unexpected|not an ApplyError)/);
      expect(f.generationKept, f.kind).toBe(true);
      expect(f.planKept, f.kind).toBe(true);
    }
  });
});
