// Every kernel dimension on the real kernel: one audit rule per case, a real process does
// the thing, and the kernel must report the rule exactly when the reference evaluator
// says it holds (prefix, suffix, name, dir, parent, ids, addresses, long and non-ASCII
// paths, multi-field rules). Needs root and BPF.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import type { Server } from "node:net";
import { Enforcer } from "../../src/enforcer/index.ts";
import { evaluate } from "../../src/plan/evaluate.ts";
import type { Hook } from "../../src/policy/model.ts";
import { EventLog, listen, planOf, removeDir, requireKernel, run, sh, tempDir } from "./support.ts";

const PIN_DIR = "/sys/fs/bpf/palisade-test-dimensions";
let dir: string;
let enforcer: Enforcer | undefined;
const log = new EventLog();
let server: Server;
let port: number;
let longFile: string;

const canRun = requireKernel();

beforeAll(async () => {
  if (!canRun) return;
  Enforcer.removePinned(PIN_DIR);
  dir = tempDir("palisade-dims");
  mkdirSync(`${dir}/sub`);
  writeFileSync(`${dir}/sub/data.pem`, "pem\n");
  writeFileSync(`${dir}/sub/é-ü.pem`, "utf8\n");
  copyFileSync("/bin/true", `${dir}/sub/tool`);
  // A path longer than the 256 bytes a key holds: prefixes and suffixes must still work.
  const long = `${dir}/${"x".repeat(120)}/${"y".repeat(120)}`;
  mkdirSync(long, { recursive: true });
  longFile = `${long}/final.pem`;
  writeFileSync(longFile, "long\n");
  ({ server, port } = await listen());
  enforcer = Enforcer.open({ pinDir: PIN_DIR, reuse: false, onEvent: log.push, onError: log.error });
});

afterAll(() => {
  enforcer?.close();
  server?.close();
  if (dir) removeDir(dir);
});

interface Case {
  hook: Hook;
  match: (d: string) => string;
  act: (d: string) => ReturnType<typeof run>;
  holds: boolean;
}

const catFile = (path: (d: string) => string) => (d: string) => run("/bin/cat", [path(d)]);
const cat = catFile((d) => `${d}/sub/data.pem`);
/** cat as a child of bash (bash -c "x; true" forks instead of exec'ing x) */
const catUnderBash = (d: string) => sh(`/bin/cat ${d}/sub/data.pem >/dev/null; true`);
const connect = () => sh(`exec 3<>/dev/tcp/127.0.0.1/${port}`);
const q = JSON.stringify;

