// Boots one test VM and runs test/e2e/backends/scenarios.ts in it (no vitest here: the
// cost harness, bench.ts, uses it too).

import { resolve } from "node:path";
import { tricksBinary } from "../../enforcer/tricks.ts";
import { runInVm, type VmRunResult } from "../vm/vm.ts";
import type { RunResult } from "./scenarios.ts";

const ROOT = resolve(import.meta.dirname, "../../..");
const MARK = "PALISADE-SCENARIOS ";

export interface VmScenarioOptions {
  lsm: "bpf" | "nobpf";
  /** Backends to run, one phase each ("auto": the enforcer's own choice). */
  phases: string[];
  /** openat+close calls per sample for the cost measurement (none when absent). */
  bench?: number;
  /** Backends whose file.open cost to measure (default: the enforcer's own choice). */
  benchBackends?: string[];
  timeoutMs: number;
}

export async function runScenarios(options: VmScenarioOptions): Promise<{ run: RunResult; vm: VmRunResult }> {
  const tricks = tricksBinary();
  const args = [`--tricks ${tricks}`, ...options.phases.map((p) => `--phase ${p}`), ...(options.bench ? [`--bench ${options.bench}`] : []), ...(options.benchBackends ?? []).map((b) => `--bench-backend ${b}`)];
  const vm = await runInVm({ lsm: options.lsm, command: `node test/e2e/backends/scenarios.ts ${args.join(" ")}`, cwd: ROOT, timeoutMs: options.timeoutMs });
  const line = vm.stdout.split("\n").find((l) => l.startsWith(MARK));
  if (vm.exitCode !== 0 || !line) {
    const tail = (s: string) => s.split("\n").slice(-40).join("\n");
    throw new Error(`the scenario runner in the VM (lsm=${options.lsm}) exited ${vm.exitCode} without its result line.\nstderr:\n${tail(vm.stderr)}\nconsole:\n${tail(vm.console)}`);
  }
  return { run: JSON.parse(line.slice(MARK.length)) as RunResult, vm };
}

