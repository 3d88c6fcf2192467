// Workload scoping on the real kernel with real cgroups: the enforcer classifies cgroup v2
// ids (as the Kubernetes controller does with pods), a process in a classified cgroup or a
// child of one is decided as that workload, everything else as a host process, and events
// name the workload. Needs root, BPF and a cgroup v2 mount.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, existsSync, mkdirSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import type { Server } from "node:net";
import { Enforcer, type Workload } from "../../src/enforcer/index.ts";
import type { EnforcerEvent } from "../../src/enforcer/events.ts";
import { cgroup2Root } from "../../src/enforcer/system.ts";
import type { KernelPlan } from "../../src/plan/types.ts";
import { EventLog, listen, planOf, removeDir, requireKernel, run, tempDir } from "./support.ts";

const PIN_DIR = "/sys/fs/bpf/palisade-test-workloads";
const canRun = requireKernel();

let dir: string;
let enforcer: Enforcer | undefined;
const log = new EventLog();
let server: Server;
let port: number;
let plan: KernelPlan;

/** cgroup directories: base/{api,db}/main, each pod with one container child. */
let base: string;
const cg = { api: "", apiMain: "", db: "", dbMain: "" };
const idOf = (path: string) => statSync(path, { bigint: true }).ino;

const API: Workload = { namespace: "prod", pod: "api-7", podUid: "uid-api-7", container: "main", image: "nginx:1.27", labels: { app: "api" } };
const DB: Workload = { namespace: "dev", pod: "db-0", podUid: "uid-db-0", labels: { app: "db" } };

