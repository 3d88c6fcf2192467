// Backend selection without a kernel: which programs a choice of backends loads, what each
// backend says it can do and cannot see, and how a libbpf refusal names its program.

import { describe, expect, it } from "vitest";
import { attachSpecs, failedPrograms } from "../../src/enforcer/backends.ts";
import { BACKEND_INFO, BACKEND_ORDER, capabilitiesOf, select, type Backend, type HookProbe } from "../../src/enforcer/probe.ts";
import type { Hook } from "../../src/policy/model.ts";
import { tracepointExists } from "../../src/enforcer/system.ts";

const HOOKS: Hook[] = ["process.exec", "file.open", "net.connect"];
const bare = (hook: Hook, attempts: HookProbe["attempts"] = {}): HookProbe => ({
  hook, attempts, available: [], selected: null, actions: { deny: null, kill: null, audit: null }, cannotSee: [], notes: [],
});
const all = (b: Backend) => Object.fromEntries(HOOKS.map((h) => [h, b])) as Record<Hook, Backend>;

describe("backends", () => {
  it("LSM everywhere: the lsm programs, the process table and the exec arguments, nothing of the tracepoint backend", () => {
    const specs = attachSpecs({ backends: all("lsm"), cgroupKill: true, cgroupRoot: "/sys/fs/cgroup" });
    expect(specs.map((s) => [s.program, s.kind, s.target, s.key])).toEqual([
      ["pal_exec_table", "raw_tp", "sched_process_exec", "exec"],
      ["pal_fork", "raw_tp", "sched_process_fork", "fork"],
      // where this machine's tracefs shows the syscall tracepoints (the enforcer mounts it)
      ...["execve", "execveat"].filter((sc) => tracepointExists("syscalls", `sys_enter_${sc}`))
        .map((sc) => [`pal_${sc}_args`, "tracepoint", `syscalls/sys_enter_${sc}`, `args-${sc}`]),
      ["pal_exit", "raw_tp", "sched_process_exit", "exit"],
      ["pal_lsm_exec", "auto", "lsm/bprm_check_security", "lsm-exec"],
      ["pal_lsm_open", "auto", "lsm/file_open", "lsm-open"],
      ["pal_lsm_connect", "auto", "lsm/socket_connect", "lsm-connect"],
      ["pal_lsm_sendmsg", "auto", "lsm/socket_sendmsg", "lsm-sendmsg"],
    ]);
  });

  it("per hook: fmod_ret exec, kprobe open, cgroup connect without signals", () => {
    const specs = attachSpecs({ backends: { "process.exec": "fmod_ret", "file.open": "kprobe", "net.connect": "tracepoint" }, cgroupKill: false, cgroupRoot: "/cg" });
    expect(specs.filter((s) => s.hook).map((s) => `${s.hook} ${s.program} ${s.target}`)).toEqual([
      "process.exec pal_fmr_exec fmod_ret/security_bprm_check",
      "file.open pal_kp_open kprobe/security_file_open",
      "net.connect pal_connect4_nokill /cg", "net.connect pal_connect6_nokill /cg",
      "net.connect pal_sendmsg4_nokill /cg", "net.connect pal_sendmsg6_nokill /cg",
    ]);
    // The tracepoint backend's exec decides on the table's own tracepoint.
    expect(attachSpecs({ backends: { ...all("lsm"), "process.exec": "tracepoint" }, cgroupKill: true })[0]).toMatchObject({ program: "pal_exec", hook: "process.exec", key: "exec" });
  });

  it("a hook with no backend loads nothing for it (no exec, no argument capture)", () => {
    const specs = attachSpecs({ backends: { "process.exec": null, "file.open": "lsm", "net.connect": null }, cgroupKill: true });
    expect(specs.map((s) => s.program)).toEqual(["pal_exec_table", "pal_fork", "pal_exit", "pal_lsm_open"]);
  });

  it("names the programs libbpf refused", () => {
    const log = "libbpf: prog 'pal_lsm_open': BPF program load failed: Permission denied\nlibbpf: prog 'pal_lsm_open': failed to load: -13\nlibbpf: failed to load object 'x'";
    expect(failedPrograms(log)).toEqual(["pal_lsm_open"]);
    expect(failedPrograms("libbpf: extern (func ksym) 'bpf_rdonly_cast': not found in kernel or module BTFs")).toEqual([]);
  });

  it("what each backend carries out, in the compiler's format", () => {
    const caps = (b: Backend, cgroupKill = true) => capabilitiesOf({
      kernel: "x",
      hooks: HOOKS.map((h) => select(bare(h, { probe_cgroup_connect_kill: { ok: cgroupKill } }), b)),
    });
    expect(caps("lsm")).toEqual({ "process.exec": ["deny", "kill"], "file.open": ["deny", "kill"], "net.connect": ["deny", "kill"] });
    expect(caps("fmod_ret")).toEqual({ "process.exec": ["deny", "kill"], "file.open": ["deny", "kill"], "net.connect": ["deny", "kill"] });
    expect(caps("kprobe")).toEqual({ "process.exec": ["kill"], "file.open": ["kill"], "net.connect": ["kill"] });
    expect(caps("tracepoint")).toEqual({ "process.exec": ["kill"], "file.open": ["kill"], "net.connect": ["deny", "kill"] });
    expect(caps("tracepoint", false)["net.connect"]).toEqual(["deny"]);
  });

  it("every backend says how it acts and what it cannot see, per hook; kill-only ones say they cannot deny", () => {
    for (const hook of HOOKS) {
      for (const b of BACKEND_ORDER[hook]) {
        const h = select(bare(hook, { probe_cgroup_connect_kill: { ok: true } }), b);
        expect(h.selected).toBe(b);
        expect(h.how).toBe(BACKEND_INFO[hook][b].how);
        expect(h.cannotSee.length, `${hook} ${b}`).toBeGreaterThan(0);
        if (!h.actions.deny) expect(h.notes.join(" ")).toMatch(/cannot deny/);
      }
    }
    expect(select(bare("file.open"), "tracepoint").cannotSee.join(" ")).toMatch(/io_uring/);
    expect(select(bare("file.open"), "lsm").cannotSee.join(" ")).not.toMatch(/io_uring opens/);
    const none = select(bare("file.open"), null);
    expect(none.actions).toEqual({ deny: null, kill: null, audit: null });
    expect(none.notes.join(" ")).toMatch(/cannot be enforced/);
  });

  it("re-selecting replaces the previous backend's notes", () => {
    const first = select(bare("file.open"), "kprobe");
    const second = select(first, "lsm", "chosen again");
    expect(second.notes).toEqual(["chosen again"]);
  });
});
