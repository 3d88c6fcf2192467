// Shared set-up of the real-kernel enforcer tests: they need root and BPF, and say so
// loudly (a failed test with the reason), never skip.

import { beforeEach } from "vitest";
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { compile } from "../../src/compiler/index.ts";
import type { KernelPlan } from "../../src/plan/types.ts";
import { BUILD_DIR } from "../../src/enforcer/native.ts";
import { privilegeProblem } from "../../src/enforcer/system.ts";
import type { EnforcerEvent } from "../../src/enforcer/events.ts";
import { TRACEPOINT_CAPABILITIES } from "../../src/enforcer/encode.ts";
import { makePolicy, type PolicySpec, type RuleSpec } from "../support/policies.ts";

/** A policy whose rules may say `fallback: kill` (deny where the hook can only kill). */
export interface TestPolicySpec extends Omit<PolicySpec, "rules"> {
  rules: (RuleSpec & { fallback?: "kill" })[];
}

/** Why these tests cannot run here, or undefined. */
export function kernelTestProblem(): string | undefined {
  const privileges = privilegeProblem();
  if (privileges) return privileges;
  if (!existsSync("/sys/kernel/btf/vmlinux")) return "this kernel has no BTF (/sys/kernel/btf/vmlinux)";
  for (const f of ["palisade_enforcer.node", "enforcer.bpf.o", "probe.bpf.o"]) {
    if (!existsSync(join(BUILD_DIR, f))) return `${join(BUILD_DIR, f)} is missing: run scripts/setup (or scripts/build-enforcer)`;
  }
  return undefined;
}

/**
 * Call at the top of a test file. Returns whether the kernel tests can run here; when they
 * cannot, every test of the file fails with the reason (a failure in beforeAll alone would
 * only mark them skipped).
 */
export function requireKernel(): boolean {
  const problem = kernelTestProblem();
  beforeEach(() => {
    if (problem) throw new Error(`the enforcer's kernel tests need root and BPF on this machine: ${problem}`);
  });
  return problem === undefined;
}

/** Compiles for this backend (the tracepoint backend's capabilities). */
export function planOf(...specs: TestPolicySpec[]): KernelPlan {
  const policies = specs.map((spec) => {
    const policy = makePolicy(spec);
    spec.rules.forEach((r, i) => r.fallback && (policy.rules[i]!.fallback = r.fallback));
    return policy;
  });
  const { plan, diagnostics } = compile(policies, { capabilities: TRACEPOINT_CAPABILITIES });
  if (!plan) throw new Error(`test policies do not compile: ${JSON.stringify(diagnostics)}`);
  return plan;
}

export function tempDir(prefix: string): string {
  return realpathSync(mkdtempSync(`/tmp/${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function run(file: string, args: string[] = [], options: { cwd?: string; input?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(file, args, { encoding: "utf8", timeout: 10_000, ...options });
}

export const sh = (script: string, options: { cwd?: string } = {}) => run("/bin/bash", ["-c", script], options);

/** A node one-liner in a child process (for sockets bash cannot open). */
export const nodeScript = (script: string) => run(process.execPath, ["-e", script]);

export async function listen(host = "127.0.0.1"): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => socket.end("hello\n"));
  await new Promise<void>((resolve, reject) => server.listen(0, host, resolve).on("error", reject));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no port");
  return { server, port: address.port };
}

/** Collects enforcer events; `wait` resolves with the first that matches. */
export class EventLog {
  readonly events: EnforcerEvent[] = [];
  readonly errors: Error[] = [];
  readonly push = (e: EnforcerEvent) => void this.events.push(e);
  readonly error = (e: Error) => void this.errors.push(e);

  async wait(match: (e: EnforcerEvent) => boolean, timeoutMs = 5000): Promise<EnforcerEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events.find(match);
      if (hit) return hit;
      if (Date.now() > deadline) {
        throw new Error(`no matching event within ${timeoutMs} ms; got ${JSON.stringify(this.events.map((e) => e.event), null, 1)}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Events seen so far that match, after giving the ring buffer time to drain. */
  async settle(match: (e: EnforcerEvent) => boolean, ms = 300): Promise<EnforcerEvent[]> {
    await new Promise((r) => setTimeout(r, ms));
    return this.events.filter(match);
  }
}

/** Starts a bash script and resolves once it printed `marker`; returns the child. */
export async function startBash(script: string, marker: string) {
  const child = spawn("/bin/bash", ["-c", script], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  const deadline = Date.now() + 5000;
  while (!out.includes(marker)) {
    if (Date.now() > deadline) throw new Error(`bash did not print ${marker}; got ${out}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const finished = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => out, finished };
}
