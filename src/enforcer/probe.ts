// What this kernel can enforce, per hook, found by loading (and where possible attaching,
// then detaching) the smallest program of each kind (bpf/lsm/probe.bpf.c). Never by
// kernel version. `palisade probe` prints this; the enforcer loads the selected backend's
// programs (and falls back to the next one should the kernel refuse them after all).

import { readFileSync } from "node:fs";
import type { Hook } from "../policy/model.ts";
import { bpfObjectPath, native, type ProbeAttempt } from "./native.ts";
import { activeLsms, cgroup2Root, ensureFilesystems, privilegeProblem } from "./system.ts";
import type { Capabilities } from "./encode.ts";

/**
 * - lsm: BPF LSM programs (bpf is an active LSM): fail the call with EPERM, or kill.
 * - fmod_ret: trampolines on the security_*() functions (bpf not an active LSM): the same.
 * - kprobe: kprobes on the security_*() functions: kill only.
 * - tracepoint: syscall and scheduler tracepoints (kill only) and, for connect, cgroup hooks (EPERM).
 */
export type Backend = "lsm" | "fmod_ret" | "kprobe" | "tracepoint";

/** Backends this agent implements, best first (per hook: BACKEND_ORDER). */
export const IMPLEMENTED_BACKENDS: readonly Backend[] = ["lsm", "fmod_ret", "kprobe", "tracepoint"];

/** Preference per hook. For connect the cgroup hooks (EPERM) beat kprobes (kill only). */
export const BACKEND_ORDER: Record<Hook, readonly Backend[]> = {
  "process.exec": ["lsm", "fmod_ret", "kprobe", "tracepoint"],
  "file.open": ["lsm", "fmod_ret", "kprobe", "tracepoint"],
  "net.connect": ["lsm", "fmod_ret", "tracepoint", "kprobe"],
};

export interface HookProbe {
  hook: Hook;
  /** What each backend's probe programs did when tried. */
  attempts: Record<string, ProbeAttempt>;
  /** Backends whose programs this kernel accepts for the hook, best first. */
  available: Backend[];
  /** The backend the agent uses here (the best available one), or null: the hook cannot be enforced. */
  selected: Backend | null;
  /** Which actions the selected backend carries out (null: it cannot). */
  actions: { deny: "deny" | null; kill: "kill" | null; audit: "audit" | null };
  /** How the selected backend carries them out. */
  how?: string;
  /** What the selected backend does not see or cannot prevent on this hook. */
  cannotSee: string[];
  notes: string[];
}

export interface ProbeResult {
  kernel: string;
  lsms?: string[];
  cgroup2?: string;
  problem?: string;
  hooks: HookProbe[];
}

/** Probe programs per hook and backend: all must load (and attach) for the backend to be available. */
const CANDIDATES: Record<Hook, Record<Backend, string[]>> = {
  "process.exec": { lsm: ["probe_lsm_exec"], fmod_ret: ["probe_fmodret_exec"], kprobe: ["probe_kprobe_exec"], tracepoint: ["probe_tp_exec"] },
  "file.open": { lsm: ["probe_lsm_open"], fmod_ret: ["probe_fmodret_open"], kprobe: ["probe_kprobe_open"], tracepoint: ["probe_tp_open"] },
  "net.connect": {
    lsm: ["probe_lsm_connect", "probe_lsm_sendmsg"],
    fmod_ret: ["probe_fmodret_connect", "probe_fmodret_sendmsg"],
    kprobe: ["probe_kprobe_connect", "probe_kprobe_sendmsg"],
    tracepoint: ["probe_cgroup_connect"],
  },
};
/** Tried for the tracepoint backend's connect: whether its cgroup programs may send SIGKILL. */
const CGROUP_KILL_PROBE = "probe_cgroup_connect_kill";

interface BackendInfo {
  deny: boolean;
  kill: boolean;
  how: string;
  cannotSee: string[];
}

const BEFORE = "The rules in force when a descriptor was opened or a connection made decide it; later rules do not reach descriptors already open (inherited, received over a Unix socket, or opened before the plan was applied)";

