// Time from a policy file change to enforcement, end to end, with 1,000 policies loaded:
// one file is rewritten to kill a binary that a loop keeps executing; the latency is from
// the write to the first exec the kernel kills. Also the agent's own share (reload,
// compile, apply), from its log.

import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { startAgent } from "../src/agent/index.ts";

const policy = (i: number, extra = "") =>
  `apiVersion: palisade.dev/v1alpha1\nkind: TracingPolicy\nmetadata: {name: p${i}}\nspec:\n  rules:\n` +
  `    - {name: r, hook: process.exec, match: 'process.binary == "/opt/bench/tool${i}"', action: kill}\n${extra}`;

const run = (path: string) =>
  new Promise<string | null>((resolve) => spawn(path, [], { stdio: "ignore" }).on("exit", (_code, signal) => resolve(signal)));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchPolicyChange(policies = 1000, trials = 7): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "palisade-bench-agent-"));
  const policyDir = join(dir, "policies");
  mkdirSync(policyDir);
  for (let i = 0; i < policies; i++) writeFileSync(join(policyDir, `p${String(i).padStart(4, "0")}.yaml`), policy(i));
  const target = join(dir, "target");
  copyFileSync("/usr/bin/true", target);
  const applied: number[] = [];
  const agent = startAgent({
    policies: [policyDir], eventsFile: join(dir, "events.jsonl"), pinDir: "/sys/fs/bpf/palisade-bench-agent",
    log: (line) => {
      const ms = /applied in ([\d.]+) ms/.exec(line)?.[1];
      if (ms) applied.push(Number(ms));
    },
  });
  const changed = join(policyDir, "p0500.yaml");
  const endToEnd: number[] = [];
  try {
    for (let t = 0; t < trials; t++) {
      const kill = `    - {name: target, hook: process.exec, match: 'process.binary == "${target}"', action: kill}\n`;
      const started = performance.now();
      writeFileSync(changed, policy(500, kill));
      while ((await run(target)) !== "SIGKILL") {
        if (performance.now() - started > 10_000) throw new Error("the change never took effect");
      }
      endToEnd.push(performance.now() - started);
      writeFileSync(changed, policy(500));
      while ((await run(target)) === "SIGKILL");
    }
  } finally {
    await agent.stop();
  }
  return [
    `| policies loaded | file write → first kill, median of ${trials} (ms) | min–max (ms) | agent reload + compile + apply, median (ms) |`,
    "|---:|---:|---:|---:|",
    `| ${policies} | ${median(endToEnd).toFixed(1)} | ${Math.min(...endToEnd).toFixed(1)}–${Math.max(...endToEnd).toFixed(1)} | ${median(applied).toFixed(1)} |`,
  ].join("\n");
}
