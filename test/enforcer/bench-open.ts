// Measures the per-open cost of the file.open program: a C loop of openat+close on one
// file, with no enforcer, with rules on other hooks only, and with file.open rules of
// growing number. Run as root: node test/enforcer/bench-open.ts [iterations]
// (Not a test: numbers depend on the machine. docs/kernel-abi.md quotes a run.)

import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { Enforcer } from "../../src/enforcer/index.ts";
import { planOf } from "./support.ts";
import type { PolicySpec } from "../support/policies.ts";

const iterations = Number(process.argv[2] ?? 1_000_000);
const dir = mkdtempSync("/tmp/palisade-bench-");
writeFileSync(`${dir}/loop.c`, `
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
  long n = atol(argv[2]);
  struct timespec a, b;
  for (int warm = 0; warm < 10000; warm++) close(openat(AT_FDCWD, argv[1], O_RDONLY));
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++) close(openat(AT_FDCWD, argv[1], O_RDONLY));
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.1f\\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
  return 0;
}`);
execFileSync("cc", ["-O2", "-o", `${dir}/loop`, `${dir}/loop.c`]);
const target = "/etc/hostname";
const measure = () => {
  const runs = [0, 1, 2].map(() => Number(execFileSync(`${dir}/loop`, [target, String(iterations)], { encoding: "utf8" })));
  return Math.min(...runs);
};

const fileRules = (n: number): PolicySpec => ({
  name: `files-${n}`,
  rules: Array.from({ length: n }, (_, i) => ({ name: `r${i}`, hook: "file.open" as const, match: `file.path == "/srv/denied/${i}.key"`, action: "kill" as const })),
});
const cases: [string, PolicySpec | undefined][] = [
  ["no enforcer", undefined],
  ["enforcer, exec rule only (file.open idle)", { name: "exec", rules: [{ name: "x", hook: "process.exec", match: 'process.binary == "/nonexistent"', action: "kill" }] }],
  ["1 file.path rule", fileRules(1)],
  ["10,000 file.path rules", fileRules(10_000)],
  ["4 dimensions (path, name suffix, dir, binary)", { name: "dims", rules: [
    { name: "a", hook: "file.open", match: 'file.path.startsWith("/srv/") && process.binary == "/usr/bin/x"', action: "kill" },
    { name: "b", hook: "file.open", match: 'file.name.endsWith(".pem") && file.dir != "/etc/ssl"', action: "kill" },
  ] }],
];

const results: Record<string, number> = {};
let baseline = 0;
for (const [label, spec] of cases) {
  let enforcer: Enforcer | undefined;
  let applyMs: number | undefined;
  if (spec) {
    const t = performance.now();
    enforcer = Enforcer.open({ pinDir: "/sys/fs/bpf/palisade-bench", reuse: false, plan: planOf(spec) });
    applyMs = performance.now() - t;
  }
  const ns = measure();
  enforcer?.close();
  if (!spec) baseline = ns;
  results[label] = ns;
  const extra = spec ? `  +${(ns - baseline).toFixed(0)} ns (+${(((ns - baseline) / baseline) * 100).toFixed(0)}%)  open+apply ${applyMs!.toFixed(0)} ms` : "";
  console.log(`${label.padEnd(48)} ${ns.toFixed(0).padStart(6)} ns/openat+close${extra}`);
}
