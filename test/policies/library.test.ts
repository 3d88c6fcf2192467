// The policy library (policies/) enforced by the real agent in the real kernel: for each
// policy, `palisade run` on it, then real processes that must be killed, refused or
// reported, and real processes that must not be. Needs root and BPF.
//
// Host-wide policies that are safe on this machine run exactly as shipped. The others run
// as a variant derived here from the shipped file, never a hand copy:
// - pod-scoped policies lose their selector (there are no pods on this host;
//   library-pods.test.ts runs the shipped files in pods) and every rule gains `&& process.gid == TEST_GID`,
//   so the unchanged rule logic acts only on this test's processes and not on the shells,
//   package managers and connections of everything else running here;
// - ld-so-preload names an absolute path that must not be written on a shared host: the
//   variant names the same file under a temporary directory.

import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { ROOT, palisade } from "../support/cli.ts";
import { LIBRARY, TEST_GID, hostVariant, shipped, type PolicyDoc } from "./variants.ts";

const PIN_DIR = "/sys/fs/bpf/palisade-test-library";
const dir = mkdtempSync(join(tmpdir(), "palisade-library-"));

interface Event {
  hook: string;
  action: string;
  policy?: string;
  rule?: string;
  process: { pid: number; binary: string; args?: string[] };
  file?: { path: string };
  net?: { daddr: string; dport: number };
}

/** `palisade run` on one policy, as a user runs it, with its own events file. */
class Agent {
  private log = "";
  private readonly child: ChildProcess;
  private readonly eventsFile: string;

  constructor(doc: PolicyDoc) {
    const policyDir = mkdtempSync(join(dir, `${doc.metadata.name}-`));
    writeFileSync(join(policyDir, "policy.yaml"), stringify(doc));
    this.eventsFile = join(policyDir, "events.jsonl");
    this.child = spawn(join(ROOT, "bin", "palisade"), ["run", "--policies", join(policyDir, "policy.yaml"), "--events-file", this.eventsFile, "--pin-dir", PIN_DIR, "--no-metrics", "--no-observe"], { stdio: ["ignore", "ignore", "pipe"] });
    this.child.stderr!.setEncoding("utf8").on("data", (d: string) => (this.log += d));
  }

