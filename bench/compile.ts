// Compile time against rule count. Rules are a realistic mix over all three hooks:
// exact paths, prefixes, suffixes, uid ranges, CIDRs and ports, a tenth of them testing
// two fields. Times are medians; the ratio to n·log2(n) shows how time grows.

import { performance } from "node:perf_hooks";
import { stringify } from "yaml";
import { compile } from "../src/compiler/index.ts";
import { validateSource } from "../src/validate/index.ts";

const HOOKS = ["process.exec", "file.open", "net.connect"] as const;

function ruleFor(i: number) {
  const hook = HOOKS[i % 3]!;
  const k = Math.floor(i / 3);
  const twoFields = i % 10 === 0;
  const extra = twoFields ? ` && process.uid >= ${1000 + (k % 50)}` : "";
  const byHook = {
    "process.exec": [`process.binary == "/opt/app${k}/bin/tool"`, `process.binary.startsWith("/srv/job${k}/")`, `process.name.endsWith("-helper${k}")`],
    "file.open": [`file.path == "/data/tenant${k}/secret.key"`, `file.path.startsWith("/etc/app${k}/")`, `file.path.endsWith(".k${k}")`],
    "net.connect": [`cidr("10.${(k >> 8) & 255}.${k & 255}.0/24").containsIP(net.daddr)`, `net.daddr == "192.168.${(k >> 8) & 255}.${k & 255}"`, `net.dport == ${1024 + (k % 60000)}`],
  }[hook];
  return { name: `r${i}`, hook, match: byHook[k % 3]! + extra, action: i % 7 === 0 ? "audit" : i % 2 ? "deny" : "kill", severity: "medium" };
}

function policyYaml(n: number): string {
  return stringify({ apiVersion: "palisade.dev/v1alpha1", kind: "TracingPolicy", metadata: { name: `bench-${n}` }, spec: { rules: Array.from({ length: n }, (_, i) => ruleFor(i)) } });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function benchCompile(sizes = [10, 100, 1000, 3000, 10000], runs = 5): string {
  const rows: string[] = ["| rules | compile (ms) | YAML → plan (ms) | compile µs per n·log2(n) | kernel entries |", "|---:|---:|---:|---:|---:|"];
  for (const n of sizes) {
    const text = policyYaml(n);
    const { policies, diagnostics } = validateSource("bench.yaml", text);
    if (diagnostics.length) throw new Error(`bench policy invalid: ${diagnostics[0]!.message}`);
    compile(policies); // warm-up
    const compileMs: number[] = [];
    const endToEndMs: number[] = [];
    let entries = 0;
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      const { plan } = compile(policies);
      compileMs.push(performance.now() - t0);
      entries = plan!.hooks.reduce((sum, h) => sum + h.dimensions.reduce((s, d) => s + d.entries.length, 0), 0);
      const t1 = performance.now();
      const fresh = validateSource("bench.yaml", text);
      compile(fresh.policies);
      endToEndMs.push(performance.now() - t1);
    }
    const c = median(compileMs);
    rows.push(`| ${n} | ${c.toFixed(1)} | ${median(endToEndMs).toFixed(1)} | ${((c * 1000) / (n * Math.log2(Math.max(n, 2)))).toFixed(2)} | ${entries} |`);
  }
  return rows.join("\n");
}