/** What each backend does on each hook, and what it cannot see (docs/kernel-abi.md, "Backends"). */
export const BACKEND_INFO: Record<Hook, Record<Backend, BackendInfo>> = {
  "process.exec": {
    lsm: {
      deny: true, kill: true,
      how: "lsm/bprm_check_security: deny fails execve/execveat with EPERM (the caller survives); kill sends SIGKILL and fails the exec",
      cannotSee: [
        "nothing of execve/execveat: every binary the kernel loads passes this hook, a script and then its interpreter each decided (the tracepoint backend sees only the interpreter)",
      ],
    },
    fmod_ret: {
      deny: true, kill: true,
      how: "fmod_ret/security_bprm_check: deny fails execve/execveat with EPERM (the caller survives); kill sends SIGKILL and fails the exec",
      cannotSee: [
        "nothing of execve/execveat: every binary the kernel loads passes security_bprm_check, a script and then its interpreter each decided (the tracepoint backend sees only the interpreter)",
      ],
    },
    kprobe: {
      deny: false, kill: true,
      how: "kprobe/security_bprm_check + SIGKILL: the process dies before the new image runs; the exec cannot be failed",
      cannotSee: ["cannot deny: the caller is killed, its parent sees SIGKILL rather than an error from execve"],
    },
    tracepoint: {
      deny: false, kill: true,
      how: "raw_tp/sched_process_exec + SIGKILL: the exec has happened; the process dies before the new image runs one instruction",
      cannotSee: [
        "cannot deny: the exec has happened, the parent sees SIGKILL rather than an error from execve",
        "a script is decided as its interpreter (bprm->file): a rule naming the script's path does not match it",
      ],
    },
  },
  "file.open": {
    lsm: {
      deny: true, kill: true,
      how: "lsm/file_open: deny fails the open with EPERM; kill sends SIGKILL and fails the open (no descriptor is ever installed)",
      cannotSee: [
        "O_PATH descriptors (the kernel does not call file_open for them; they give no access to content, and re-opening one through /proc/self/fd is decided)",
        "the kernel's own opens of a binary and its ELF interpreter for an exec (process.exec decides those)",
        BEFORE,
        "access that is not an open: mmap or read of a descriptor already open",
      ],
    },
    fmod_ret: {
      deny: true, kill: true,
      how: "fmod_ret/security_file_open: deny fails the open with EPERM; kill sends SIGKILL and fails the open (no descriptor is ever installed)",
      cannotSee: [
        "O_PATH descriptors (the kernel does not call security_file_open for them; they give no access to content, and re-opening one through /proc/self/fd is decided)",
        "the kernel's own opens of a binary and its ELF interpreter for an exec (process.exec decides those)",
        BEFORE,
        "access that is not an open: mmap or read of a descriptor already open",
      ],
    },
    kprobe: {
      deny: false, kill: true,
      how: "kprobe/security_file_open + SIGKILL: the process dies before the open returns to user space",
      cannotSee: [
        "cannot deny: the open completes (O_CREAT created the file, O_TRUNC truncated it) and another thread may use the descriptor before the kill lands",
        "O_PATH descriptors and the kernel's own opens for an exec, as for the LSM backend",
        BEFORE,
      ],
    },
    tracepoint: {
      deny: false, kill: true,
      how: "tp/syscalls/sys_exit_{openat,openat2,open,creat,open_by_handle_at} + SIGKILL on the returned descriptor's file",
      cannotSee: [
        "cannot deny: the open has happened (O_CREAT created the file, O_TRUNC truncated it) and another thread may use the descriptor before the kill lands",
        "io_uring opens (IORING_OP_OPENAT, OPENAT2): they make no open syscall",
        BEFORE,
        "access that is not an open: mmap or read of a descriptor already open",
      ],
    },
  },
  "net.connect": {
    lsm: {
      deny: true, kill: true,
      how: "lsm/socket_connect and lsm/socket_sendmsg (datagrams and TCP Fast Open to an address): deny fails the call with EPERM; kill sends SIGKILL and fails it",
      cannotSee: ["non-IP sockets (AF_UNIX and others)", "sends on a connected socket (decided at its connect)"],
    },
    fmod_ret: {
      deny: true, kill: true,
      how: "fmod_ret/security_socket_connect and security_socket_sendmsg (datagrams and TCP Fast Open to an address): deny fails the call with EPERM; kill sends SIGKILL and fails it",
      cannotSee: ["non-IP sockets (AF_UNIX and others)", "sends on a connected socket (decided at its connect)"],
    },
    kprobe: {
      deny: false, kill: true,
      how: "kprobe/security_socket_connect and security_socket_sendmsg + SIGKILL",
      cannotSee: ["cannot deny: the connection attempt may leave before the kill lands", "non-IP sockets (AF_UNIX and others)"],
    },
    tracepoint: {
      deny: true, kill: true,
      how: "cgroup/connect4|6 and cgroup/sendmsg4|6 on the cgroup v2 root: deny fails the call with EPERM; kill sends SIGKILL and fails it",
      cannotSee: [
        "processes outside the cgroup v2 hierarchy the programs are attached to (none, when it is the root)",
        "non-IP sockets, and raw IP sockets (the cgroup connect and sendmsg hooks are called by the TCP and UDP code)",
      ],
    },
  },
};

let cached: ProbeResult | undefined;