  enforcing(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent never enforced; log:\n${this.log}`)), 45_000);
      const check = () => {
        if (/enforcing plan [0-9a-f]{12}/.test(this.log)) resolve(void clearTimeout(timer));
        else if (this.child.exitCode !== null) reject(new Error(`agent exited ${this.child.exitCode}; log:\n${this.log}`));
      };
      this.child.stderr!.on("data", check);
      this.child.once("exit", check);
      check();
    });
  }

  events(): Event[] {
    let text = "";
    try {
      text = readFileSync(this.eventsFile, "utf8");
    } catch {
      return [];
    }
    return text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  }

  /** Events about one process (a pid), once `until` holds for them. */
  async eventsOf(pid: number | undefined, until: (events: Event[]) => boolean = (e) => e.length > 0): Promise<Event[]> {
    const about = () => this.events().filter((e) => e.process.pid === pid);
    await expect.poll(() => until(about()), { timeout: 15_000, message: `events of pid ${pid}: ${JSON.stringify(about())}; agent log:\n${this.log}` }).toBe(true);
    return this.events().filter((e) => e.process.pid === pid);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGTERM");
    expect(await exited).toBe(0);
  }
}

/** Starts the agent on `doc` for the tests of one describe block. */
function agentFor(doc: () => PolicyDoc): () => Agent {
  let agent: Agent | undefined;
  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error("the library tests need root (CAP_BPF, CAP_SYS_ADMIN): run them as root");
    agent = new Agent(doc());
    await agent.enforcing();
  }, 60_000);
  afterAll(() => agent?.stop());
  return () => agent!;
}

/** A copy of a harmless program under this test's directory, named `name`. */
function harmless(name: string, from = "/usr/bin/true"): string {
  const path = join(dir, "bin", name);
  mkdirSync(join(dir, "bin"), { recursive: true });
  copyFileSync(from, path);
  return path;
}

const run = (file: string, args: string[] = [], gid?: number): SpawnSyncReturns<string> =>
  spawnSync(file, args, { encoding: "utf8", gid, timeout: 10_000 });

/** Connects from a child process of the test's group; "connected" or the error code. */
function connectFrom(family: "tcp" | "udp", host: string, port: number): { outcome: string; pid: number } {
  const script =
    family === "tcp"
      ? `const s = require("node:net").connect({host: process.argv[1], port: +process.argv[2]});
         s.setTimeout(1500, () => { console.log("timeout"); process.exit(); });
         s.on("connect", () => { console.log("connected"); process.exit(); });
         s.on("error", (e) => { console.log(e.code); process.exit(); });`
      : `const s = require("node:dgram").createSocket(process.argv[1].includes(":") ? "udp6" : "udp4");
         s.send("x", +process.argv[2], process.argv[1], (e) => { console.log(e ? e.code : "sent"); process.exit(); });`;
  const result = spawnSync(process.execPath, ["-e", script, host, String(port)], { encoding: "utf8", gid: TEST_GID, timeout: 10_000 });
  return { outcome: result.stdout.trim() || `no output: ${result.stderr}`, pid: result.pid };
}

/** How the kernel acted on a process run by `runIt`, checked against the event it reported. */
function expectStopped(result: SpawnSyncReturns<string>, event: Event | undefined) {
  // kill everywhere; deny with fallback: kill is a refused execve where the kernel can deny.
  if (event?.action === "denied") expect((result.error as NodeJS.ErrnoException | undefined)?.code).toBe("EPERM");
  else {
    expect(event?.action).toBe("killed");
    expect(result.signal).toBe("SIGKILL");
  }
  expect(result.stdout ?? "").toBe("");
}

let listener: Server;
let listenerPort = 0;
beforeAll(async () => {
  listener = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  listenerPort = (listener.address() as { port: number }).port;
});
afterAll(() => listener.close());

const KERNEL_TESTED = ["cloud-metadata", "container-shells", "crypto-miners", "ld-so-preload", "package-managers", "pod-egress", "security-monitor", "sensitive-files"];

describe("the policy library", () => {
  const files = readdirSync(LIBRARY).filter((f) => f.endsWith(".yaml") && !f.endsWith(".test.yaml"));

  it("has a kernel test here, a passing PolicyTest and documentation for every policy", () => {
    expect(files.map((f) => f.replace(/\.yaml$/, "")).sort()).toEqual(KERNEL_TESTED);
    const all = readdirSync(LIBRARY);
    for (const f of files) expect(all).toContain(f.replace(/\.yaml$/, ".test.yaml"));
    // ... and a section in docs/policies.md (what it does, false positives, tuning).
    const doc = readFileSync(join(ROOT, "docs", "policies.md"), "utf8");
    for (const name of KERNEL_TESTED) expect(doc).toContain(`### ${name}\n`);
    const result = palisade(["test", "policies"]);
    expect(result.stdout).toContain(`${files.length} of ${files.length} policy tests passed`);
    expect(result.code).toBe(0);
  });

  it("keeps host processes out of reach of every pod-scoped kill and deny", () => {
    for (const name of KERNEL_TESTED) {
      const doc = shipped(name);
      const acts = doc.spec.rules.some((r) => r.action !== "audit");
      const hostWideActors = ["crypto-miners"]; // kills only programs named like miners
      if (acts && !hostWideActors.includes(name)) expect(doc.spec.selector, `${name} acts on processes: it must select pods`).toBeDefined();
    }
  });
});

describe("container-shells (host variant)", () => {
  const agent = agentFor(() => hostVariant("container-shells"));

  it("kills a shell before it runs a command", async () => {
    const result = run("/bin/sh", ["-c", "echo ran"], TEST_GID);
    const [event] = await agent().eventsOf(result.pid);
    expect(event).toMatchObject({ hook: "process.exec", action: "killed", policy: "container-shells", rule: "shell-exec" });
    expectStopped(result, event);
  });

  it("reports busybox's shell, known only by its argv[0], without killing it", async () => {
    const busybox = harmless("busybox", "/usr/bin/busybox");
    const shell = spawnSync(busybox, ["-c", "echo ran"], { argv0: "sh", encoding: "utf8", gid: TEST_GID, timeout: 10_000 });
    expect(shell.stdout).toBe("ran\n");
    const [event] = await agent().eventsOf(shell.pid);
    expect(event).toMatchObject({ hook: "process.exec", action: "audited", policy: "container-shells", rule: "busybox-shell", process: { args: ["sh", "-c", "echo ran"] } });
    const applet = spawnSync(busybox, ["/"], { argv0: "ls", encoding: "utf8", gid: TEST_GID, timeout: 10_000 });
    expect(applet.status).toBe(0);
    await agent().eventsOf(run("/bin/bash", ["-c", "true"], TEST_GID).pid);
    expect(agent().events().filter((e) => e.process.pid === applet.pid)).toEqual([]);
  });

  it("lets other programs run", async () => {
    const other = run("/usr/bin/id", ["-u"], TEST_GID);
    expect(other.status).toBe(0);
    const marker = run("/bin/bash", ["-c", "true"], TEST_GID);
    await agent().eventsOf(marker.pid);
    expect(agent().events().filter((e) => e.process.pid === other.pid)).toEqual([]);
  });
});

