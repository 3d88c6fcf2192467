// Time from `kubectl apply` returning to the change being in the kernel, with 1,000
// TracingPolicies in a real API server (test/e2e/kube/cluster.ts) and the Kubernetes agent
// running in this process. Each trial edits one policy (a new generation) to add a kill rule
// for a binary, then takes it out again. Two clocks start when kubectl exits:
//   - "in force": the agent's plan digest changed (Enforcer.applyPlan returned, the flip done);
//   - "first kill": a loop exec'ing the binary is first killed by the kernel (end to end,
//     with the loop's own exec cost as granularity).
// Standalone: `node bench/kube-apply.ts [trials]` (as root, Node 24); also run by scripts/bench.

import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { startKubernetesAgent } from "../src/controller/index.ts";
import { Enforcer } from "../src/enforcer/index.ts";
import { startCluster } from "../test/e2e/kube/cluster.ts";

const ROOT = join(import.meta.dirname, "..");
const PIN_DIR = "/sys/fs/bpf/palisade-bench-kube";

const policy = (i: number, extraRule?: string) => ({
  apiVersion: "palisade.dev/v1alpha1", kind: "TracingPolicy", metadata: { name: `p${String(i).padStart(4, "0")}` },
  spec: {
    rules: [
      { name: "r", hook: "process.exec", match: `process.binary == "/opt/bench/tool${i}"`, action: "kill" },
      ...(extraRule ? [{ name: "target", hook: "process.exec", match: `process.binary == "${extraRule}"`, action: "kill" }] : []),
    ],
  },
});

const exec = (path: string) => new Promise<string | null>((resolve) => spawn(path, [], { stdio: "ignore" }).on("exit", (_c, signal) => resolve(signal)));

const percentile = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

export async function benchKubeApply(policies = 1000, trials = 50): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "palisade-bench-kube-"));
  const target = join(dir, "target");
  copyFileSync("/usr/bin/true", target);
  const cluster = await startCluster();
  try {
    await cluster.kubectl(["apply", "-f", join(ROOT, "api", "crds")]);
    await cluster.kubectl(["wait", "--for=condition=Established", "--timeout=30s", "crd/tracingpolicies.palisade.dev"]);
    await cluster.kubectl(["create", "namespace", "palisade-system"]);
    const list = { apiVersion: "v1", kind: "List", items: Array.from({ length: policies }, (_, i) => policy(i)) };
    await cluster.kubectl(["create", "-f", "-"], { input: JSON.stringify(list) });

    const applied: number[] = [];
    let startMillis = 0;
    const started = performance.now();
    const agent = startKubernetesAgent({
      kubeconfig: cluster.kubeconfig, node: "bench-node", pinDir: PIN_DIR, eventsFile: join(dir, "events.jsonl"), metricsAddress: false, observeSocket: false,
      log: (line) => {
        const ms = /applied in ([\d.]+) ms/.exec(line)?.[1];
        if (ms) applied.push(Number(ms));
      },
    });
    const inForce: number[] = [];
    const firstKill: number[] = [];
    try {
      await agent.ready;
      startMillis = performance.now() - started;
      const digest = () => agent.nodeState()?.planDigest;
      const apply = async (extra?: string) => {
        const before = digest();
        await cluster.kubectl(["apply", "-f", "-"], { input: JSON.stringify(policy(500, extra)) });
        const t0 = performance.now();
        return { before, t0 };
      };
      for (let t = 0; t < trials; t++) {
        const { before, t0 } = await apply(target);
        let forced: number | undefined;
        const watchDigest = (async () => {
          while (digest() === before) await new Promise((r) => setImmediate(r));
          forced = performance.now() - t0;
        })();
        while ((await exec(target)) !== "SIGKILL") {
          if (performance.now() - t0 > 10_000) throw new Error("the change never reached the kernel");
        }
        firstKill.push(performance.now() - t0);
        await watchDigest;
        inForce.push(forced!);
        await apply();
        while ((await exec(target)) === "SIGKILL");
      }
    } finally {
      await agent.stop();
      Enforcer.removePinned(PIN_DIR);
    }
    const row = (name: string, xs: number[]) => `| ${name} | ${percentile(xs, 50).toFixed(1)} | ${percentile(xs, 99).toFixed(1)} | ${Math.max(...xs).toFixed(1)} |`;
    return [
      `${policies} TracingPolicies in the API server, ${trials} edits (each a new generation of one policy, then its revert); agent ready in ${(startMillis / 1000).toFixed(1)} s (first list of everything, one compile, one apply).`,
      "",
      "| kubectl apply returned → | p50 (ms) | p99 (ms) | max (ms) |",
      "|---|---:|---:|---:|",
      row("plan in force (digest changed)", inForce),
      row("first exec killed", firstKill),
      row("agent's share: validate + compile + apply", applied),
    ].join("\n");
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) console.log(await benchKubeApply(1000, Number(process.argv[2] ?? 50)));
