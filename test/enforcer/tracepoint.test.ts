// The tracepoint backend on the real kernel, with real processes: exec, open and connect
// are killed or denied as the plan says, before the process gets anything, and every
// decision comes back as an event naming the rule. One enforcer load for the whole file.
// Needs root and BPF: without them every test fails with the reason.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, linkSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import type { Server } from "node:net";
import { Enforcer } from "../../src/enforcer/index.ts";
import type { EnforcerEvent } from "../../src/enforcer/events.ts";
import type { KernelPlan } from "../../src/plan/types.ts";
import { compile } from "../../src/compiler/index.ts";
import { makePolicy } from "../support/policies.ts";
import { EventLog, listen, nodeScript, planOf, removeDir, requireKernel, run, sh, startBash, tempDir } from "./support.ts";
import { parseTrick, tricksBinary } from "./tricks.ts";

let dir: string;
let enforcer: Enforcer | undefined;
const log = new EventLog();
const servers: Server[] = [];
let allowedPort: number;
let deniedPort: number;
let killPort: number;
let udpPort: number;
let plan: KernelPlan;

const SECRET = "top secret\n";
/** Deeper than the kernel's walk goes (PAL_MAX_DEPTH components). */
const deepDir = () => `${dir}/${Array.from({ length: 110 }, () => "d").join("/")}`;

function enforcePlan(d: string): KernelPlan {
  return planOf(
    {
      name: "enforce",
      rules: [
        { name: "no-denied-echo", hook: "process.exec", match: `process.binary == "${d}/denied-echo"`, action: "kill", severity: "high" },
        { name: "no-secret", hook: "file.open", match: `file.path == "${d}/secret.txt"`, action: "kill", severity: "critical" },
        { name: "no-vault", hook: "file.open", match: `file.path.startsWith("${d}/vault/")`, action: "deny", fallback: "kill" },
        { name: "no-port", hook: "net.connect", match: `net.dport == ${deniedPort} && net.daddr == "127.0.0.1"`, action: "deny" },
        { name: "kill-port", hook: "net.connect", match: `net.dport == ${killPort}`, action: "kill" },
        { name: "no-udp", hook: "net.connect", match: `net.protocol == "udp" && net.dport == ${udpPort}`, action: "deny" },
        { name: "audit-notes", hook: "file.open", match: `file.path == "${d}/notes.txt"`, action: "audit", severity: "info" },
      ],
    },
    {
      name: "watch",
      mode: "monitor",
      rules: [{ name: "would-kill-watched", hook: "file.open", match: `file.path == "${d}/watched.txt"`, action: "kill" }],
    },
  );
}

const killedEmpty = (r: ReturnType<typeof run>) => {
  expect(r.signal, JSON.stringify(r)).toBe("SIGKILL");
  expect(r.stdout).toBe("");
};

const forPid = (pid: number | undefined, hook: string) => (e: EnforcerEvent) => e.event.process.pid === pid && e.event.hook === hook;

const PIN_DIR = "/sys/fs/bpf/palisade-test-tracepoint";

const canRun = requireKernel();

beforeAll(async () => {
  if (!canRun) return;
  // A run that crashed may have left its programs attached (pinned): they go first.
  Enforcer.removePinned(PIN_DIR);
  dir = tempDir("palisade-tp");
  copyFileSync("/bin/echo", `${dir}/denied-echo`);
  copyFileSync("/bin/echo", `${dir}/ok-echo`);
  writeFileSync(`${dir}/secret.txt`, SECRET);
  writeFileSync(`${dir}/public.txt`, "public\n");
  writeFileSync(`${dir}/watched.txt`, "watched\n");
  writeFileSync(`${dir}/notes.txt`, "notes\n");
  mkdirSync(`${dir}/vault`);
  writeFileSync(`${dir}/vault/key`, "vault key\n");
  mkdirSync(`${dir}/sub`);
  // Written before any rule is in force: an unresolvable path fails closed, and this
  // process (the test worker) would be the one killed for opening it.
  mkdirSync(deepDir(), { recursive: true });
  writeFileSync(`${deepDir()}/f`, "deep\n");
  for (let i = 0; i < 2; i++) servers.push((await listen()).server);
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  allowedPort = ports[0]!;
  deniedPort = ports[1]!;
  const spare = await listen();
  killPort = (spare.server.address() as { port: number }).port;
  servers.push(spare.server);
  udpPort = killPort + 1 > 65000 ? killPort - 1 : killPort + 1;
  plan = enforcePlan(dir);
  enforcer = Enforcer.open({ pinDir: PIN_DIR, reuse: false, plan, onEvent: log.push, onError: log.error });
});

