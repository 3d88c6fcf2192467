// SPDX-License-Identifier: GPL-2.0-only
/*
 * The tracepoint backend, for kernels without BPF LSM or trampolines:
 *   process.exec  raw_tp/sched_process_exec: the binary actually executed (bprm->file);
 *                 kill = SIGKILL before the new image runs a single instruction. No deny.
 *   file.open     tp/syscalls/sys_exit_{openat,openat2,open,creat,open_by_handle_at}:
 *                 the file behind the returned fd; kill = SIGKILL before the syscall
 *                 returns to user space (the process never reads a byte). No deny.
 *   net.connect   cgroup/connect4|6 and cgroup/sendmsg4|6 on the cgroup v2 root:
 *                 deny = a real EPERM; kill = SIGKILL and EPERM.
 * Plus the process table: sched_process_exec/fork/exit keep tgid -> binary, parent.
 * The programs only look things up: the maps decide (common.bpf.h).
 */
#include "common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* ---- process.exec and the process table ---- */

SEC("raw_tp/sched_process_exec")
int pal_exec(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx->args[0];
	struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];
	__u32 slot, seq = 0, gen = pal_active_gen(&seq);
	struct pal_scratch *sc = pal_enter(&slot);
	if (!sc)
		return 0;
	pal_begin(sc, gen & 1, seq, PAL_HOOK_EXEC);

	/* The table entry is kept whatever the rules: other hooks read it. */
	sc->proc.tgid = sc->tgid;
	pal_fill_parent(sc, slot, task);
	struct file *file = BPF_CORE_READ(bprm, file);
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	if (file && fs) {
		pal_walk(sc, slot, BPF_CORE_READ(file, f_path.dentry), BPF_CORE_READ(file, f_path.mnt),
			 BPF_CORE_READ(fs, root.dentry), BPF_CORE_READ(fs, root.mnt));
		if (gen != PAL_NONE)
			pal_apply_alias(sc, file, 0);
	} else {
		pal_walk_none(sc, PAL_PATH_UNRESOLVED);
		pal_count(PAL_C_UNRESOLVED);
	}
	pal_bin_from_walk(sc, &sc->proc.bin);
	__u32 tgid = sc->tgid;
	if (bpf_map_update_elem(&pal_procs, &tgid, &sc->proc, BPF_ANY) < 0)
		pal_count(PAL_C_PROC_FULL);

	struct pal_hook *hk = gen == PAL_NONE ? NULL : pal_hook_of(gen, PAL_HOOK_EXEC);
	if (hk && !pal_hook_idle(hk)) {
		__u32 rank = pal_decide(sc, hk, &sc->proc);
		if (rank != PAL_NONE) {
			__u8 verdict = pal_verdict(sc, rank);
			__u8 what = verdict & PAL_V_MASK;
			/* This backend cannot fail an exec. The encoder refuses deny here (a rule
			 * needs fallback: kill); should one arrive anyway, killing fails closed. */
			if (what == PAL_V_KILL || what == PAL_V_DENY)
				pal_kill(sc);
			pal_emit(sc, &sc->proc, rank, verdict);
		}
	}
	pal_leave(slot);
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
	return 0;
}

/* ---- file.open ---- */

#define PAL_PROC_DIMS 0xffu /* dimension ids 0..7 read the process table */
#define PAL_FILE_DIMS (0x3fu << PAL_DIM_FILE_PATH)

static __always_inline struct file *pal_fd_file(long fd)
{
	struct task_struct *t = PAL_CAST(struct task_struct, bpf_get_current_task());
	struct files_struct *files = t->files;
	if (!files)
		return NULL;
	struct fdtable *fdt = files->fdt;
	if (!fdt)
		return NULL;
	unsigned int max = fdt->max_fds;
	if (fd < 0 || (unsigned long)fd >= max)
		return NULL;
	struct file **fds = fdt->fd;
	struct file *f = NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) < 0)
		return NULL;
	return f;
}

static __always_inline void pal_walk_file(struct pal_scratch *sc, __u32 slot, struct file *f)
{
	if (!f) {
		pal_walk_none(sc, PAL_PATH_UNRESOLVED);
		pal_count(PAL_C_FD_UNREADABLE);
		pal_count(PAL_C_UNRESOLVED);
		sc->file_state = 2;
		return;
	}
	struct task_struct *t = PAL_CAST(struct task_struct, bpf_get_current_task());
	struct fs_struct *fs = t->fs;
	if (!fs) {
		pal_walk_none(sc, PAL_PATH_UNRESOLVED);
		pal_count(PAL_C_UNRESOLVED);
		sc->file_state = 2;
		return;
	}
	struct file *file = PAL_CAST(struct file, f);
	pal_walk(sc, slot, file->f_path.dentry, file->f_path.mnt, fs->root.dentry, fs->root.mnt);
	sc->file_state = 1;
	pal_apply_alias(sc, f, 1);
}