describe("package-managers (host variant)", () => {
  const agent = agentFor(() => hostVariant("package-managers"));

  it("stops a package manager (EPERM where the kernel can deny, SIGKILL where it cannot)", async () => {
    const result = run(harmless("apt-get"), ["install", "-y", "nmap"], TEST_GID);
    const [event] = await agent().eventsOf(result.pid);
    expect(event).toMatchObject({ hook: "process.exec", policy: "package-managers", rule: "package-manager-exec" });
    expectStopped(result, event);
  });

  it("lets programs with look-alike names run", async () => {
    const lookalike = run(harmless("dpkg-query"), ["-W"], TEST_GID);
    expect(lookalike.status).toBe(0);
    const marker = run(harmless("apk"), [], TEST_GID);
    await agent().eventsOf(marker.pid);
    expect(agent().events().filter((e) => e.process.pid === lookalike.pid)).toEqual([]);
  });
});

describe("crypto-miners (as shipped)", () => {
  const agent = agentFor(() => shipped("crypto-miners"));

  it("kills a known miner program before it runs", async () => {
    const result = run(harmless("xmrig"), ["-o", "pool.example:3333"]);
    const [event] = await agent().eventsOf(result.pid);
    expect(event).toMatchObject({ hook: "process.exec", action: "killed", policy: "crypto-miners", rule: "miner-binary" });
    expectStopped(result, event);
  });

  it("reports, without stopping it, a renamed program given a stratum URL, with its arguments", async () => {
    const args = ["-o", "stratum+tcp://pool.example:3333", "-u", "wallet"];
    const result = run(harmless("kworker-helper"), args);
    expect(result.status).toBe(0);
    const [event] = await agent().eventsOf(result.pid);
    expect(event).toMatchObject({ hook: "process.exec", action: "audited", policy: "crypto-miners", rule: "stratum-args" });
    expect(event!.process.args).toEqual([join(dir, "bin", "kworker-helper"), ...args]);
  });

  it("leaves ordinary programs and arguments alone", async () => {
    const plain = run(harmless("xmrig-exporter"), ["--url", "https://example.com/stratum"]);
    expect(plain.status).toBe(0);
    const marker = run(harmless("minerd"));
    await agent().eventsOf(marker.pid);
    expect(agent().events().filter((e) => e.process.pid === plain.pid)).toEqual([]);
  });

  it("is refused if the arguments rule is made to kill: the kernel cannot see arguments", () => {
    const doc = shipped("crypto-miners");
    doc.spec.rules[1]!.action = "kill";
    const file = join(dir, "miners-kill-args.yaml");
    writeFileSync(file, stringify(doc));
    const result = palisade(["validate", file]);
    expect(result.code).toBe(1);
    expect(result.stdout + result.stderr).toMatch(/process\.args/);
  });
});

describe("sensitive-files (as shipped)", () => {
  const agent = agentFor(() => shipped("sensitive-files"));

  it("reports a read of /etc/shadow by an unexpected program, and lets it read", async () => {
    const result = run("/usr/bin/cat", ["/etc/shadow"]);
    expect(result.status).toBe(0);
    const [event] = await agent().eventsOf(result.pid);
    expect(event).toMatchObject({ hook: "file.open", action: "audited", policy: "sensitive-files", rule: "credential-read", file: { path: "/etc/shadow" } });
  });

  it("says nothing about other files", async () => {
    const other = run("/usr/bin/cat", ["/etc/passwd"]);
    expect(other.status).toBe(0);
    const marker = run("/usr/bin/head", ["-c1", "/etc/shadow"]);
    await agent().eventsOf(marker.pid);
    expect(agent().events().filter((e) => e.process.pid === other.pid)).toEqual([]);
  });
});

describe("security-monitor (as shipped)", () => {
  const agent = agentFor(() => shipped("security-monitor"));

  it("reports every exec and an open of /etc/passwd", async () => {
    const result = run("/usr/bin/cat", ["/etc/passwd"]);
    expect(result.status).toBe(0);
    const events = await agent().eventsOf(result.pid, (e) => e.length >= 2);
    expect(events).toContainEqual(expect.objectContaining({ hook: "process.exec", action: "audited", rule: "exec", process: expect.objectContaining({ binary: "/usr/bin/cat" }) }));
    expect(events).toContainEqual(expect.objectContaining({ hook: "file.open", action: "audited", rule: "watched-file-open", file: { path: "/etc/passwd" } }));
  });

  it("reports /proc/self/environ as the kernel resolves it, /proc/<pid>/environ", async () => {
    const result = run("/usr/bin/cat", ["/proc/self/environ"]);
    expect(result.status).toBe(0);
    const events = await agent().eventsOf(result.pid, (e) => e.some((x) => x.hook === "file.open"));
    expect(events).toContainEqual(expect.objectContaining({ hook: "file.open", action: "audited", rule: "environ-read", file: { path: `/proc/${result.pid}/environ` } }));
  });

  it("reports the exec but not the open of an unwatched file", async () => {
    const other = run("/usr/bin/cat", ["/etc/hostname"]);
    const events = await agent().eventsOf(other.pid);
    await agent().eventsOf(run("/usr/bin/cat", ["/etc/shadow"]).pid, (e) => e.some((x) => x.hook === "file.open"));
    expect(agent().events().filter((e) => e.process.pid === other.pid).map((e) => e.hook)).toEqual(["process.exec"]);
    expect(events[0]).toMatchObject({ rule: "exec" });
  });
});