afterAll(() => {
  enforcer?.close();
  for (const s of servers) s.close();
  if (dir) removeDir(dir);
});

describe("process.exec (raw_tp/sched_process_exec + SIGKILL)", () => {
  it("kills a denied binary before it prints anything, and reports it", async () => {
    const r = run(`${dir}/denied-echo`, ["hello"]);
    killedEmpty(r);
    const e = await log.wait(forPid(r.pid, "process.exec"));
    expect(e.event).toMatchObject({
      hook: "process.exec", action: "killed", policy: "enforce", rule: "no-denied-echo", severity: "high",
      process: { pid: r.pid, ppid: process.pid, uid: 0, binary: `${dir}/denied-echo` },
      parent: { pid: process.pid, binary: process.execPath },
    });
    expect(e.record.acted).toBe(true);
  });

  it("lets an allowed binary run, without an event", async () => {
    const r = run(`${dir}/ok-echo`, ["hello"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("hello\n");
    expect(await log.settle(forPid(r.pid, "process.exec"))).toEqual([]);
  });

  it("sees the binary actually executed: a symlink or a relative path to it is killed too", async () => {
    symlinkSync(`${dir}/denied-echo`, `${dir}/innocent-link`);
    const viaLink = run(`${dir}/innocent-link`, ["hi"]);
    killedEmpty(viaLink);
    const e = await log.wait(forPid(viaLink.pid, "process.exec"));
    expect(e.event.process.binary).toBe(`${dir}/denied-echo`);
    killedEmpty(sh("./denied-echo hi", { cwd: dir }));
    killedEmpty(sh(`cd ${dir}/sub && ../denied-echo hi`));
  });

  it("execveat does not bypass: by path, by directory descriptor, by O_PATH descriptor with AT_EMPTY_PATH, fexecve, /proc/self/fd", async () => {
    const T = tricksBinary();
    const attempts = {
      execveat: run(T, ["execveat", `${dir}/denied-echo`, "x", "RAN"]),
      dirfd: run(T, ["execveat-dir", dir, "denied-echo", "x", "RAN"]),
      emptyPath: run(T, ["execveat-fd", `${dir}/denied-echo`, "x", "RAN"]),
      fexecve: run(T, ["fexecve", `${dir}/denied-echo`, "x", "RAN"]),
      procFd: run(T, ["exec-procfd", `${dir}/denied-echo`, "x", "RAN"]),
    };
    for (const [how, r] of Object.entries(attempts)) {
      expect(r.signal, how).toBe("SIGKILL");
      expect(r.stdout, how).toBe("");
      const e = await log.wait(forPid(r.pid, "process.exec"));
      expect(e.event, how).toMatchObject({ action: "killed", rule: "no-denied-echo", process: { binary: `${dir}/denied-echo` } });
    }
  });

  it("a script is decided as its interpreter (documented): a rule on the script's own path does not match", async () => {
    writeFileSync(`${dir}/script.sh`, "#!/bin/sh\necho RAN\n", { mode: 0o755 });
    const plan2 = planOf({ name: "script", rules: [{ name: "no-script", hook: "process.exec", match: `process.binary == "${dir}/script.sh"`, action: "kill" }] });
    enforcer!.applyPlan(plan2);
    try {
      const r = run(`${dir}/script.sh`);
      expect(r.stdout).toBe("RAN\n");
      expect(await log.settle(forPid(r.pid, "process.exec"))).toEqual([]);
    } finally {
      enforcer!.applyPlan(plan);
    }
  });
});

describe("file.open (sys_exit_open* + SIGKILL)", () => {
  it("kills a reader of a denied file before it reads a byte, and reports it", async () => {
    const r = run("/bin/cat", [`${dir}/secret.txt`]);
    killedEmpty(r);
    const e = await log.wait(forPid(r.pid, "file.open"));
    expect(e.event).toMatchObject({
      hook: "file.open", action: "killed", policy: "enforce", rule: "no-secret", severity: "critical",
      process: { pid: r.pid, binary: "/usr/bin/cat" }, file: { path: `${dir}/secret.txt` },
    });
  });

  it("lets an allowed file be read", () => {
    const r = run("/bin/cat", [`${dir}/public.txt`]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("public\n");
  });

  it("a deny rule with fallback: kill kills (this backend cannot fail an open), and the event says killed", async () => {
    const r = run("/bin/cat", [`${dir}/vault/key`]);
    killedEmpty(r);
    const e = await log.wait(forPid(r.pid, "file.open"));
    expect(e.event).toMatchObject({ action: "killed", rule: "no-vault", file: { path: `${dir}/vault/key` } });
    expect(e.slot?.action).toBe("deny");
  });

  it("refuses a plan that asks this backend to deny an open, before writing anything", () => {
    const { plan: unchecked } = compile([makePolicy({ name: "x", rules: [{ name: "d", hook: "file.open", match: 'file.path == "/x"', action: "deny" }] })]);
    const before = enforcer!.activeGeneration;
    expect(() => enforcer!.applyPlan(unchecked!)).toThrow(/cannot do there/);
    expect(enforcer!.activeGeneration).toBe(before);
    killedEmpty(run("/bin/cat", [`${dir}/secret.txt`]));
  });

  it("matches the path the kernel resolved: symlinks, '..', relative paths and hard links do not bypass", async () => {
    symlinkSync(`${dir}/secret.txt`, `${dir}/sub/innocent`);
    linkSync(`${dir}/secret.txt`, `${dir}/sub/hard-link.txt`);
    const attempts = {
      symlink: run("/bin/cat", [`${dir}/sub/innocent`]),
      dotdot: run("/bin/cat", [`${dir}/sub/../secret.txt`]),
      relative: run("/bin/cat", ["../secret.txt"], { cwd: `${dir}/sub` }),
      hardLink: run("/bin/cat", [`${dir}/sub/hard-link.txt`]),
    };
    for (const [how, r] of Object.entries(attempts)) {
      expect(r.signal, how).toBe("SIGKILL");
      expect(r.stdout, how).toBe("");
    }
    const e = await log.wait(forPid(attempts.symlink.pid, "file.open"));
    expect(e.event.file?.path).toBe(`${dir}/secret.txt`);
  });

  it("a /proc/self/fd re-open of a denied file does not bypass", async () => {
    // The descriptor is opened while the rule is not in force; the re-open happens after.
    const without = planOf({ name: "other", rules: [{ name: "x", hook: "file.open", match: 'file.path == "/nonexistent"', action: "kill" }] });
    enforcer!.applyPlan(without);
    try {
      const bash = await startBash(`exec 3<${dir}/secret.txt; echo ready; read x; cat /proc/self/fd/3; echo "cat=$?"`, "ready");
      enforcer!.applyPlan(plan);
      bash.child.stdin.end("\n");
      await bash.finished;
      expect(bash.output()).not.toContain("top secret");
      expect(bash.output()).toContain("cat=137");
      const e = await log.wait((x) => x.event.hook === "file.open" && x.event.process.binary === "/usr/bin/cat" && x.event.process.ppid === bash.child.pid);
      expect(e.event.file?.path).toBe(`${dir}/secret.txt`);
    } finally {
      enforcer!.applyPlan(plan);
    }
  });

  it("openat2 with RESOLVE flags does not bypass: the file is decided as the kernel resolved it", async () => {
    const T = tricksBinary();
    const attempts = {
      beneath: run(T, ["openat2", dir, "secret.txt", "beneath"]),
      inRoot: run(T, ["openat2", dir, "/secret.txt", "in-root"]),
      noSymlinks: run(T, ["openat2", dir, "secret.txt", "no-symlinks,no-magiclinks,no-xdev"]),
      prefix: run(T, ["openat2", `${dir}/vault`, "key", "beneath"]),
    };
    for (const [how, r] of Object.entries(attempts)) {
      expect(r.signal, how).toBe("SIGKILL");
      expect(r.stdout, how).toBe("");
    }
    const e = await log.wait(forPid(attempts.inRoot.pid, "file.open"));
    expect(e.event.file?.path).toBe(`${dir}/secret.txt`);
    const p = await log.wait(forPid(attempts.prefix.pid, "file.open"));
    expect(p.event).toMatchObject({ rule: "no-vault", file: { path: `${dir}/vault/key` } });
  });

  it("a /proc/self/fd re-open of an O_PATH descriptor does not bypass (the O_PATH open itself is an openat)", () => {
    const r = run(tricksBinary(), ["reopen", `${dir}/secret.txt`]);
    killedEmpty(r);
  });

  it("cannot see io_uring opens (documented): IORING_OP_OPENAT of a denied file is read", async () => {
    const r = run(tricksBinary(), ["iouring-open", `${dir}/secret.txt`]);
    expect(r.signal).toBe(null);
    expect(parseTrick(r.stdout)).toEqual({ ok: true, data: SECRET });
    expect(await log.settle(forPid(r.pid, "file.open"))).toEqual([]);
    expect(enforcer!.probe.hooks.find((h) => h.hook === "file.open")!.cannotSee.join(" ")).toMatch(/io_uring/);
  });

  it("cannot undo an O_TRUNC (documented): the kill comes after the open truncated the file", () => {
    writeFileSync(`${dir}/truncated.txt`, SECRET);
    const plan2 = planOf({ name: "trunc", rules: [{ name: "no-trunc", hook: "file.open", match: `file.path == "${dir}/truncated.txt"`, action: "kill" }] });
    enforcer!.applyPlan(plan2);
    try {
      killedEmpty(run(tricksBinary(), ["truncate", `${dir}/truncated.txt`]));
    } finally {
      enforcer!.applyPlan(plan);
    }
    expect(readFileSync(`${dir}/truncated.txt`, "utf8")).toBe("");
  });

  it("fails closed on a path it cannot resolve (too deep): enforce rules hold", async () => {
    const r = run("/bin/cat", [`${deepDir()}/f`]);
    killedEmpty(r);
    const e = await log.wait(forPid(r.pid, "file.open"));
    expect(e.record.file?.unresolved).toBe(true);
    expect(e.event.action).toBe("killed");
  });

  it("monitor mode acts on nothing and reports monitor", async () => {
    const r = run("/bin/cat", [`${dir}/watched.txt`]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("watched\n");
    const e = await log.wait(forPid(r.pid, "file.open"));
    expect(e.event).toMatchObject({ action: "monitor", policy: "watch", rule: "would-kill-watched", file: { path: `${dir}/watched.txt` } });
    expect(e.record.acted).toBe(false);
  });

  it("audit acts on nothing and reports audited", async () => {
    const r = run("/bin/cat", [`${dir}/notes.txt`]);
    expect(r.stdout).toBe("notes\n");
    const e = await log.wait(forPid(r.pid, "file.open"));
    expect(e.event).toMatchObject({ action: "audited", rule: "audit-notes", severity: "info" });
  });
});

describe("net.connect (cgroup/connect4|6, sendmsg4|6)", () => {
  const connect = (host: string, port: number) => sh(`exec 3<>/dev/tcp/${host}/${port} && echo connected`);

  it("denies a connect with EPERM and reports it; an allowed connect succeeds", async () => {
    const denied = connect("127.0.0.1", deniedPort);
    expect(denied.status).not.toBe(0);
    expect(denied.stderr).toContain("Operation not permitted");
    expect(denied.stdout).toBe("");
    const e = await log.wait((x) => x.event.hook === "net.connect" && x.event.net?.dport === deniedPort);
    expect(e.event).toMatchObject({
      action: "denied", rule: "no-port", process: { binary: "/usr/bin/bash" },
      net: { family: "ipv4", protocol: "tcp", daddr: "127.0.0.1", dport: deniedPort },
    });
    const allowed = connect("127.0.0.1", allowedPort);
    expect(allowed.status).toBe(0);
    expect(allowed.stdout).toBe("connected\n");
  });

  it("an IPv4-mapped IPv6 destination meets the IPv4 rule and is reported as IPv4", async () => {
    const r = nodeScript(`require("net").connect({ host: "::ffff:127.0.0.1", port: ${deniedPort} })
      .on("connect", () => { console.log("connected"); process.exit(0); })
      .on("error", (e) => { console.log(e.code); process.exit(1); });`);
    expect(r.stdout.trim()).toBe("EPERM");
    const e = await log.wait(forPid(r.pid, "net.connect"));
    expect(e.event.net).toEqual({ family: "ipv4", protocol: "tcp", daddr: "127.0.0.1", dport: deniedPort });
    expect(e.record.mappedIpv4).toBe(true);
  });

  it("kill on connect kills the process and the connection is refused", async () => {
    const r = connect("127.0.0.1", killPort);
    expect(r.signal).toBe("SIGKILL");
    expect(r.stdout).toBe("");
    const e = await log.wait(forPid(r.pid, "net.connect"));
    expect(e.event).toMatchObject({ action: "killed", rule: "kill-port" });
  });

  it("denies UDP datagrams by destination (sendmsg) with EPERM", async () => {
    const r = nodeScript(`const s = require("dgram").createSocket("udp4");
      s.send("x", ${udpPort}, "127.0.0.1", (e) => { console.log(e ? e.code : "sent"); s.close(); });`);
    expect(r.stdout.trim()).toBe("EPERM");
    const e = await log.wait(forPid(r.pid, "net.connect"));
    expect(e.event).toMatchObject({ action: "denied", rule: "no-udp", net: { protocol: "udp", dport: udpPort } });
  });
});

describe("probe", () => {
  it("selects the tracepoint backend here and says how each action is carried out", () => {
    const hooks = Object.fromEntries(enforcer!.probe.hooks.map((h) => [h.hook, h]));
    for (const h of Object.values(hooks)) {
      expect(h.selected, h.hook).toBe("tracepoint");
      expect(h.available).toContain("tracepoint");
      expect(h.actions.kill).toBe("kill");
    }
    expect(hooks["process.exec"]!.actions.deny).toBe(null);
    expect(hooks["file.open"]!.actions.deny).toBe(null);
    expect(hooks["net.connect"]!.actions.deny).toBe("deny");
    expect(enforcer!.capabilities).toEqual({ "process.exec": ["kill"], "file.open": ["kill"], "net.connect": ["deny", "kill"] });
    // What this host refuses is tried, not assumed: every attempt is on record.
    expect(Object.keys(hooks["file.open"]!.attempts)).toEqual(expect.arrayContaining(["probe_lsm_open", "probe_fmodret_open", "probe_kprobe_open", "probe_tp_open"]));
    // And what the chosen backend cannot see is said per hook.
    for (const h of Object.values(hooks)) {
      expect(h.how, h.hook).toBeTruthy();
      expect(h.cannotSee.length, h.hook).toBeGreaterThan(0);
    }
    expect(hooks["process.exec"]!.cannotSee.join(" ")).toMatch(/interpreter/);
  });
});

describe("plans", () => {
  it("a new plan applies and the old rule stops", async () => {
    const next = planOf({ name: "next", rules: [{ name: "no-ok-echo", hook: "process.exec", match: `process.binary == "${dir}/ok-echo"`, action: "kill" }] });
    const result = enforcer!.applyPlan(next);
    try {
      expect(enforcer!.activeGeneration).toBe(result.generation);
      const formerlyDenied = run(`${dir}/denied-echo`, ["free"]);
      expect(formerlyDenied.status).toBe(0);
      expect(formerlyDenied.stdout).toBe("free\n");
      const nowDenied = run(`${dir}/ok-echo`, ["x"]);
      killedEmpty(nowDenied);
      const e = await log.wait(forPid(nowDenied.pid, "process.exec"));
      expect(e.event).toMatchObject({ policy: "next", rule: "no-ok-echo" });
    } finally {
      enforcer!.applyPlan(plan);
    }
    killedEmpty(run(`${dir}/denied-echo`, ["again"]));
  });

  it("a plan that fails to load leaves the plan in force", () => {
    const broken = structuredClone(planOf({ name: "broken", rules: [
      { name: "frees-denied-echo", hook: "process.exec", match: `process.uid == 12345`, action: "kill" },
    ] }));
    // An integer entry longer than 32 bits: the kernel refuses it half-way through the write.
    const uid = broken.hooks[0]!.dimensions.find((d) => d.name === "process.uid")!;
    (uid.entries[0] as { prefixLength: number }).prefixLength = 48;
    const before = enforcer!.activeGeneration;
    expect(() => enforcer!.applyPlan(broken)).toThrow(/plan in force stays in force/);
    expect(enforcer!.activeGeneration).toBe(before);
    killedEmpty(run(`${dir}/denied-echo`, ["still"]));
    expect(run(`${dir}/ok-echo`, ["ok"]).stdout).toBe("ok\n");
  });

  it("lost or degraded events are counted, not silent", () => {
    const c = enforcer!.counters();
    expect(c.events).toBeGreaterThan(0n);
    expect(c.ringbufDrops).toBe(0n);
    expect(c.classMissing).toBe(0n);
    expect(c.unresolvedPaths).toBeGreaterThan(0n); // the deep path above
    expect(log.errors).toEqual([]);
  });
});
