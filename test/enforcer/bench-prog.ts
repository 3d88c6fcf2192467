// The file.open program's own run time per event (kernel.bpf_stats_enabled), for a growing
// number of rules: the kernel does a fixed number of lookups per event whatever the count;
// only the LPM trie's depth grows (logarithmically). Run as root:
//   node test/enforcer/bench-prog.ts
// (Not a test: numbers depend on the machine. docs/kernel-abi.md quotes a run.)

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { Enforcer } from "../../src/enforcer/index.ts";
import { planOf, type TestPolicySpec } from "./support.ts";

const dir = mkdtempSync("/tmp/palisade-bench-");
writeFileSync(`${dir}/loop.c`, `#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
int main(int c, char **v) { long n = atol(v[2]); for (long i = 0; i < n; i++) close(openat(AT_FDCWD, v[1], O_RDONLY)); return 0; }`);
execFileSync("cc", ["-O2", "-o", `${dir}/loop`, `${dir}/loop.c`]);

const files = (n: number): TestPolicySpec => ({
  name: `files-${n}`,
  rules: Array.from({ length: n }, (_, i) => ({ name: `r${i}`, hook: "file.open" as const, match: `file.path == "/srv/denied/${i}.key"`, action: "kill" as const })),
});
const cases: [string, TestPolicySpec][] = [
  ["process.binary rule (no path walk)", { name: "b", rules: [{ name: "r", hook: "file.open", match: 'process.binary == "/srv/x"', action: "kill" }] }],
  ["1 file.path rule", files(1)],
  ["1,000 file.path rules", files(1000)],
  ["10,000 file.path rules", files(10_000)],
  ["4 dimensions", { name: "dims", rules: [
    { name: "a", hook: "file.open", match: 'file.path.startsWith("/srv/") && process.binary == "/usr/bin/x"', action: "kill" },
    { name: "b", hook: "file.open", match: 'file.name.endsWith(".pem") && file.dir != "/etc/ssl"', action: "kill" },
  ] }],
];

const stats = "/proc/sys/kernel/bpf_stats_enabled";
const was = readFileSync(stats, "utf8").trim();
writeFileSync(stats, "1");
try {
  for (const [label, spec] of cases) {
    const e = Enforcer.open({ pinDir: "/sys/fs/bpf/palisade-bench", reuse: false, plan: planOf(spec) });
    const samples: number[] = [];
    for (let trial = 0; trial < 5; trial++) {
      const before = e.programs().find((p) => p.name === "pal_open_exit")!;
      execFileSync(`${dir}/loop`, ["/etc/hostname", "200000"]);
      const after = e.programs().find((p) => p.name === "pal_open_exit")!;
      samples.push(Number(after.runTimeNs! - before.runTimeNs!) / Number(after.runCount! - before.runCount!));
    }
    e.close();
    samples.sort((a, b) => a - b);
    console.log(`${label.padEnd(40)} median ${samples[2]!.toFixed(0).padStart(4)} ns  (min ${samples[0]!.toFixed(0)}, max ${samples[4]!.toFixed(0)}) per open`);
  }
} finally {
  writeFileSync(stats, was);
}