describe("ld-so-preload (variant: the same file under a temporary directory)", () => {
  const fakeEtc = join(dir, "etc");
  const preload = join(fakeEtc, "ld.so.preload");
  const agent = agentFor(() => {
    mkdirSync(fakeEtc, { recursive: true });
    const doc = shipped("ld-so-preload");
    for (const rule of doc.spec.rules) {
      expect(rule.match).toContain('"/etc/ld.so.preload"');
      rule.match = rule.match.replaceAll('"/etc/ld.so.preload"', JSON.stringify(preload));
    }
    return doc;
  });

  it("reports the write that creates the file, and later reads", async () => {
    const write = spawnSync("/usr/bin/tee", [preload], { input: "/tmp/evil.so\n", encoding: "utf8" });
    expect(write.status).toBe(0);
    expect(await agent().eventsOf(write.pid)).toContainEqual(expect.objectContaining({ hook: "file.open", action: "audited", policy: "ld-so-preload", rule: "preload-open", file: { path: preload } }));
    const read = run("/usr/bin/cat", [preload]);
    expect(await agent().eventsOf(read.pid)).toContainEqual(expect.objectContaining({ rule: "preload-open", file: { path: preload } }));
  });

  it("says nothing about look-alike files", async () => {
    const other = spawnSync("/usr/bin/tee", [`${preload}.swp`], { input: "x", encoding: "utf8" });
    const marker = run("/usr/bin/cat", [preload]);
    await agent().eventsOf(marker.pid);
    expect(agent().events().filter((e) => e.process.pid === other.pid)).toEqual([]);
  });
});

describe("cloud-metadata (host variant)", () => {
  const agent = agentFor(() => hostVariant("cloud-metadata"));

  it("refuses connections to the metadata address with EPERM, IPv4 and IPv6", async () => {
    for (const [daddr, port] of [["169.254.169.254", 80], ["fd00:ec2::254", 80]] as const) {
      const { outcome, pid } = connectFrom("tcp", daddr, port);
      expect(outcome, daddr).toBe("EPERM");
      expect(await agent().eventsOf(pid)).toContainEqual(expect.objectContaining({ hook: "net.connect", action: "denied", policy: "cloud-metadata", rule: "metadata-connect", net: expect.objectContaining({ daddr, dport: port }) }));
    }
  });

  it("lets other connections through", async () => {
    expect(connectFrom("tcp", "127.0.0.1", listenerPort).outcome).toBe("connected");
  });
});

describe("pod-egress (host variant)", () => {
  const agent = agentFor(() => hostVariant("pod-egress"));

  it("refuses TCP and UDP to destinations outside the allow-list with EPERM", async () => {
    for (const [proto, daddr, port] of [["tcp", "198.51.100.7", 4444], ["udp", "198.51.100.7", 5353], ["tcp", "2001:db8::5", 22]] as const) {
      const { outcome, pid } = connectFrom(proto, daddr, port);
      expect(outcome, `${proto} ${daddr}:${port}`).toBe("EPERM");
      expect(await agent().eventsOf(pid)).toContainEqual(expect.objectContaining({ hook: "net.connect", action: "denied", policy: "pod-egress", rule: "unexpected-egress", net: expect.objectContaining({ daddr, dport: port }) }));
    }
  });

  it("lets loopback, private ranges and the allowed ports through", async () => {
    expect(connectFrom("tcp", "127.0.0.1", listenerPort).outcome).toBe("connected");
    // No such hosts exist here: any outcome but EPERM shows the policy let them pass.
    for (const [daddr, port] of [["198.51.100.7", 443], ["10.255.255.1", 8080]] as const) {
      const { outcome, pid } = connectFrom("tcp", daddr, port);
      expect(outcome, `${daddr}:${port}`).not.toBe("EPERM");
      expect(agent().events().filter((e) => e.process.pid === pid)).toEqual([]);
    }
  });
});
