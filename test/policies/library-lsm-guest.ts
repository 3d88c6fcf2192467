// Runs inside the BPF-LSM test VM (see library-lsm.test.ts): the agent on the policy
// variants in argv[2], then the processes that must be refused or killed, and prints one
// line "LIBRARY-LSM <json>" with how each ended and the events the agent wrote.

import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { TEST_GID } from "./variants.ts";

const policies = process.argv[2]!;
const work = mkdtempSync("/tmp/library-lsm-");
const eventsFile = `${work}/events.jsonl`;
const aptGet = `${work}/apt-get`;
copyFileSync("/usr/bin/true", aptGet);

const agent = spawn("bin/palisade", ["run", "--policies", policies, "--events-file", eventsFile, "--pin-dir", "/sys/fs/bpf/palisade-library-lsm", "--no-metrics", "--no-observe"], { stdio: ["ignore", "ignore", "pipe"] });
let log = "";
agent.stderr!.setEncoding("utf8").on("data", (d: string) => (log += d));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
for (let waited = 0; !/enforcing plan [0-9a-f]{12}/.test(log); waited += 200) {
  if (waited > 400_000 || agent.exitCode !== null) {
    console.log(`LIBRARY-LSM ${JSON.stringify({ error: "the agent never enforced", log })}`);
    process.exit(1);
  }
  await sleep(200);
}

const exec = (file: string, args: string[]) => {
  const r = spawnSync(file, args, { gid: TEST_GID, encoding: "utf8", timeout: 60_000 });
  return { binary: file, pid: r.pid, signal: r.signal, status: r.status, error: (r.error as NodeJS.ErrnoException | undefined)?.code ?? null, stdout: r.stdout ?? "" };
};
const outcomes: Record<string, unknown> = {
  packageManager: exec(aptGet, ["install", "nmap"]),
  shell: exec("/bin/sh", ["-c", "echo ran"]),
  otherProgram: exec("/usr/bin/id", ["-u"]),
};
// The connect rule is scoped to the test group too: this process joins it.
process.setgid!(TEST_GID);
outcomes.metadata = await new Promise((resolve) => {
  const socket = connect({ host: "169.254.169.254", port: 80 });
  socket.setTimeout(5_000, () => resolve({ pid: process.pid, outcome: "timeout" }));
  socket.on("connect", () => resolve({ pid: process.pid, outcome: "connected" }));
  socket.on("error", (e: NodeJS.ErrnoException) => resolve({ pid: process.pid, outcome: e.code }));
});

await sleep(3_000);
agent.kill("SIGTERM");
await new Promise((resolve) => agent.once("exit", resolve));
const events = existsSync(eventsFile) ? readFileSync(eventsFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
console.log(`LIBRARY-LSM ${JSON.stringify({ outcomes, events, log })}`);
