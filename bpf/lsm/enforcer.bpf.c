// SPDX-License-Identifier: GPL-2.0-only
/*
 * Every program of every backend, in one object. The agent picks a backend per hook at
 * start by trying what this kernel accepts (src/enforcer/probe.ts) and loads only the
 * programs of the backends it picked (libbpf autoload), so every hook's programs share
 * the same maps. Each program only finds the hook's object and says what its backend can
 * do; the decision is common.bpf.h's, through the maps alone.
 *
 *   backend     process.exec                 file.open                     net.connect
 *   lsm         lsm/bprm_check_security      lsm/file_open                 lsm/socket_connect, socket_sendmsg
 *   fmod_ret    fmod_ret/security_bprm_check fmod_ret/security_file_open   fmod_ret/security_socket_connect, _sendmsg
 *   kprobe      kprobe/security_bprm_check   kprobe/security_file_open     kprobe/security_socket_connect, _sendmsg
 *   tracepoint  raw_tp/sched_process_exec    tp/syscalls/sys_exit_open*    cgroup/connect4|6, sendmsg4|6
 *
 * lsm and fmod_ret fail the call with -EPERM for deny, and for kill also send SIGKILL;
 * kprobe and the exec/open tracepoints can only kill. The process table
 * (raw_tp/sched_process_exec, _fork, _exit) runs with every backend.
 */
#include "common.bpf.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define EPERM 1
#define PAL_FMODE_EXEC 0x20      /* include/linux/fs.h FMODE_EXEC */
#define PAL_MSG_FASTOPEN 0x20000000
#define PAL_IPPROTO_TCP 6

/* ---- the process table (every backend) and the tracepoint backend's exec ---- */

SEC("raw_tp/sched_process_exec")
int pal_exec(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx->args[0];
	struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];
	/* The exec has happened: this backend cannot fail it, only kill before the new image
	 * runs one instruction. */
	/* A thread other than the leader that execs takes the leader's pid: its arguments are
	 * under the pid it had (old_pid). */
	__u32 old_pid = (__u32)ctx->args[1];
	pal_hook_exec(task, BPF_CORE_READ(bprm, file), PAL_EXEC_TABLE | PAL_EXEC_DECIDE, old_pid);
	bpf_map_delete_elem(&pal_args, &old_pid);
	return 0;
}

/* The same tracepoint where another backend decides process.exec: the table only. */
SEC("raw_tp/sched_process_exec")
int pal_exec_table(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx->args[0];
	struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];
	__u32 old_pid = (__u32)ctx->args[1];
	pal_hook_exec(task, BPF_CORE_READ(bprm, file), PAL_EXEC_TABLE, old_pid);
	bpf_map_delete_elem(&pal_args, &old_pid); /* decided already, before the exec */
	return 0;
}

/* Arguments of execs, for process.exec's events (every backend). */
SEC("tracepoint/syscalls/sys_enter_execve")
int pal_execve_args(struct trace_event_raw_sys_enter *ctx)
{
	pal_capture_args((const char *const *)ctx->args[1]);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int pal_execveat_args(struct trace_event_raw_sys_enter *ctx)
{
	pal_capture_args((const char *const *)ctx->args[2]);
	return 0;
}

SEC("raw_tp/sched_process_fork")
int pal_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx->args[0];
	struct task_struct *child = (struct task_struct *)ctx->args[1];
	__u32 child_pid = BPF_CORE_READ(child, pid);
	__u32 child_tgid = BPF_CORE_READ(child, tgid);
	if (child_pid != child_tgid)
		return 0; /* a thread: shares its process's entry */
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	struct pal_proc *pp = bpf_map_lookup_elem(&pal_procs, &ptgid);
	if (!pp)
		return 0; /* resolved lazily when needed */
	__u32 slot;
	struct pal_scratch *sc = pal_enter(&slot);
	if (!sc)
		return 0;
	/* With CLONE_PARENT the child's parent is the caller's parent. */
	__u32 real_ptgid = BPF_CORE_READ(child, real_parent, tgid);
	sc->proc.tgid = child_tgid;
	sc->proc.ppid = real_ptgid;
	bpf_probe_read_kernel(&sc->proc.bin, sizeof(struct pal_bin), &pp->bin);
	if (real_ptgid == ptgid)
		bpf_probe_read_kernel(&sc->proc.parent, sizeof(struct pal_bin), &pp->bin);
	else
		bpf_probe_read_kernel(&sc->proc.parent, sizeof(struct pal_bin), &pp->parent);
	if (bpf_map_update_elem(&pal_procs, &child_tgid, &sc->proc, BPF_ANY) < 0)
		pal_count(PAL_C_PROC_FULL);
	pal_leave(slot);
	return 0;
}

