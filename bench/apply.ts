// The enforcer's share of a policy change, apart from the agent's reload: 1,000 policies
// (one kill rule each on process.exec, as bench/agent.ts), then a sequence of changes to one
// of them, each adding a rule no earlier plan had (so the generation written never already
// holds the new plan). Per change: compiling all 1,000 (the compiler's per-rule memo warm, as
// in the agent), the apply until the flip (from then on the plan is enforced), the whole
// apply (with the RCU wait after the flip), and the entries written or deleted.
// Needs root, BPF and the built enforcer. Asserts nothing.

import { performance } from "node:perf_hooks";
import { compile } from "../src/compiler/index.ts";
import { Enforcer, TRACEPOINT_CAPABILITIES } from "../src/enforcer/index.ts";
import { makePolicy } from "../test/support/policies.ts";

const PIN_DIR = "/sys/fs/bpf/palisade-bench-apply";

const policy = (i: number, extra?: string) =>
  makePolicy({
    name: `p${i}`,
    rules: [
      { name: "r", hook: "process.exec", match: `process.binary == "/opt/bench/tool${i}"`, action: "kill" },
      ...(extra ? [{ name: "changed", hook: "process.exec" as const, match: `process.binary == "${extra}"`, action: "kill" as const }] : []),
    ],
  });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const range = (xs: number[]) => `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;

export function benchApply(policies = 1000, changes = 15): string {
  const base = Array.from({ length: policies }, (_, i) => policy(i));
  const planOf = (changed?: number) => {
    const list = changed === undefined ? base : base.map((p, i) => (i === policies / 2 ? policy(i, `/opt/bench/changed${changed}`) : p));
    const { plan } = compile(list, { capabilities: TRACEPOINT_CAPABILITIES });
    if (!plan) throw new Error("the bench policies do not compile");
    return plan;
  };
  Enforcer.removePinned(PIN_DIR);
  const enforcer = Enforcer.open({ pinDir: PIN_DIR, reuse: false, plan: planOf() });
  const compileMs: number[] = [], enforcedMs: number[] = [], applyMs: number[] = [], written: number[] = [];
  try {
    for (let t = 0; t < changes; t++) {
      const started = performance.now();
      const plan = planOf(t);
      compileMs.push(performance.now() - started);
      const result = enforcer.applyPlan(plan);
      enforcedMs.push(result.enforcedMs);
      applyMs.push(result.durationMs);
      written.push(result.written);
    }
  } finally {
    enforcer.close();
  }
  return [
    `| policies | compile all, median (ms) | apply until the flip, median (ms) | min–max | whole apply, median (ms) | entries written |`,
    "|---:|---:|---:|---:|---:|---:|",
    `| ${policies} | ${median(compileMs).toFixed(1)} | ${median(enforcedMs).toFixed(1)} | ${range(enforcedMs)} | ${median(applyMs).toFixed(1)} | ${median(written)} |`,
  ].join("\n");
}

if (import.meta.main) console.log(benchApply());