const CASES: Record<string, Case> = {
  "file.path ==": { hook: "file.open", match: (d) => `file.path == ${q(`${d}/sub/data.pem`)}`, act: cat, holds: true },
  "file.path == (other)": { hook: "file.open", match: (d) => `file.path == ${q(`${d}/sub/data.pe`)}`, act: cat, holds: false },
  "file.path.startsWith": { hook: "file.open", match: (d) => `file.path.startsWith(${q(`${d}/sub/`)})`, act: cat, holds: true },
  "file.path.endsWith": { hook: "file.open", match: () => 'file.path.endsWith("/data.pem")', act: cat, holds: true },
  "file.path.endsWith (other)": { hook: "file.open", match: () => 'file.path.endsWith(".key")', act: cat, holds: false },
  "file.name ==": { hook: "file.open", match: () => 'file.name == "data.pem"', act: cat, holds: true },
  "file.name.startsWith": { hook: "file.open", match: () => 'file.name.startsWith("dat")', act: cat, holds: true },
  "file.name.endsWith": { hook: "file.open", match: () => 'file.name.endsWith("a.pem")', act: cat, holds: true },
  "file.name.endsWith crossing the slash": { hook: "file.open", match: () => 'file.name.endsWith("b/data.pem")', act: cat, holds: false },
  "file.dir ==": { hook: "file.open", match: (d) => `file.dir == ${q(`${d}/sub`)}`, act: cat, holds: true },
  "file.dir == (parent)": { hook: "file.open", match: (d) => `file.dir == ${q(d)}`, act: cat, holds: false },
  "file.dir.endsWith": { hook: "file.open", match: () => 'file.dir.endsWith("/sub")', act: cat, holds: true },
  "file.dir.endsWith (with name)": { hook: "file.open", match: () => 'file.dir.endsWith("data.pem")', act: cat, holds: false },
  "file.dir.startsWith": { hook: "file.open", match: (d) => `file.dir.startsWith(${q(`${d}/su`)})`, act: cat, holds: true },
  "non-ASCII file.name": { hook: "file.open", match: () => 'file.name == "é-ü.pem"', act: catFile((d) => `${d}/sub/é-ü.pem`), holds: true },
  "long path: startsWith": { hook: "file.open", match: (d) => `file.path.startsWith(${q(`${d}/${"x".repeat(120)}/yyyy`)})`, act: catFile(() => longFile), holds: true },
  "long path: endsWith": { hook: "file.open", match: () => `file.path.endsWith(${q(`${"y".repeat(100)}/final.pem`)})`, act: catFile(() => longFile), holds: true },
  "long path: dir.endsWith": { hook: "file.open", match: () => `file.dir.endsWith(${q("y".repeat(120))})`, act: catFile(() => longFile), holds: true },
  "long path: name": { hook: "file.open", match: () => 'file.name == "final.pem"', act: catFile(() => longFile), holds: true },
  "process.binary ==": { hook: "file.open", match: () => 'process.binary == "/usr/bin/cat"', act: cat, holds: true },
  "process.binary.endsWith": { hook: "file.open", match: () => 'process.binary.endsWith("bin/cat")', act: cat, holds: true },
  "process.name ==": { hook: "file.open", match: () => 'process.name == "cat"', act: cat, holds: true },
  "process.name.endsWith": { hook: "file.open", match: () => 'process.name.endsWith("at")', act: cat, holds: true },
  "process.name.startsWith (other)": { hook: "file.open", match: () => 'process.name.startsWith("dog")', act: cat, holds: false },
  "process.parent.binary": { hook: "file.open", match: () => 'process.parent.binary == "/usr/bin/bash" && file.name == "data.pem"', act: catUnderBash, holds: true },
  "process.parent.name.endsWith": { hook: "file.open", match: () => 'process.parent.name.endsWith("ash") && file.name == "data.pem"', act: catUnderBash, holds: true },
  "process.uid": { hook: "file.open", match: () => "process.uid < 1000 && file.name == \"data.pem\"", act: cat, holds: true },
  "process.gid (other)": { hook: "file.open", match: () => "process.gid == 4242 && file.name == \"data.pem\"", act: cat, holds: false },
  "two fields, both hold": { hook: "file.open", match: () => 'file.name == "data.pem" && process.name == "cat"', act: cat, holds: true },
  "two fields, one fails": { hook: "file.open", match: () => 'file.name == "data.pem" && process.name == "dog"', act: cat, holds: false },
  "exec: binary prefix": { hook: "process.exec", match: (d) => `process.binary.startsWith(${q(`${d}/sub/`)})`, act: (d) => run(`${d}/sub/tool`), holds: true },
  "exec: name": { hook: "process.exec", match: () => 'process.name == "tool"', act: (d) => run(`${d}/sub/tool`), holds: true },
  "exec: parent name": { hook: "process.exec", match: () => 'process.name == "tool" && process.parent.name == "bash"', act: (d) => sh(`${d}/sub/tool; true`), holds: true },
  "net: cidr": { hook: "net.connect", match: () => `cidr("127.0.0.0/8").containsIP(net.daddr) && net.dport == ${port}`, act: connect, holds: true },
  "net: cidr (other)": { hook: "net.connect", match: () => `cidr("10.0.0.0/8").containsIP(net.daddr) && net.dport == ${port}`, act: connect, holds: false },
  "net: family and protocol": { hook: "net.connect", match: () => `net.family == "ipv4" && net.protocol == "tcp" && net.dport == ${port}`, act: connect, holds: true },
  "net: port range": { hook: "net.connect", match: () => `net.dport >= ${port - 3} && net.dport <= ${port + 3} && net.daddr == "127.0.0.1"`, act: connect, holds: true },
  "net: ipv6 family (other)": { hook: "net.connect", match: () => `net.family == "ipv6" && net.dport == ${port}`, act: connect, holds: false },
};

describe("each dimension decides in the kernel as the reference evaluator does", () => {
  for (const [name, c] of Object.entries(CASES)) {
    it(name, async () => {
      const plan = planOf({ name: "dims", rules: [{ name: "probe", hook: c.hook, match: c.match(dir), action: "audit" }] });
      enforcer!.applyPlan(plan);
      const r = c.act(dir);
      expect(r.error).toBeUndefined();
      const mine = (e: (typeof log.events)[number]) =>
        e.event.hook === c.hook && (e.event.process.pid === r.pid || e.event.process.ppid === r.pid);
      if (c.holds) {
        const e = await log.wait(mine);
        expect(e.event).toMatchObject({ rule: "probe", action: "audited" });
        // The kernel's answer for the values it reported is the reference evaluator's.
        expect(evaluate(plan, e.event).kernelRank).toBe(e.record.rank);
      } else {
        expect((await log.settle(mine, 250)).map((e) => e.event)).toEqual([]);
      }
    });
  }
});
