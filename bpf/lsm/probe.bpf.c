// SPDX-License-Identifier: GPL-2.0-only
/*
 * Feature probes: the smallest program of each kind a backend needs. The agent loads
 * (and where it can, attaches then detaches) each one alone to learn what this kernel
 * accepts (src/enforcer/probe.ts). Every program allows everything; the signal calls sit
 * behind a condition that never holds, so the verifier sees the helper but nothing is sent.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define NEVER (bpf_get_current_pid_tgid() == 0)

/* BPF LSM: a real -EPERM on every hook */
SEC("lsm/bprm_check_security")
int BPF_PROG(probe_lsm_exec, struct linux_binprm *bprm) { return 0; }
SEC("lsm/file_open")
int BPF_PROG(probe_lsm_open, struct file *file) { return 0; }
SEC("lsm/socket_connect")
int BPF_PROG(probe_lsm_connect, struct socket *sock, struct sockaddr *address, int addrlen) { return 0; }
SEC("lsm/socket_sendmsg")
int BPF_PROG(probe_lsm_sendmsg, struct socket *sock, struct msghdr *msg, int size) { return 0; }

/* trampolines without BPF LSM: fmod_ret on the security_* functions */
SEC("fmod_ret/security_bprm_check")
int BPF_PROG(probe_fmodret_exec, struct linux_binprm *bprm) { return 0; }
SEC("fmod_ret/security_file_open")
int BPF_PROG(probe_fmodret_open, struct file *file) { return 0; }
SEC("fmod_ret/security_socket_connect")
int BPF_PROG(probe_fmodret_connect, struct socket *sock, struct sockaddr *address, int addrlen) { return 0; }
SEC("fmod_ret/security_socket_sendmsg")
int BPF_PROG(probe_fmodret_sendmsg, struct socket *sock, struct msghdr *msg, int size) { return 0; }

/* kprobes (kill only) */
SEC("kprobe/security_bprm_check")
int probe_kprobe_exec(struct pt_regs *ctx) { if (NEVER) bpf_send_signal(9); return 0; }
SEC("kprobe/security_file_open")
int probe_kprobe_open(struct pt_regs *ctx) { if (NEVER) bpf_send_signal(9); return 0; }
SEC("kprobe/security_socket_connect")
int probe_kprobe_connect(struct pt_regs *ctx) { if (NEVER) bpf_send_signal(9); return 0; }
SEC("kprobe/security_socket_sendmsg")
int probe_kprobe_sendmsg(struct pt_regs *ctx) { if (NEVER) bpf_send_signal(9); return 0; }

/* the tracepoint backend */
SEC("raw_tp/sched_process_exec")
int probe_tp_exec(struct bpf_raw_tracepoint_args *ctx) { if (NEVER) bpf_send_signal(9); return 0; }
SEC("tracepoint/syscalls/sys_exit_openat")
int probe_tp_open(struct trace_event_raw_sys_exit *ctx) { if (NEVER) bpf_send_signal(9); return 0; }
SEC("cgroup/connect4")
int probe_cgroup_connect(struct bpf_sock_addr *ctx) { return 1; }
SEC("cgroup/connect4")
int probe_cgroup_connect_kill(struct bpf_sock_addr *ctx) { if (NEVER) bpf_send_signal(9); return 1; }