export function probe(options: { fresh?: boolean } = {}): ProbeResult {
  if (cached && !options.fresh) return cached;
  const kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  const problem = privilegeProblem();
  if (problem) {
    return {
      kernel, problem,
      hooks: (Object.keys(CANDIDATES) as Hook[]).map((hook) => ({
        hook, attempts: {}, available: [], selected: null, actions: { deny: null, kill: null, audit: null }, cannotSee: [], notes: [problem],
      })),
    };
  }
  ensureFilesystems();
  const lsms = activeLsms();
  const cgroup2 = cgroup2Root();
  const object = bpfObjectPath("probe");
  const tried = new Map<string, ProbeAttempt>();
  const attempt = (program: string): ProbeAttempt => {
    let result = tried.get(program);
    if (!result) {
      // cgroup programs cannot attach without a cgroup: loading is what tells.
      result = native().probeProgram(object, program, { attach: program.startsWith("probe_cgroup") ? "none" : "auto" });
      tried.set(program, result);
    }
    return result;
  };

  const hooks = (Object.keys(CANDIDATES) as Hook[]).map((hook): HookProbe => {
    const attempts: Record<string, ProbeAttempt> = {};
    const available: Backend[] = [];
    const notes: string[] = [];
    for (const backend of BACKEND_ORDER[hook]) {
      const results = CANDIDATES[hook][backend].map((p) => (attempts[p] = attempt(p)));
      let ok = results.every((r) => r.ok);
      if (backend === "lsm" && ok && !lsms?.includes("bpf")) {
        // An lsm program loads and attaches whether or not the kernel calls it.
        ok = false;
        notes.push(lsms
          ? "BPF LSM programs load, but bpf is not among the active LSMs (/sys/kernel/security/lsm)"
          : "BPF LSM programs load, but the active LSMs cannot be read (/sys/kernel/security/lsm): not relied on");
      }
      if (backend === "tracepoint" && hook === "net.connect") {
        attempts[CGROUP_KILL_PROBE] = attempt(CGROUP_KILL_PROBE);
        if (ok && !cgroup2) {
          ok = false;
          notes.push("no cgroup v2 hierarchy is mounted: the connect hooks have nowhere to attach");
        }
      }
      if (ok) available.push(backend);
    }
    const result: HookProbe = { hook, attempts, available, selected: null, actions: { deny: null, kill: null, audit: null }, cannotSee: [], notes };
    return select(result, available[0] ?? null);
  });
  cached = { kernel, ...(lsms && { lsms }), ...(cgroup2 && { cgroup2 }), hooks };
  return cached;
}

/** Whether the tracepoint backend's cgroup connect programs may send SIGKILL here. */
export function cgroupCanKill(h: HookProbe): boolean {
  return h.attempts[CGROUP_KILL_PROBE]?.ok ?? false;
}

/** h with `backend` selected: its actions, how, what it cannot see (notes about the choice are kept). */
export function select(h: HookProbe, backend: Backend | null, note?: string): HookProbe {
  const notes = h.notes.filter((n) => !n.startsWith("cannot deny:") && !n.startsWith("cannot kill:") && !n.startsWith("no backend"));
  if (note) notes.push(note);
  if (!backend) {
    notes.push("no backend works here: rules on this hook cannot be enforced");
    return { ...h, selected: null, actions: { deny: null, kill: null, audit: null }, how: undefined, cannotSee: [], notes };
  }
  const info = BACKEND_INFO[h.hook][backend];
  const kill = info.kill && (backend !== "tracepoint" || h.hook !== "net.connect" || cgroupCanKill(h));
  if (!kill) notes.push("cannot kill: this kernel's cgroup connect hooks may not send signals; rules may deny instead");
  if (!info.deny) notes.push(`cannot deny: the ${backend} backend ${backend === "tracepoint" ? `runs after the ${h.hook === "file.open" ? "open" : "exec"} happened` : "cannot fail the call"}; rules may kill instead (fallback: kill)`);
  return {
    ...h, selected: backend, how: info.how, cannotSee: info.cannotSee, notes,
    actions: { deny: info.deny ? "deny" : null, kill: kill ? "kill" : null, audit: "audit" },
  };
}

/** The actions the hook's selected backend carries out, for people: "deny, kill, audit". */
export function describeActions(h: HookProbe): string {
  return [h.actions.deny, h.actions.kill, h.actions.audit].filter(Boolean).join(", ") || "nothing";
}

/** What each hook can do here, in the compiler's format (compile({ capabilities })). */
export function capabilitiesOf(result: ProbeResult): Capabilities {
  const out: Capabilities = {};
  for (const h of result.hooks) {
    const can: ("deny" | "kill")[] = [];
    if (h.actions.deny === "deny") can.push("deny");
    if (h.actions.kill === "kill") can.push("kill");
    out[h.hook] = can;
  }
  return out;
}
