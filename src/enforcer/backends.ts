// Which programs of bpf/lsm/enforcer.bpf.c run for a choice of backend per hook, and where
// each attaches. Pure (apart from asking which syscall tracepoints exist).

import type { Hook } from "../policy/model.ts";
import type { AttachSpec } from "./native.ts";
import type { Backend } from "./probe.ts";
import { tracepointExists } from "./system.ts";

/** The file.open syscalls the tracepoint backend's open program watches, where this kernel has them. */
export const OPEN_SYSCALLS = ["openat", "openat2", "open", "creat", "open_by_handle_at"];

export interface Selection {
  /** The backend per hook (null: the hook is not enforced here). */
  backends: Record<Hook, Backend | null>;
  /** Whether the cgroup connect programs may send SIGKILL (the tracepoint backend's connect). */
  cgroupKill: boolean;
  /** cgroup v2 directory for the cgroup programs. */
  cgroupRoot?: string;
}

export interface BackendAttachSpec extends AttachSpec {
  /** The hook this program decides (undefined: the process table, which every backend needs). */
  hook?: Hook;
}

const SECURITY_HOOKS: Record<Hook, { lsm: string[]; fn: string[]; name: string[] }> = {
  "process.exec": { lsm: ["bprm_check_security"], fn: ["security_bprm_check"], name: ["exec"] },
  "file.open": { lsm: ["file_open"], fn: ["security_file_open"], name: ["open"] },
  "net.connect": { lsm: ["socket_connect", "socket_sendmsg"], fn: ["security_socket_connect", "security_socket_sendmsg"], name: ["connect", "sendmsg"] },
};

const PREFIX: Record<"lsm" | "fmod_ret" | "kprobe", string> = { lsm: "pal_lsm_", fmod_ret: "pal_fmr_", kprobe: "pal_kp_" };

/**
 * The programs to load and attach. Link pin keys of the tracepoint backend are those of
 * earlier agents ("exec", "open-openat", "connect4"...), so a restarted agent replaces
 * their links one by one; the other backends' keys name the backend ("lsm-open").
 */
export function attachSpecs(selection: Selection): BackendAttachSpec[] {
  const { backends } = selection;
  const specs: BackendAttachSpec[] = [
    // The process table, and the tracepoint backend's exec decision on the same tracepoint.
    backends["process.exec"] === "tracepoint"
      ? { program: "pal_exec", kind: "raw_tp", target: "sched_process_exec", key: "exec", hook: "process.exec" }
      : { program: "pal_exec_table", kind: "raw_tp", target: "sched_process_exec", key: "exec" },
    { program: "pal_fork", kind: "raw_tp", target: "sched_process_fork", key: "fork" },
    // process.exec's arguments, captured at syscall entry for its events.
    ...(backends["process.exec"]
      ? (["execve", "execveat"] as const)
          .filter((sc) => tracepointExists("syscalls", `sys_enter_${sc}`))
          .map((sc): BackendAttachSpec => ({ program: `pal_${sc}_args`, kind: "tracepoint", target: `syscalls/sys_enter_${sc}`, key: `args-${sc}` }))
      : []),
    { program: "pal_exit", kind: "raw_tp", target: "sched_process_exit", key: "exit" },
  ];
  for (const hook of Object.keys(SECURITY_HOOKS) as Hook[]) {
    const backend = backends[hook];
    if (!backend) continue;
    if (backend === "tracepoint") {
      if (hook === "file.open") {
        for (const sc of OPEN_SYSCALLS) {
          if (tracepointExists("syscalls", `sys_exit_${sc}`)) {
            specs.push({ program: "pal_open_exit", kind: "tracepoint", target: `syscalls/sys_exit_${sc}`, key: `open-${sc}`, hook });
          }
        }
      } else if (hook === "net.connect" && selection.cgroupRoot) {
        for (const p of ["connect4", "connect6", "sendmsg4", "sendmsg6"]) {
          const program = selection.cgroupKill ? `pal_${p}` : `pal_${p}_nokill`;
          specs.push({ program, kind: "cgroup", target: selection.cgroupRoot, key: p, hook });
        }
      }
      continue;
    }
    const h = SECURITY_HOOKS[hook];
    h.name.forEach((name, i) => {
      const target = backend === "lsm" ? `lsm/${h.lsm[i]}` : `${backend}/${h.fn[i]}`;
      specs.push({ program: `${PREFIX[backend]}${name}`, kind: "auto", target, key: `${backend}-${name}`, hook });
    });
  }
  return specs;
}

/** The programs named in a libbpf error (the ones it failed to load). */
export function failedPrograms(message: string): string[] {
  const out = new Set<string>();
  for (const m of message.matchAll(/prog '(pal_\w+)': (?:BPF program load failed|failed to load|failed to attach|failed to find)/g)) out.add(m[1]!);
  return [...out];
}