/** Runs `file args` inside cgroup `cgroup` from its first instruction (the shell moves itself, then execs). */
function runIn(cgroup: string, file: string, args: string[] = []) {
  return run("/bin/sh", ["-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, file, ...args]);
}

function scopedPlan(d: string): KernelPlan {
  return planOf(
    {
      name: "prod-exec",
      kind: "TracingPolicyNamespaced",
      namespace: "prod",
      rules: [{ name: "no-denied-echo", hook: "process.exec", match: `process.binary == "${d}/denied-echo"`, action: "kill", severity: "high" }],
    },
    {
      name: "api-net",
      selector: { podSelector: { matchLabels: { app: "api" } } },
      rules: [{ name: "no-port", hook: "net.connect", match: `net.dport == ${port}`, action: "deny" }],
    },
    {
      name: "everywhere",
      rules: [{ name: "audit-notes", hook: "file.open", match: `file.path == "${d}/notes.txt"`, action: "audit", severity: "info" }],
    },
  );
}

const forPid = (pid: number | undefined, hook: string) => (e: EnforcerEvent) => e.event.process.pid === pid && e.event.hook === hook;
const killed = (r: ReturnType<typeof run>) => {
  expect(r.signal, JSON.stringify(r)).toBe("SIGKILL");
  expect(r.stdout).toBe("");
};
const ran = (r: ReturnType<typeof run>) => {
  expect(r.status, JSON.stringify(r)).toBe(0);
  expect(r.stdout).toBe("hi\n");
};
/** bash's /dev/tcp: "connected" or the error. */
const connectIn = (cgroup: string | undefined) => {
  const script = `exec 3<>/dev/tcp/127.0.0.1/${port} && echo connected`;
  return cgroup ? runIn(cgroup, "/bin/bash", ["-c", script]) : run("/bin/bash", ["-c", script]);
};

beforeAll(async () => {
  if (!canRun) return;
  Enforcer.removePinned(PIN_DIR);
  const root = cgroup2Root();
  if (!root) throw new Error("no cgroup v2 mount found in /proc/mounts");
  dir = tempDir("palisade-wl");
  copyFileSync("/bin/echo", `${dir}/denied-echo`);
  writeFileSync(`${dir}/notes.txt`, "notes\n");
  base = `${root}/palisade-test-workloads-${process.pid}`;
  cg.api = `${base}/api`;
  cg.apiMain = `${cg.api}/main`;
  cg.db = `${base}/db`;
  cg.dbMain = `${cg.db}/main`;
  for (const path of [cg.apiMain, cg.dbMain]) mkdirSync(path, { recursive: true });
  const listening = await listen();
  server = listening.server;
  port = listening.port;
  plan = scopedPlan(dir);
  enforcer = Enforcer.open({ pinDir: PIN_DIR, reuse: false, plan, onEvent: log.push, onError: log.error });
});

afterAll(() => {
  enforcer?.close();
  server?.close();
  // Every process run in them has exited: the cgroups are empty and can go.
  for (const path of [cg.apiMain, cg.dbMain, cg.api, cg.db, base]) if (path && existsSync(path)) rmdirSync(path);
  if (dir) removeDir(dir);
});

describe("workload scoping (pal_workloads)", () => {
  it("before any cgroup is classified, every process is a host process: scoped rules hold nowhere", () => {
    ran(runIn(cg.apiMain, `${dir}/denied-echo`, ["hi"]));
    ran(run(`${dir}/denied-echo`, ["hi"]));
  });

  it("a container of a classified pod is decided as that pod: killed, and the event names the workload", async () => {
    enforcer!.setWorkloads(new Map([[idOf(cg.api), API], [idOf(cg.db), DB]]));
    const r = runIn(cg.apiMain, `${dir}/denied-echo`, ["hi"]);
    killed(r);
    const e = await log.wait(forPid(r.pid, "process.exec"));
    expect(e.event).toMatchObject({ action: "killed", policy: "prod/prod-exec", rule: "no-denied-echo" });
    expect(e.event.k8s).toEqual({ namespace: "prod", pod: "api-7", podUid: "uid-api-7", container: "main", image: "nginx:1.27" });
    expect(e.record.workloadId).toBe(idOf(cg.api));
    expect(e.record.cgroupId).toBe(idOf(cg.apiMain));
    // The pod's own cgroup too.
    killed(runIn(cg.api, `${dir}/denied-echo`, ["hi"]));
  });

  it("a pod outside the scope and a host process are untouched", async () => {
    ran(runIn(cg.dbMain, `${dir}/denied-echo`, ["hi"]));
    ran(run(`${dir}/denied-echo`, ["hi"]));
  });

  it("a deny scoped by pod labels fails the call with EPERM in that pod only", async () => {
    const denied = connectIn(cg.apiMain);
    expect(denied.stdout).toBe("");
    expect(denied.stderr).toMatch(/Operation not permitted/);
    const e = await log.wait((x) => x.event.hook === "net.connect" && x.event.k8s?.pod === "api-7");
    expect(e.event).toMatchObject({ action: "denied", rule: "no-port", net: { dport: port } });
    expect(connectIn(cg.dbMain).stdout).toBe("connected\n");
    expect(connectIn(undefined).stdout).toBe("connected\n");
  });

  it("events of unscoped rules name the workload too", async () => {
    const r = runIn(cg.dbMain, "/bin/cat", [`${dir}/notes.txt`]);
    expect(r.stdout).toBe("notes\n");
    const e = await log.wait(forPid(r.pid, "file.open"));
    expect(e.event).toMatchObject({ action: "audited", rule: "audit-notes", k8s: { namespace: "dev", pod: "db-0", podUid: "uid-db-0" } });
    const host = run("/bin/cat", [`${dir}/notes.txt`]);
    const h = await log.wait(forPid(host.pid, "file.open"));
    expect(h.event.k8s).toBeUndefined();
  });

  it("setWorkloads changes take effect: a pod moved into scope, a pod no longer classified", () => {
    enforcer!.setWorkloads(new Map([[idOf(cg.db), { ...DB, namespace: "prod" }]]));
    killed(runIn(cg.dbMain, `${dir}/denied-echo`, ["hi"]));
    ran(runIn(cg.apiMain, `${dir}/denied-echo`, ["hi"]));
    expect(connectIn(cg.apiMain).stdout).toBe("connected\n");
    // A container classified on its own, below an unclassified pod.
    enforcer!.setWorkloads(new Map([[idOf(cg.apiMain), API]]));
    killed(runIn(cg.apiMain, `${dir}/denied-echo`, ["hi"]));
    ran(runIn(cg.api, `${dir}/denied-echo`, ["hi"]));
    ran(runIn(cg.dbMain, `${dir}/denied-echo`, ["hi"]));
  });

  it("a plan swap keeps the classification, in both generations", async () => {
    enforcer!.setWorkloads(new Map([[idOf(cg.api), API], [idOf(cg.db), DB]]));
    for (let i = 0; i < 2; i++) {
      const before = enforcer!.activeGeneration;
      enforcer!.applyPlan(i === 0 ? planOf(...[]) : plan);
      enforcer!.applyPlan(plan);
      expect(enforcer!.activeGeneration).toBe(before);
      const r = runIn(cg.apiMain, `${dir}/denied-echo`, ["hi"]);
      killed(r);
      expect((await log.wait(forPid(r.pid, "process.exec"))).event.k8s?.pod).toBe("api-7");
      ran(runIn(cg.dbMain, `${dir}/denied-echo`, ["hi"]));
      ran(run(`${dir}/denied-echo`, ["hi"]));
    }
    enforcer!.setWorkloads(new Map());
    ran(runIn(cg.apiMain, `${dir}/denied-echo`, ["hi"]));
  });
});