SEC("raw_tp/sched_process_exit")
int pal_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx->args[0];
	__u32 pid = BPF_CORE_READ(task, pid);
	__u32 tgid = BPF_CORE_READ(task, tgid);
	if (pid == tgid)
		bpf_map_delete_elem(&pal_procs, &tgid);
	/* a failed exec's arguments go with their thread: a later thread of that id never sees them */
	bpf_map_delete_elem(&pal_args, &pid);
	return 0;
}

/* ---- the tracepoint backend: file.open and net.connect ---- */

SEC("tracepoint/syscalls/sys_exit_openat")
int pal_open_exit(struct trace_event_raw_sys_exit *ctx)
{
	/* Also attached to sys_exit_openat2, _open, _creat and _open_by_handle_at: the record
	 * is the same for every syscall exit. The open already happened: the kill lands before
	 * the syscall returns, so the descriptor is never used. */
	long ret = ctx->ret;
	if (ret >= 0)
		pal_hook_open(NULL, ret, 0);
	return 0;
}

static __always_inline int pal_sock(struct bpf_sock_addr *ctx, int v6, int can_kill)
{
	struct pal_dest d = {};
	d.protocol = ctx->protocol;
	d.dport = bpf_ntohs((__u16)ctx->user_port);
	if (!v6) {
		d.family = 4;
		d.addr[0] = ctx->user_ip4;
	} else {
		pal_dest_v6(&d, ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]);
	}
	return pal_hook_connect(&d, 1, can_kill) ? 0 : 1;
}

SEC("cgroup/connect4")
int pal_connect4(struct bpf_sock_addr *ctx) { return pal_sock(ctx, 0, 1); }
SEC("cgroup/connect6")
int pal_connect6(struct bpf_sock_addr *ctx) { return pal_sock(ctx, 1, 1); }
SEC("cgroup/sendmsg4")
int pal_sendmsg4(struct bpf_sock_addr *ctx) { return pal_sock(ctx, 0, 1); }
SEC("cgroup/sendmsg6")
int pal_sendmsg6(struct bpf_sock_addr *ctx) { return pal_sock(ctx, 1, 1); }

/* Kernels whose cgroup hooks may not send signals (6.1): deny only. */
SEC("cgroup/connect4")
int pal_connect4_nokill(struct bpf_sock_addr *ctx) { return pal_sock(ctx, 0, 0); }
SEC("cgroup/connect6")
int pal_connect6_nokill(struct bpf_sock_addr *ctx) { return pal_sock(ctx, 1, 0); }
SEC("cgroup/sendmsg4")
int pal_sendmsg4_nokill(struct bpf_sock_addr *ctx) { return pal_sock(ctx, 0, 0); }
SEC("cgroup/sendmsg6")
int pal_sendmsg6_nokill(struct bpf_sock_addr *ctx) { return pal_sock(ctx, 1, 0); }

/* ---- the hooks' objects, for the LSM, fmod_ret and kprobe backends ---- */

static __always_inline int pal_exec_of(struct linux_binprm *bprm, int can_deny)
{
	struct linux_binprm *b = PAL_CAST(struct linux_binprm, bprm);
	struct file *file = PAL_GET(b, file);
	return pal_hook_exec((struct task_struct *)bpf_get_current_task(), file,
			     PAL_EXEC_DECIDE | (can_deny ? PAL_EXEC_DENY : 0), (__u32)bpf_get_current_pid_tgid());
}

static __always_inline int pal_open_of(struct file *file, int can_deny)
{
	struct file *f = PAL_CAST(struct file, file);
	/* The kernel opening a binary or its ELF interpreter for an exec: that is
	 * process.exec's decision, and the tracepoint backend never sees these opens either. */
	if (!file || (PAL_GET(f, f_mode) & PAL_FMODE_EXEC))
		return 0;
	return pal_hook_open(file, -1, can_deny);
}

static __always_inline __u32 pal_sock_protocol(struct socket *sock)
{
	struct socket *s = PAL_CAST(struct socket, sock);
	struct sock *sk = PAL_CAST(struct sock, PAL_GET(s, sk));
	return sk ? PAL_GET(sk, sk_protocol) : 0;
}

