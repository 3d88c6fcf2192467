// The host's half of the backend tests: boot one VM, run test/e2e/backends/scenarios.ts in
// it for the backends of that boot, and define one test per scenario over what it printed.
// A VM that does not boot, or a runner that does not finish, fails every test of the file
// with the reason (the console's tail included); nothing is ever skipped.

import { beforeAll, expect, it } from "vitest";
import type { Backend } from "../../../src/enforcer/index.ts";
import type { Hook } from "../../../src/policy/model.ts";
import { tricksBinary } from "../../enforcer/tricks.ts";
import type { PhaseResult, RunResult, ScenarioResult } from "./scenarios.ts";
import { runScenarios, type VmScenarioOptions } from "./vm-run.ts";

/** Boots the VM in beforeAll; the returned function gives its result or throws why there is none. */
export function vmScenarios(options: VmScenarioOptions): () => Promise<RunResult> {
  let outcome: Promise<RunResult | Error> = Promise.resolve(new Error("beforeAll did not run"));
  beforeAll(async () => {
    outcome = runScenarios(options).then(({ run, vm }) => {
      console.log(`lsm=${options.lsm}: boot ${vm.bootSeconds.toFixed(1)} s, runner ${vm.commandSeconds.toFixed(1)} s, wall ${(vm.wallMs / 1000).toFixed(1)} s; ` +
        run.phases.map((p) => `${p.requested}: open ${Math.round(p.openMs)} ms, apply ${Math.round(p.applyMs)} ms`).join("; "));
      return run;
    }, (e: unknown) => (e instanceof Error ? e : new Error(String(e))));
    await outcome;
  }, options.timeoutMs + 60_000);
  return async () => {
    const r = await outcome;
    if (r instanceof Error) throw r;
    return r;
  };
}

export function phaseOf(run: RunResult, requested: string): PhaseResult {
  const phase = run.phases.find((p) => p.requested === requested);
  if (!phase) throw new Error(`no phase ${requested} in the run`);
  if (phase.refused) throw new Error(`phase ${requested} failed in the VM: ${phase.refused}`);
  return phase;
}

/** What a backend is expected to do, beyond its capabilities. */
export interface Expect {
  backend: Backend;
  /** Sees a script's own path at exec (bprm_check runs for the script, then its interpreter). */
  seesScripts: boolean;
  /** Sees io_uring opens. */
  seesIoUring: boolean;
}

const ACTION = { deny: "denied", kill: "killed" } as const;

/**
 * Defines one test per scenario for the phase `requested` of the run. Blocked calls must be
 * blocked the way the backend can (EPERM where it can deny, SIGKILL where it can only
 * kill), with an event naming the rule; allowed calls untouched and unreported.
 */