static __always_inline int pal_open(long ret)
{
	if (ret < 0)
		return 0;
	__u32 seq = 0, gen = pal_active_gen(&seq);
	if (gen == PAL_NONE)
		return 0;
	struct pal_hook *hk = pal_hook_of(gen, PAL_HOOK_OPEN);
	if (!hk || pal_hook_idle(hk))
		return 0; /* no file.open rule: the cost is this lookup */
	__u32 slot;
	struct pal_scratch *sc = pal_enter(&slot);
	if (!sc)
		return 0;
	pal_begin(sc, gen, seq, PAL_HOOK_OPEN);
	/* The process first: resolving it lazily reuses the path buffer. */
	struct pal_proc *p = pal_current_proc(sc, slot);
	if (hk->dims & PAL_FILE_DIMS)
		pal_walk_file(sc, slot, pal_fd_file(ret));
	__u32 rank = pal_decide(sc, hk, p);
	if (rank != PAL_NONE) {
		__u8 verdict = pal_verdict(sc, rank);
		__u8 what = verdict & PAL_V_MASK;
		/* The open already happened: the kill lands before the syscall returns, so the
		 * descriptor is never used. Deny is refused by the encoder here (as for exec). */
		if (what == PAL_V_KILL || what == PAL_V_DENY)
			pal_kill(sc);
		if (sc->file_state == 0)
			pal_walk_file(sc, slot, pal_fd_file(ret)); /* for the report */
		pal_emit(sc, p, rank, verdict);
	}
	pal_leave(slot);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int pal_open_exit(struct trace_event_raw_sys_exit *ctx)
{
	/* Also attached to sys_exit_openat2, _open, _creat and _open_by_handle_at:
	 * the record is the same for every syscall exit. */
	return pal_open(ctx->ret);
}

/* ---- net.connect ---- */

static __always_inline int pal_sock(struct bpf_sock_addr *ctx, int v6)
{
	__u32 seq = 0, gen = pal_active_gen(&seq);
	if (gen == PAL_NONE)
		return 1;
	struct pal_hook *hk = pal_hook_of(gen, PAL_HOOK_CONNECT);
	if (!hk || pal_hook_idle(hk))
		return 1;
	__u32 slot;
	struct pal_scratch *sc = pal_enter(&slot);
	if (!sc)
		return 1;
	pal_begin(sc, gen, seq, PAL_HOOK_CONNECT);
	sc->protocol = ctx->protocol;
	sc->dport = bpf_ntohs((__u16)ctx->user_port);
	if (!v6) {
		__u32 a = ctx->user_ip4;
		sc->family = 4;
		__builtin_memcpy(sc->daddr, &a, 4);
	} else {
		__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1];
		__u32 a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
		if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff)) {
			/* ::ffff:a.b.c.d is an IPv4 destination: it must meet the IPv4 rules */
			sc->family = 4;
			__builtin_memcpy(sc->daddr, &a3, 4);
			sc->ev_flags |= PAL_EV_MAPPED_V4;
		} else {
			sc->family = 6;
			__builtin_memcpy(sc->daddr, &a0, 4);
			__builtin_memcpy(sc->daddr + 4, &a1, 4);
			__builtin_memcpy(sc->daddr + 8, &a2, 4);
			__builtin_memcpy(sc->daddr + 12, &a3, 4);
		}
	}
	struct pal_proc *p = pal_current_proc(sc, slot);
	int allow = 1;
	__u32 rank = pal_decide(sc, hk, p);
	if (rank != PAL_NONE) {
		__u8 verdict = pal_verdict(sc, rank);
		__u8 what = verdict & PAL_V_MASK;
		if (what == PAL_V_KILL) {
			pal_kill(sc);
			allow = 0;
		} else if (what == PAL_V_DENY) {
			sc->ev_flags |= PAL_EV_ACTED;
			pal_count(PAL_C_DENIES);
			allow = 0;
		}
		pal_emit(sc, p, rank, verdict);
	}
	pal_leave(slot);
	return allow;
}

SEC("cgroup/connect4")
int pal_connect4(struct bpf_sock_addr *ctx)
{
	return pal_sock(ctx, 0);
}

SEC("cgroup/connect6")
int pal_connect6(struct bpf_sock_addr *ctx)
{
	return pal_sock(ctx, 1);
}

SEC("cgroup/sendmsg4")
int pal_sendmsg4(struct bpf_sock_addr *ctx)
{
	return pal_sock(ctx, 0);
}

SEC("cgroup/sendmsg6")
int pal_sendmsg6(struct bpf_sock_addr *ctx)
{
	return pal_sock(ctx, 1);
}