static __always_inline int pal_connect_of(struct socket *sock, struct sockaddr *address, int addrlen, int can_deny)
{
	struct pal_dest d;
	if (!pal_dest_sockaddr(&d, address, addrlen))
		return 0; /* not IPv4 or IPv6 */
	d.protocol = pal_sock_protocol(sock);
	return pal_hook_connect(&d, can_deny, 1);
}

/* A datagram (or a TCP Fast Open SYN) sent to an address named in the call: what the
 * cgroup sendmsg hooks see. Sends on a connected socket were decided at its connect. */
static __always_inline int pal_sendmsg_of(struct socket *sock, struct msghdr *msg, int can_deny)
{
	struct msghdr *m = PAL_CAST(struct msghdr, msg);
	void *name = PAL_GET(m, msg_name);
	int namelen = PAL_GET(m, msg_namelen);
	if (!name)
		return 0;
	__u32 protocol = pal_sock_protocol(sock);
	if (protocol == PAL_IPPROTO_TCP && !(PAL_GET(m, msg_flags) & PAL_MSG_FASTOPEN))
		return 0; /* TCP ignores the address unless it is a Fast Open connect */
	struct pal_dest d;
	if (!pal_dest_sockaddr(&d, name, namelen))
		return 0;
	d.protocol = protocol;
	return pal_hook_connect(&d, can_deny, 1);
}

/* ---- the LSM backend (bpf among the active LSMs) ----
 * `ret` is what BPF programs before this one on the hook decided: never overridden. */

SEC("lsm/bprm_check_security")
int BPF_PROG(pal_lsm_exec, struct linux_binprm *bprm, int ret)
{
	if (ret)
		return ret;
	return pal_exec_of(bprm, 1) ? -EPERM : 0;
}

SEC("lsm/file_open")
int BPF_PROG(pal_lsm_open, struct file *file, int ret)
{
	if (ret)
		return ret;
	return pal_open_of(file, 1) ? -EPERM : 0;
}

SEC("lsm/socket_connect")
int BPF_PROG(pal_lsm_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	if (ret)
		return ret;
	return pal_connect_of(sock, address, addrlen, 1) ? -EPERM : 0;
}

SEC("lsm/socket_sendmsg")
int BPF_PROG(pal_lsm_sendmsg, struct socket *sock, struct msghdr *msg, int size, int ret)
{
	if (ret)
		return ret;
	return pal_sendmsg_of(sock, msg, 1) ? -EPERM : 0;
}

/* ---- the fmod_ret backend (trampolines, bpf not an active LSM) ----
 * A non-zero return skips security_*() and becomes its return value. */

SEC("fmod_ret/security_bprm_check")
int BPF_PROG(pal_fmr_exec, struct linux_binprm *bprm, int ret)
{
	if (ret)
		return ret;
	return pal_exec_of(bprm, 1) ? -EPERM : 0;
}

SEC("fmod_ret/security_file_open")
int BPF_PROG(pal_fmr_open, struct file *file, int ret)
{
	if (ret)
		return ret;
	return pal_open_of(file, 1) ? -EPERM : 0;
}

SEC("fmod_ret/security_socket_connect")
int BPF_PROG(pal_fmr_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	if (ret)
		return ret;
	return pal_connect_of(sock, address, addrlen, 1) ? -EPERM : 0;
}

SEC("fmod_ret/security_socket_sendmsg")
int BPF_PROG(pal_fmr_sendmsg, struct socket *sock, struct msghdr *msg, int size, int ret)
{
	if (ret)
		return ret;
	return pal_sendmsg_of(sock, msg, 1) ? -EPERM : 0;
}

/* ---- the kprobe backend (kprobes only): kill, never deny ---- */

SEC("kprobe/security_bprm_check")
int BPF_KPROBE(pal_kp_exec, struct linux_binprm *bprm)
{
	pal_exec_of(bprm, 0);
	return 0;
}

SEC("kprobe/security_file_open")
int BPF_KPROBE(pal_kp_open, struct file *file)
{
	pal_open_of(file, 0);
	return 0;
}

SEC("kprobe/security_socket_connect")
int BPF_KPROBE(pal_kp_connect, struct socket *sock, struct sockaddr *address, int addrlen)
{
	pal_connect_of(sock, address, addrlen, 0);
	return 0;
}

SEC("kprobe/security_socket_sendmsg")
int BPF_KPROBE(pal_kp_sendmsg, struct socket *sock, struct msghdr *msg, int size)
{
	pal_sendmsg_of(sock, msg, 0);
	return 0;
}