export function scenarioTests(result: () => Promise<RunResult>, requested: string, x: Expect): void {
  const get = async () => {
    const run = await result();
    const phase = phaseOf(run, requested);
    return { run, phase, d: run.dir };
  };
  const scenario = (phase: PhaseResult, name: string): ScenarioResult => {
    const s = phase.scenarios[name];
    if (!s) throw new Error(`scenario ${name} did not run`);
    return s;
  };
  /** The way a rule with `action` (deny rules say fallback: kill) is carried out on hook. */
  const how = (phase: PhaseResult, hook: Hook, action: "deny" | "kill"): "deny" | "kill" =>
    action === "deny" && phase.capabilities[hook]?.includes("deny") ? "deny" : "kill";

  function blocked(phase: PhaseResult, run: RunResult, name: string, hook: Hook, rule: string, action: "deny" | "kill") {
    const s = scenario(phase, name);
    const detail = JSON.stringify(s);
    const done = how(phase, hook, action);
    if (done === "deny") {
      // The call failed with EPERM; the process survived to say so.
      expect(s.trick, detail).toMatchObject({ errno: 1 });
      expect(s.status, detail).toBe(100);
      expect(s.stdout, detail).not.toContain("RAN");
      expect(s.stdout, detail).not.toContain("top secret");
    } else {
      expect(s.signal, detail).toBe("SIGKILL");
      expect(s.stdout, detail).toBe("");
    }
    expect(s.events.length, detail).toBeGreaterThanOrEqual(1);
    const e = s.events[0]!;
    expect(e.event, detail).toMatchObject({ hook, action: ACTION[done], policy: "enforce", rule, process: { pid: s.pid, ppid: run.pid } });
    expect(e.acted, detail).toBe(true);
    expect(e.signalFailed, detail).toBe(false);
    return { s, e };
  }

  function allowed(phase: PhaseResult, name: string) {
    const s = scenario(phase, name);
    expect(s.status, JSON.stringify(s)).toBe(0);
    expect(s.signal).toBe(null);
    expect(s.events, JSON.stringify(s)).toEqual([]);
    return s;
  }

  it(`${requested}: selects the ${x.backend} backend for every hook and says what it can do and cannot see`, async () => {
    const { phase } = await get();
    for (const h of phase.hooks) {
      expect(h.selected, `${h.hook}: ${h.notes.join("; ")}`).toBe(x.backend);
      expect(h.cannotSee.length, h.hook).toBeGreaterThan(0);
      expect(h.how, h.hook).toBeTruthy();
      expect(h.actions.kill === "kill", h.hook).toBe(phase.capabilities[h.hook]!.includes("kill"));
      expect(h.actions.deny === "deny", h.hook).toBe(phase.capabilities[h.hook]!.includes("deny"));
    }
    expect(phase.errors).toEqual([]);
    expect(phase.counters).toMatchObject({ ringbufDrops: "0", classMissing: "0", scratchBusy: "0", signalFailed: "0" });
  });

  // ---- process.exec ----

  it(`${requested}: a denied exec is blocked before the binary runs, and reported`, async () => {
    const { run, phase, d } = await get();
    const { e } = blocked(phase, run, "exec.denied", "process.exec", "no-denied-echo", "deny");
    expect(e.event).toMatchObject({
      severity: "high", process: { binary: `${d}/denied-echo`, uid: 0, args: ["denied-echo", "RAN"] }, parent: { pid: run.pid, binary: run.execPath },
    });
  });

  it(`${requested}: a rule scoped to a namespace holds in a container of a classified pod of it, with the pod in the event`, async () => {
    const { run, phase } = await get();
    const { e } = blocked(phase, run, "workload.in", "process.exec", "no-pod-echo", "deny");
    expect(e.event.k8s).toEqual({ namespace: "prod", pod: "pod-in", podUid: "uid-in", container: "main" });
  });

  it(`${requested}: a scoped rule leaves another namespace's pod and the host alone`, async () => {
    const { phase } = await get();
    expect(allowed(phase, "workload.out").stdout).toBe("RAN\n");
    expect(allowed(phase, "workload.host").stdout).toBe("RAN\n");
  });

  it(`${requested}: a kill rule on exec kills before the binary runs`, async () => {
    const { run, phase, d } = await get();
    const { s, e } = blocked(phase, run, "exec.killed", "process.exec", "kill-echo", "kill");
    expect(s.signal).toBe("SIGKILL");
    expect(e.event).toMatchObject({ severity: "critical", process: { binary: `${d}/killed-echo`, args: ["killed-echo", "RAN"] } });
  });

  it(`${requested}: an allowed exec runs untouched, unreported`, async () => {
    const { phase } = await get();
    expect(allowed(phase, "exec.allowed").stdout).toBe("RAN\n");
  });

  it(`${requested}: a monitor rule on exec reports monitor and does nothing`, async () => {
    const { phase, d } = await get();
    const s = scenario(phase, "exec.monitor");
    expect(s.status).toBe(0);
    expect(s.stdout).toBe("RAN\n");
    expect(s.events).toHaveLength(1);
    expect(s.events[0]!.event).toMatchObject({ action: "monitor", policy: "watch", rule: "would-kill-exec", process: { pid: s.pid, binary: `${d}/watched-echo` } });
    expect(s.events[0]!.acted).toBe(false);
  });

  if (x.seesScripts) {
    it(`${requested}: a script is decided by its own path (bprm_check runs for the script, then its interpreter)`, async () => {
      const { run, phase, d } = await get();
      const { e } = blocked(phase, run, "exec.script", "process.exec", "no-script", "deny");
      expect(e.event.process.binary).toBe(`${d}/denied.sh`);
    });
  } else {
    it(`${requested}: a script is decided as its interpreter, so a rule on the script's path does not match (documented)`, async () => {
      const { phase } = await get();
      expect(allowed(phase, "exec.script").stdout).toBe("RAN\n");
    });
  }

  const execTricks: [string, string][] = [
    ["exec.bypass.symlink", "a symlink to it"],
    ["exec.bypass.dotdot", "a path through '..'"],
    ["exec.bypass.relative", "a relative path"],
    ["exec.bypass.hardlink", "a hard link to it"],
    ["exec.bypass.execveat", "execveat(AT_FDCWD, path)"],
    ["exec.bypass.execveat-empty-path", "execveat(O_PATH fd, \"\", AT_EMPTY_PATH)"],
    ["exec.bypass.execveat-dirfd", "execveat(dirfd, name)"],
    ["exec.bypass.fexecve", "fexecve of a read-only descriptor"],
    ["exec.bypass.proc-fd", "execve(\"/proc/self/fd/N\") of an O_PATH descriptor"],
  ];
  for (const [name, what] of execTricks) {
    it(`${requested}: exec through ${what} is decided as the binary itself`, async () => {
      const { run, phase, d } = await get();
      const { e } = blocked(phase, run, name, "process.exec", "no-denied-echo", "deny");
      expect(e.event.process.binary).toBe(`${d}/denied-echo`);
    });
  }

  // ---- file.open ----

  it(`${requested}: a denied open is blocked and reported with the path`, async () => {
    const { run, phase, d } = await get();
    const { e } = blocked(phase, run, "open.denied", "file.open", "no-secret", "deny");
    expect(e.event).toMatchObject({ severity: "critical", file: { path: `${d}/secret.txt` }, process: { binary: tricksBinary() } });
  });

  it(`${requested}: a prefix rule blocks a file under it`, async () => {
    const { run, phase, d } = await get();
    const { e } = blocked(phase, run, "open.prefix", "file.open", "no-vault", "deny");
    expect(e.event.file?.path).toBe(`${d}/vault/key`);
  });

  it(`${requested}: a kill rule on open kills before a byte is read`, async () => {
    const { run, phase, d } = await get();
    const { e } = blocked(phase, run, "open.killed", "file.open", "kill-file", "kill");
    expect(e.event.file?.path).toBe(`${d}/kill.txt`);
  });

  it(`${requested}: an allowed open is untouched, unreported`, async () => {
    const { phase } = await get();
    expect(allowed(phase, "open.allowed").trick).toEqual({ ok: true, data: "public\n" });
  });

  it(`${requested}: monitor reports monitor, audit reports audited; neither acts`, async () => {
    const { phase, d } = await get();
    const m = scenario(phase, "open.monitor");
    expect(m.trick).toEqual({ ok: true, data: "watched\n" });
    expect(m.events.map((e) => e.event)).toMatchObject([{ action: "monitor", policy: "watch", rule: "would-kill-open", file: { path: `${d}/watched.txt` }, process: { pid: m.pid } }]);
    expect(m.events[0]!.acted).toBe(false);
    const a = scenario(phase, "open.audit");
    expect(a.trick).toEqual({ ok: true, data: "notes\n" });
    expect(a.events.map((e) => e.event)).toMatchObject([{ action: "audited", rule: "audit-notes", severity: "info", file: { path: `${d}/notes.txt` } }]);
  });

  it(`${requested}: O_TRUNC on a denied file: ${x.backend === "lsm" || x.backend === "fmod_ret" ? "the file stays intact (the open never happens)" : "the kill comes after the truncation (documented)"}`, async () => {
    const { run, phase } = await get();
    const { s } = blocked(phase, run, "open.truncate", "file.open", "no-secret", "deny");
    expect(s.after).toBe(how(phase, "file.open", "deny") === "deny" ? "top secret\n" : "");
  });

  const openTricks: [string, string, string][] = [
    ["open.bypass.symlink", "a symlink to it", "no-secret"],
    ["open.bypass.dotdot", "a path through '..'", "no-secret"],
    ["open.bypass.relative", "a relative path", "no-secret"],
    ["open.bypass.hardlink", "a hard link to it", "no-secret"],
    ["open.bypass.proc-fd-reopen", "a /proc/self/fd/N re-open of an O_PATH descriptor", "no-secret"],
    ["open.bypass.inherited-fd-reopen", "a /proc/self/fd/N re-open of a descriptor opened before the rule", "no-secret"],
    ["open.bypass.openat2-beneath", "openat2 RESOLVE_BENEATH", "no-secret"],
    ["open.bypass.openat2-in-root", "openat2 RESOLVE_IN_ROOT (\"/secret.txt\" under the directory)", "no-secret"],
    ["open.bypass.openat2-no-symlinks", "openat2 RESOLVE_NO_SYMLINKS|NO_MAGICLINKS|NO_XDEV", "no-secret"],
    ["open.bypass.openat2-prefix", "openat2 RESOLVE_BENEATH under a prefix rule", "no-vault"],
  ];
  for (const [name, what, rule] of openTricks) {
    it(`${requested}: open through ${what} is decided as the file itself`, async () => {
      const { run, phase, d } = await get();
      const { e } = blocked(phase, run, name, "file.open", rule, "deny");
      expect(e.event.file?.path).toBe(rule === "no-vault" ? `${d}/vault/key` : `${d}/secret.txt`);
    });
  }

  it(`${requested}: a hard link is reported under the rule's name, with the name used`, async () => {
    const { phase, d } = await get();
    const e = scenario(phase, "open.bypass.hardlink").events[0]!;
    expect(e.event.file?.path).toBe(`${d}/secret.txt`);
    expect(e.openedAs).toBe(`${d}/sub/hard-link.txt`);
  });

  if (x.seesIoUring) {
    it(`${requested}: an io_uring open (IORING_OP_OPENAT) is decided like any other`, async () => {
      const { run, phase } = await get();
      blocked(phase, run, "open.bypass.io_uring", "file.open", "no-secret", "deny");
    });
  } else {
    it(`${requested}: an io_uring open is not seen (documented): the file is read`, async () => {
      const { phase } = await get();
      expect(allowed(phase, "open.bypass.io_uring").trick).toEqual({ ok: true, data: "top secret\n" });
    });
  }

  it(`${requested}: reading a descriptor opened before the rule is out of reach (documented): only opens are decided`, async () => {
    const { phase } = await get();
    expect(allowed(phase, "open.inherited-fd-read").stdout).toBe("top secret\n");
  });

  // ---- net.connect ----

  it(`${requested}: a denied TCP connect is blocked and reported with the destination`, async () => {
    const { run, phase } = await get();
    const { e } = blocked(phase, run, "net.denied", "net.connect", "no-port", "deny");
    expect(e.event.net).toEqual({ family: "ipv4", protocol: "tcp", daddr: "127.0.0.1", dport: run.ports.deniedPort });
    expect(e.event.process.binary).toBe(tricksBinary());
  });

  it(`${requested}: an allowed connect and an allowed datagram go through, unreported`, async () => {
    const { phase } = await get();
    expect(allowed(phase, "net.allowed").trick).toEqual({ ok: true });
    expect(allowed(phase, "net.udp-allowed").trick).toEqual({ ok: true });
  });

  it(`${requested}: a kill rule on connect kills (where this kernel lets the backend kill)`, async () => {
    const { run, phase } = await get();
    if (phase.dropped.includes("kill-port")) {
      // This kernel's connect hooks cannot kill: the probe says so and the compiler refuses the rule.
      expect(phase.capabilities["net.connect"]).not.toContain("kill");
      return;
    }
    const { e } = blocked(phase, run, "net.killed", "net.connect", "kill-port", "kill");
    expect(e.event.net?.dport).toBe(run.ports.killPort);
  });

  it(`${requested}: a UDP datagram to a denied destination is blocked (sendmsg)`, async () => {
    const { run, phase } = await get();
    const { e } = blocked(phase, run, "net.udp-denied", "net.connect", "no-udp", "deny");
    expect(e.event.net).toEqual({ family: "ipv4", protocol: "udp", daddr: "127.0.0.1", dport: run.ports.udpPort });
  });

  it(`${requested}: an IPv4-mapped IPv6 destination meets the IPv4 rule and is reported as IPv4`, async () => {
    const { run, phase } = await get();
    const { e } = blocked(phase, run, "net.mapped-ipv4", "net.connect", "no-port", "deny");
    expect(e.event.net).toEqual({ family: "ipv4", protocol: "tcp", daddr: "127.0.0.1", dport: run.ports.deniedPort });
    expect(e.mappedIpv4).toBe(true);
  });

  it(`${requested}: a TCP Fast Open send (sendto with MSG_FASTOPEN) to a denied destination is blocked`, async () => {
    const { run, phase } = await get();
    blocked(phase, run, "net.fastopen", "net.connect", "no-port", "deny");
  });
}
