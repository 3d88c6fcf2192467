// The cost of file.open enforcement per backend, measured inside the test VMs (Debian's 6.1
// under qemu TCG): ns per openat+close of a file on the guest's tmpfs with no agent, with the agent but
// no file.open rule, and with 10 and 10,000 file.path rules (none matching). TCG is 10-50x
// slower than hardware and varies with the host's load, so only the ratios within one
// boot mean anything. Not a test. Run from the repository as root:
//
//   node test/e2e/backends/bench.ts [--opens N]      (default 20000 per sample, 3 samples)
//
// One boot with BPF LSM (the lsm backend), one without (fmod_ret, kprobe, tracepoint).

import { parseArgs } from "node:util";
import { runScenarios } from "./vm-run.ts";

const { values } = parseArgs({ options: { opens: { type: "string", default: "20000" } } });
const opens = Number(values.opens);
const boots = [
  { lsm: "bpf" as const, benchBackends: ["auto"] },
  { lsm: "nobpf" as const, benchBackends: ["auto", "kprobe", "tracepoint"] },
];
const loopRows: string[] = [];
const progRows: string[] = [];
const f = (x: number) => (x >= 10_000 ? `${(x / 1000).toFixed(1)} µs` : `${Math.round(x)} ns`);
for (const boot of boots) {
  const { run } = await runScenarios({ ...boot, phases: [], bench: opens, timeoutMs: 1_500_000 });
  for (const b of run.bench ?? []) {
    const base = b.loopNs["no agent"]!.median;
    const cell = (k: string) => `${f(b.loopNs[k]!.median)} (${(b.loopNs[k]!.median / base).toFixed(2)}x; min ${f(b.loopNs[k]!.min)})`;
    loopRows.push(`| ${b.backend} (lsm=${boot.lsm}) | ${f(base)} (min ${f(b.loopNs["no agent"]!.min)}) | ${cell("agent, no file.open rule")} | ${cell("10 file.path rules")} | ${cell("10,000 file.path rules")} |`);
    const p = (k: string) => (b.programNs[k] ? `${f(b.programNs[k].median)} (min ${f(b.programNs[k].min)})` : "not run");
    progRows.push(`| ${b.backend} | ${p("agent, no file.open rule")} | ${p("10 file.path rules")} | ${p("10,000 file.path rules")} |`);
    console.error(`${b.backend} (lsm=${boot.lsm}): ${JSON.stringify(b.samples)}`);
  }
}
console.log(`openat+close of a tmpfs file inside the VM (Debian 6.1 under qemu TCG), ${opens} calls per sample, 5 rounds, median (ratio to no agent; minimum):\n`);
console.log("| file.open backend | no agent | agent, no file.open rule | 10 file.path rules | 10,000 file.path rules |");
console.log("|---|---|---|---|---|");
for (const r of loopRows) console.log(r);
console.log("\nThe file.open program's own time per run (kernel.bpf_stats_enabled), same runs:\n");
console.log("| file.open backend | no file.open rule | 10 file.path rules | 10,000 file.path rules |");
console.log("|---|---|---|---|");
for (const r of progRows) console.log(r);
