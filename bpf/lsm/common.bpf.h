/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What every Palisade BPF program shares: the maps of the kernel ABI (abi.h), path
 * resolution, key building and the decision. The decision is map lookups only: one per
 * active dimension, then a fixed amount of mask work. Nothing here loops over rules.
 */
#ifndef PALISADE_COMMON_BPF_H
#define PALISADE_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "abi.h"

#define SIGKILL 9

/* Reads through kernel pointers: PAL_GET(PAL_CAST(type, p), field).
 * By default they are direct loads through bpf_rdonly_cast (the verifier makes them
 * fault-safe), far cheaper than one bpf_probe_read_kernel() call per field. Kernels
 * before 6.2 have no bpf_rdonly_cast: the same source is also built with PAL_COMPAT
 * (enforcer.compat.bpf.o), where every field read is a CO-RE bpf_probe_read_kernel().
 * The agent loads the fast object and falls back to the compatible one when this kernel
 * refuses it (src/enforcer/index.ts). Both decide identically. */
#ifdef PAL_COMPAT
#define PAL_CAST(type, p) ((type *)(p))
#define PAL_GET(p, field) BPF_CORE_READ(p, field)
#else
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define PAL_CAST(type, p) ((type *)bpf_rdonly_cast((const void *)(p), bpf_core_type_id_kernel(type)))
#define PAL_GET(p, field) ((p)->field)
#endif

/* ---- maps (the ABI; user space pins them under /sys/fs/bpf/palisade) ---- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_config);
} pal_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PAL_GENS * PAL_HOOKS);
	__type(key, __u32);
	__type(value, struct pal_hook);
} pal_hooks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PAL_GENS * PAL_MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct pal_class);
} pal_classes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PAL_GENS * PAL_HOOKS * PAL_MAX_BITS);
	__type(key, __u32);
	__type(value, __u32);
} pal_bit_ranks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PAL_GENS * PAL_HOOKS * PAL_MAX_RANKS);
	__type(key, __u32);
	__type(value, __u8);
} pal_verdicts SEC(".maps");

struct pal_str_trie {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PAL_MAX_LPM_ENTRIES);
	/* sizes, not types: clang emits only a forward declaration for the inner key type */
	__uint(key_size, sizeof(struct pal_str_key));
	__uint(value_size, sizeof(__u32));
};

/* Outer array: user space puts one inner trie per (gen, hook, string dim) in it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, PAL_GENS * PAL_HOOKS * PAL_STR_DIMS);
	__type(key, __u32);
	__array(values, struct pal_str_trie);
} pal_str SEC(".maps");

/* Never read by programs: user space updates it to wait for every running program to
 * finish (the kernel does that on each map-in-map update from user space). */
struct pal_barrier_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct pal_barrier_inner);
} pal_barrier SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PAL_MAX_LPM_ENTRIES);
	__type(key, struct pal_int_key);
	__type(value, __u32);
} pal_int SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PAL_MAX_LPM_ENTRIES);
	__type(key, struct pal_addr_key);
	__type(value, __u32);
} pal_addr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct pal_workload_key);
	__type(value, __u32);
} pal_workloads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct pal_proc);
} pal_procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct pal_inode_key);
	__type(value, struct pal_alias);
} pal_inodes SEC(".maps");

/* Arguments of execs in progress, by thread id: written at syscall entry, read when the
 * exec is decided, deleted once it happened (failed execs are overwritten or evicted). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct pal_args);
} pal_args SEC(".maps");

/* Events for the agent. Its size here is the object's own; the agent sets it before loading
 * (DEFAULT_EVENT_BUFFER_BYTES in src/enforcer/index.ts, 16 MiB). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} pal_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PAL_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} pal_counters SEC(".maps");

/* ---- per-CPU scratch ----
 * Programs of different types (raw tracepoint, syscall tracepoint, cgroup) can preempt
 * one another on a CPU, so the scratch space is a few slots claimed with an atomic
 * bitmap rather than one shared buffer. */

#define PAL_BUF_HEAD PAL_STR_BYTES                /* margin: suffix reads never go below 0 */
#define PAL_PATH_END (PAL_BUF_HEAD + PAL_PATH_MAX) /* paths are built backwards, ending here */
#define PAL_BUF_SIZE (PAL_PATH_END + PAL_STR_BYTES) /* tail: always zero, NUL padding for keys */

struct pal_scratch {
	__u8 buf[PAL_BUF_SIZE];
	__u64 acc[PAL_MAX_BIT_WORDS];
	__u64 tmp[PAL_STR_BYTES / 8];
	/* a string key lives at keyw + 4 so that its data is 8-byte aligned */
	__u64 keyw[(8 + PAL_STR_BYTES) / 8];
	struct pal_int_key ikey;
	struct pal_addr_key akey;
	struct pal_workload_key wkey;
	/* the walk's result: the path is buf[w_start, PAL_PATH_END) */
	__u32 w_start;
	__u32 w_len;
	__u32 w_name_len;
	__u32 w_flags;
	/* the event being decided */
	__u32 gen;
	__u32 hook;
	__u32 best;
	__u32 bit_words;
	__u32 tgid;
	__u32 pid;
	__u32 uid;
	__u32 gid;
	__u32 family; /* 4 or 6 */
	__u32 protocol;
	__u32 dport;
	__u32 ev_flags;
	__u32 seq;
	__u32 pad2;
	__u64 cgroup_id;
	__u64 workload_id; /* valid once workload_state is 1 */
	__u32 workload_state; /* 0: not looked up yet, 1: looked up */
	__u32 workload_class;
	__u8 daddr[16];
	__u32 args_tid;   /* process.exec: the thread whose pal_args entry holds the arguments */
	__u32 pad4;
	struct pal_args args;
	__u32 file_state; /* 0: not walked, 1: walked (w_* describe the file), 2: no file */
	__u32 aliased;    /* w_* describe a pal_inodes name; ev->path holds the opened path */
	__u64 ino;
	__u32 dev;
	__u32 pad3;
	struct pal_inode_key inokey;
	struct pal_proc proc;
	struct pal_event ev;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PAL_SCRATCH_SLOTS);
	__type(key, __u32);
	__type(value, struct pal_scratch);
} pal_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pal_slots SEC(".maps");

static __always_inline void pal_count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&pal_counters, &which);
	if (c)
		*c += 1; /* per-CPU: no atomic needed */
}

static __always_inline struct pal_scratch *pal_enter(__u32 *slot)
{
	__u32 zero = 0;
	__u64 *busy = bpf_map_lookup_elem(&pal_slots, &zero);
	if (!busy)
		return NULL;
	for (__u32 i = 0; i < PAL_SCRATCH_SLOTS; i++) {
		__u64 bit = 1ULL << i;
		__u64 old = __sync_fetch_and_or(busy, bit);
		if (!(old & bit)) {
			struct pal_scratch *sc = bpf_map_lookup_elem(&pal_scratch, &i);
			if (!sc) {
				__sync_fetch_and_and(busy, ~bit);
				return NULL;
			}
			*slot = i;
			return sc;
		}
	}
	pal_count(PAL_C_SCRATCH_BUSY);
	return NULL;
}

static __always_inline void pal_leave(__u32 slot)
{
	__u32 zero = 0;
	__u64 *busy = bpf_map_lookup_elem(&pal_slots, &zero);
	if (busy)
		__sync_fetch_and_and(busy, ~(1ULL << (slot & 63)));
}

/* ---- configuration ---- */

static __always_inline struct pal_hook *pal_hook_of(__u32 gen, __u32 hook)
{
	__u32 idx = (gen & 1) * PAL_HOOKS + hook;
	return bpf_map_lookup_elem(&pal_hooks, &idx);
}

/* The active generation, read once per event; PAL_NONE when not configured. *seq tells
 * user space which plan that generation held (for reporting only: decisions use gen). */
static __always_inline __u32 pal_active_gen(__u32 *seq)
{
	__u32 zero = 0;
	struct pal_config *cfg = bpf_map_lookup_elem(&pal_config, &zero);
	if (!cfg)
		return PAL_NONE;
	*seq = (__u32)cfg->flips;
	return cfg->active_gen & 1;
}

static __always_inline int pal_hook_idle(struct pal_hook *hk)
{
	return hk->dims == 0 && hk->always_rank == PAL_NONE;
}

/* ---- paths ----
 * A path is resolved the way d_path() does it: from the dentry up through d_parent,
 * crossing mounts at their roots to the mountpoint in the parent mount, until the
 * task's root (fs->root) is reached. The result is the path as that process sees it:
 * symlinks, "..", relative names and /proc/self/fd re-opens never appear, because the
 * kernel already resolved them to this dentry. */

struct pal_walk_state {
	__u64 d;      /* struct dentry * */
	__u64 m;      /* struct vfsmount * */
	__u64 root_d;
	__u64 root_m;
	__u32 slot;   /* scratch slot holding the buffer */
	__u32 pos;
	__u32 name_len;
	__u32 flags;
	__u32 first;
	__u32 done;
};

/* One step of the walk (a bpf_loop callback: verified once, whatever the depth). */
static long pal_walk_step(__u32 index, void *ctx)
{
	struct pal_walk_state *w = ctx;
	__u32 slot = w->slot;
	struct pal_scratch *sc = bpf_map_lookup_elem(&pal_scratch, &slot);

	if (!sc || !w->d || !w->m)
		return 1;
	if (w->d == w->root_d && w->m == w->root_m) {
		w->done = 1;
		return 1;
	}
	struct dentry *d = PAL_CAST(struct dentry, w->d);
	struct vfsmount *m = PAL_CAST(struct vfsmount, w->m);
	if (w->d == (__u64)PAL_GET(m, mnt_root)) {
		__u64 mnt_addr = w->m - bpf_core_field_offset(struct mount, mnt);
		struct mount *mnt = PAL_CAST(struct mount, mnt_addr);
		__u64 parent = (__u64)PAL_GET(mnt, mnt_parent);
		if (!parent || parent == mnt_addr) {
			/* the root of a mount tree that is not ours (pseudo fs, another namespace) */
			w->flags |= PAL_PATH_DETACHED;
			w->done = 1;
			return 1;
		}
		w->d = (__u64)PAL_GET(mnt, mnt_mountpoint);
		w->m = parent + bpf_core_field_offset(struct mount, mnt);
		return 0;
	}
	__u64 parent_d = (__u64)PAL_GET(d, d_parent);
	__u32 len = PAL_GET(d, d_name.len);
	const unsigned char *name = PAL_GET(d, d_name.name);
	if (len > 255)
		return 1;
	__u32 np = w->pos - len - 1;
	if ((__s32)np < PAL_BUF_HEAD || np > PAL_PATH_END)
		return 1; /* longer than PATH_MAX */
	/* Keeps the compiler from addressing the buffer with a copy of np taken before the
	 * check (older verifiers, such as 6.1's, do not carry the bound over to it). */
	barrier_var(np);
	if (bpf_probe_read_kernel(&sc->buf[np + 1], len & 0xff, name) < 0)
		return 1;
	sc->buf[np] = '/';
	if (w->first) {
		w->name_len = len;
		w->first = 0;
	}
	w->pos = np;
	if (parent_d == w->d || !parent_d) {
		/* a pseudo dentry (pipe, memfd, anon inode): its own root */
		w->flags |= PAL_PATH_DETACHED;
		w->done = 1;
		return 1;
	}
	w->d = parent_d;
	return 0;
}

/* Walks (d, m) up to (root_d, root_m), building the path at the end of the slot's buffer
 * (sc must be that slot's scratch). Too deep or too long: PAL_PATH_UNRESOLVED. */
static __always_inline int pal_walk(struct pal_scratch *sc, __u32 slot, struct dentry *d, struct vfsmount *m,
				    struct dentry *root_d, struct vfsmount *root_m)
{
	struct pal_walk_state w = {
		.d = (__u64)d, .m = (__u64)m, .root_d = (__u64)root_d, .root_m = (__u64)root_m,
		.slot = slot, .pos = PAL_PATH_END, .first = 1,
	};
	bpf_loop(PAL_MAX_DEPTH, pal_walk_step, &w, 0);
	__u32 flags = w.flags;
	__u32 pos = w.pos;
	if (!w.done) {
		flags |= PAL_PATH_UNRESOLVED;
		pal_count(PAL_C_UNRESOLVED);
	}
	if (pos >= PAL_PATH_END || pos < PAL_BUF_HEAD) {
		sc->buf[PAL_PATH_END - 1] = '/';
		pos = PAL_PATH_END - 1;
	}
	sc->w_start = pos;
	sc->w_len = PAL_PATH_END - pos;
	sc->w_name_len = w.name_len;
	sc->w_flags = flags;
	return flags;
}

static __always_inline void pal_walk_none(struct pal_scratch *sc, __u32 flags)
{
	sc->w_start = PAL_PATH_END;
	sc->w_len = 0;
	sc->w_name_len = 0;
	sc->w_flags = flags;
}

/* The executable of task t, relative to t's root. */
static __always_inline int pal_walk_exe(struct pal_scratch *sc, __u32 slot, struct task_struct *task)
{
	struct task_struct *t = PAL_CAST(struct task_struct, task);
	struct mm_struct *mm = PAL_CAST(struct mm_struct, PAL_GET(t, mm));
	if (!mm) {
		pal_walk_none(sc, PAL_PATH_NONE); /* kernel thread: the value is "" */
		return 0;
	}
	struct file *exe = PAL_CAST(struct file, PAL_GET(mm, exe_file));
	if (!exe) {
		pal_walk_none(sc, PAL_PATH_NONE);
		return 0;
	}
	struct fs_struct *fs = PAL_CAST(struct fs_struct, PAL_GET(t, fs));
	if (!fs) {
		pal_walk_none(sc, PAL_PATH_UNRESOLVED);
		pal_count(PAL_C_UNRESOLVED);
		return 0;
	}
	return pal_walk(sc, slot, PAL_GET(exe, f_path.dentry), PAL_GET(exe, f_path.mnt), PAL_GET(fs, root.dentry),
			PAL_GET(fs, root.mnt));
}

static __always_inline __u32 pal_clamp_pos(__u32 pos)
{
	return pos > PAL_PATH_END ? PAL_PATH_END : pos;
}

/* If the walked file's inode is one a rule names exactly, decide it under that name:
 * a hard link does not bypass an exact-path rule. With keep_opened, the opened path is
 * saved in the event first (file.open reports both). */
static __always_inline void pal_apply_alias(struct pal_scratch *sc, struct file *f, int keep_opened)
{
	struct file *file = PAL_CAST(struct file, f);
	struct inode *inode = PAL_CAST(struct inode, PAL_GET(file, f_inode));
	if (!inode)
		return;
	struct super_block *sb = PAL_CAST(struct super_block, PAL_GET(inode, i_sb));
	struct pal_inode_key *k = &sc->inokey;
	k->ino = PAL_GET(inode, i_ino);
	k->dev = sb ? PAL_GET(sb, s_dev) : 0;
	k->gen = sc->gen & 1;
	k->pad[0] = k->pad[1] = k->pad[2] = 0;
	sc->ino = k->ino;
	sc->dev = k->dev;
	struct pal_alias *a = bpf_map_lookup_elem(&pal_inodes, k);
	if (!a)
		return;
	__u32 len = a->len, name_len = a->name_len;
	if (len == 0 || len >= PAL_STR_BYTES || name_len > len)
		return;
	if (keep_opened) {
		__u32 n = sc->w_len;
		if (n > PAL_PATH_MAX)
			n = PAL_PATH_MAX;
		bpf_probe_read_kernel(sc->ev.path, n, &sc->buf[pal_clamp_pos(sc->w_start)]);
		sc->ev.path_len = n;
		sc->ev.path_flags = sc->w_flags;
		sc->aliased = 1;
	}
	bpf_probe_read_kernel(&sc->buf[PAL_PATH_END - len], len, a->path);
	sc->w_start = PAL_PATH_END - len;
	sc->w_len = len;
	sc->w_name_len = name_len;
	sc->w_flags = (sc->w_flags & ~PAL_PATH_UNRESOLVED) | PAL_PATH_ALIAS;
}

/* ---- keys (byte-for-byte src/plan/keys.ts) ---- */

/* Keeps the first n bytes of a 256-byte key, zeroing the rest: one copy from the buffer's
 * tail, which is always zero. (The verifier checks the bound against the whole scratch
 * value; at run time the copy ends exactly at the key's end.) */
static __always_inline void pal_mask(struct pal_scratch *sc, __u64 *w, __u32 n)
{
	if (n >= PAL_STR_BYTES)
		return;
	n &= 0xff;
	bpf_probe_read_kernel((__u8 *)w + n, PAL_STR_BYTES - n, &sc->buf[PAL_PATH_END]);
}

/* prefixKey of buf[start, start + n): buf is zero after PAL_PATH_END, so only strings
 * that end before it need masking. */
static __always_inline void pal_prefix(struct pal_scratch *sc, __u64 *dst, __u32 start, __u32 n, int mask)
{
	start = pal_clamp_pos(start);
	bpf_probe_read_kernel(dst, PAL_STR_BYTES, &sc->buf[start]);
	if (mask)
		pal_mask(sc, dst, n);
}

/* suffixKey of the n bytes ending at buf[end]: the last 256 reversed, NUL padded. */
static __always_inline void pal_suffix(struct pal_scratch *sc, __u64 *dst, __u32 end, __u32 n)
{
	end = pal_clamp_pos(end);
	if (end < PAL_BUF_HEAD)
		end = PAL_BUF_HEAD;
	bpf_probe_read_kernel(sc->tmp, PAL_STR_BYTES, &sc->buf[end - PAL_STR_BYTES]);
	for (int i = 0; i < PAL_STR_BYTES / 8; i++)
		dst[i] = __builtin_bswap64(sc->tmp[PAL_STR_BYTES / 8 - 1 - i]);
	pal_mask(sc, dst, n);
}

/* Fills b from the last walk. */
static __always_inline void pal_bin_from_walk(struct pal_scratch *sc, struct pal_bin *b)
{
	__u32 start = sc->w_start, len = sc->w_len, name_len = sc->w_name_len;
	b->len = len;
	b->flags = sc->w_flags;
	b->name_len = name_len;
	b->pad = 0;
	pal_prefix(sc, (__u64 *)b->prefix, start, len, 0);
	pal_suffix(sc, (__u64 *)b->suffix, PAL_PATH_END, len);
	pal_prefix(sc, (__u64 *)b->name, PAL_PATH_END - (name_len & 0x1ff), name_len, 0);
}

static __always_inline struct pal_str_key *pal_str_key(struct pal_scratch *sc)
{
	return (struct pal_str_key *)((__u8 *)sc->keyw + 4);
}

static __always_inline __u64 *pal_str_data(struct pal_scratch *sc)
{
	return &sc->keyw[1];
}

/* Key data for a string dimension of a resolved binary. Returns 0 when unknown. */
static __always_inline int pal_bin_key(struct pal_scratch *sc, struct pal_bin *b, __u32 d)
{
	__u64 *data = pal_str_data(sc);
	if (b->flags & PAL_PATH_UNRESOLVED)
		return 0;
	switch (d & 3) {
	case 0: /* path prefix */
		__builtin_memcpy(data, b->prefix, PAL_STR_BYTES);
		break;
	case 1: /* path suffix */
		__builtin_memcpy(data, b->suffix, PAL_STR_BYTES);
		break;
	case 2: /* name prefix */
		__builtin_memcpy(data, b->name, PAL_STR_BYTES);
		break;
	default: /* name suffix: the path's reversed tail cut at the name */
		__builtin_memcpy(data, b->suffix, PAL_STR_BYTES);
		pal_mask(sc, data, b->name_len);
		break;
	}
	return 1;
}

/* Key data for file.path / file.name / file.dir from the walk in sc (file_state == 1). */
static __always_inline int pal_file_key(struct pal_scratch *sc, __u32 d)
{
	__u64 *data = pal_str_data(sc);
	__u32 start = sc->w_start, len = sc->w_len, name_len = sc->w_name_len;
	if (sc->file_state != 1 || (sc->w_flags & PAL_PATH_UNRESOLVED))
		return 0;
	switch (d) {
	case PAL_DIM_FILE_PATH:
		pal_prefix(sc, data, start, len, 0);
		break;
	case PAL_DIM_FILE_PATH + 1:
		pal_suffix(sc, data, PAL_PATH_END, len);
		break;
	case PAL_DIM_FILE_NAME:
		pal_prefix(sc, data, PAL_PATH_END - (name_len & 0x1ff), name_len, 0);
		break;
	case PAL_DIM_FILE_NAME + 1:
		pal_suffix(sc, data, PAL_PATH_END, name_len);
		break;
	default: {
		/* file.dir: the path without "/name"; "/" when that is empty */
		__u32 dir_len = len > name_len + 1 ? len - name_len - 1 : 0;
		if (dir_len == 0) {
			for (int i = 0; i < PAL_STR_BYTES / 8; i++)
				data[i] = 0;
			data[0] = '/';
		} else if (d == PAL_DIM_FILE_DIR) {
			pal_prefix(sc, data, start, dir_len, 1);
		} else {
			pal_suffix(sc, data, start + dir_len, dir_len);
		}
	}
	}
	return 1;
}

/* ---- the decision ---- */

/* The workload of the current task for this event's generation and hook: the class of its
 * own cgroup or of its nearest ancestor with a pal_workloads entry (PAL_WORKLOAD_DEPTH levels
 * up at most), or PAL_NONE; sc->workload_id names the cgroup that matched. Looked up once per
 * event (the decision and the report share it). Cost for a process in no classified cgroup:
 * one hash lookup per level up to the root's children (a host process of a systemd machine
 * sits 2 to 4 levels down), plus three pointer reads for its level; paid only by hooks whose
 * rules are scoped to workloads, and by events. */
__noinline __u32 pal_workload_class(__u32 slot)
{
	struct pal_scratch *sc = bpf_map_lookup_elem(&pal_scratch, &slot);
	if (!sc)
		return PAL_NONE;
	if (sc->workload_state)
		return sc->workload_class;
	sc->workload_state = 1;
	sc->workload_id = 0;
	sc->workload_class = PAL_NONE;
	struct pal_workload_key *k = &sc->wkey;
	k->cgroup_id = sc->cgroup_id;
	k->gen = sc->gen & 1;
	k->hook = sc->hook;
	__builtin_memset(k->pad, 0, sizeof(k->pad));
	__u32 *hit = bpf_map_lookup_elem(&pal_workloads, k);
	if (!hit) {
		struct task_struct *t = PAL_CAST(struct task_struct, bpf_get_current_task());
		struct css_set *cs = PAL_CAST(struct css_set, PAL_GET(t, cgroups));
		if (!cs)
			return PAL_NONE;
		struct cgroup *cg = PAL_CAST(struct cgroup, PAL_GET(cs, dfl_cgrp));
		if (!cg)
			return PAL_NONE;
		int level = PAL_GET(cg, level);
		/* level 0 is the root cgroup, never a workload */
		for (int up = 1; up <= PAL_WORKLOAD_DEPTH && !hit; up++) {
			if (level - up < 1)
				break;
			k->cgroup_id = bpf_get_current_ancestor_cgroup_id(level - up);
			hit = bpf_map_lookup_elem(&pal_workloads, k);
		}
		if (!hit)
			return PAL_NONE;
	}
	sc->workload_id = k->cgroup_id;
	sc->workload_class = *hit;
	return *hit;
}

/* Class id (within the generation) of dimension d for this event, whose scratch is in
 * `slot`. A global function: the verifier checks it once, not once per dimension and call
 * site. It takes the slot rather than the scratch pointer because older verifiers (6.1)
 * accept map keys only in map values and on the stack, and a global function's pointer
 * argument is neither. */
__noinline __u32 pal_class_of(__u32 slot, struct pal_proc *p, __u32 d)
{
	struct pal_scratch *sc = bpf_map_lookup_elem(&pal_scratch, &slot);
	if (!sc || d >= PAL_DIMS)
		return PAL_NONE;
	struct pal_hook *hk = pal_hook_of(sc->gen, sc->hook);
	if (!hk)
		return PAL_NONE;
	__u32 gen = sc->gen & 1, hook = sc->hook;
	__u32 *hit = NULL;

	if (d < PAL_STR_DIMS) {
		int known;
		if (d < PAL_DIM_PARENT_BINARY)
			known = p ? pal_bin_key(sc, &p->bin, d) : 0;
		else if (d < PAL_DIM_FILE_PATH)
			known = p ? pal_bin_key(sc, &p->parent, d) : 0;
		else
			known = pal_file_key(sc, d);
		if (!known)
			return hk->unknown_class[d];
		__u32 idx = (gen * PAL_HOOKS + hook) * PAL_STR_DIMS + d;
		void *trie = bpf_map_lookup_elem(&pal_str, &idx);
		if (!trie)
			return hk->default_class[d];
		struct pal_str_key *key = pal_str_key(sc);
		key->prefixlen = PAL_STR_BYTES * 8;
		hit = bpf_map_lookup_elem(trie, key);
	} else if (d < PAL_DIM_DADDR) {
		__u32 v;
		switch (d) {
		case PAL_DIM_UID: v = sc->uid; break;
		case PAL_DIM_GID: v = sc->gid; break;
		case PAL_DIM_PID: v = sc->tgid; break;
		case PAL_DIM_DPORT: v = sc->dport; break;
		case PAL_DIM_FAMILY: v = sc->family == 6 ? 10 : sc->family == 4 ? 2 : 0; break;
		default: v = sc->protocol; break;
		}
		struct pal_int_key *k = &sc->ikey;
		k->prefixlen = PAL_INT_HEADER_BITS + 32;
		k->gen = gen;
		k->hook = hook;
		k->dim = d;
		k->pad = 0;
		v = bpf_htonl(v);
		__builtin_memcpy(k->value, &v, 4);
		hit = bpf_map_lookup_elem(&pal_int, k);
	} else if (d == PAL_DIM_DADDR) {
		struct pal_addr_key *k = &sc->akey;
		k->prefixlen = PAL_INT_HEADER_BITS + 8 + 128;
		k->gen = gen;
		k->hook = hook;
		k->dim = d;
		k->family = sc->family;
		__builtin_memcpy(k->addr, sc->daddr, 16);
		hit = bpf_map_lookup_elem(&pal_addr, k);
	} else {
		__u32 cls = pal_workload_class(slot);
		return cls != PAL_NONE ? cls : hk->default_class[d];
	}
	return hit ? *hit : hk->default_class[d];
}

__noinline int pal_apply_class(struct pal_scratch *sc, __u32 cls)
{
	if (!sc)
		return 0;
	if (cls >= PAL_MAX_CLASSES) {
		pal_count(PAL_C_CLASS_MISSING);
		return 0;
	}
	__u32 idx = (sc->gen & 1) * PAL_MAX_CLASSES + cls;
	struct pal_class *c = bpf_map_lookup_elem(&pal_classes, &idx);
	if (!c) {
		pal_count(PAL_C_CLASS_MISSING);
		return 0;
	}
	if (c->best_single < sc->best)
		sc->best = c->best_single;
	for (int w = 0; w < PAL_MAX_BIT_WORDS; w++) {
		if (w >= sc->bit_words)
			break;
		sc->acc[w] &= c->bits[w];
	}
	return 0;
}

/* Index of the lowest set bit of x (x != 0). */
static __always_inline __u32 pal_ctz64(__u64 x)
{
	__u32 n = 0;
	x &= -x;
	if (x & 0xffffffff00000000ULL) n += 32;
	if (x & 0xffff0000ffff0000ULL) n += 16;
	if (x & 0xff00ff00ff00ff00ULL) n += 8;
	if (x & 0xf0f0f0f0f0f0f0f0ULL) n += 4;
	if (x & 0xccccccccccccccccULL) n += 2;
	if (x & 0xaaaaaaaaaaaaaaaaULL) n += 1;
	return n;
}

/* The winning rank for the event described by sc (and p), or PAL_NONE. */
static __always_inline __u32 pal_decide(struct pal_scratch *sc, __u32 slot, struct pal_hook *hk, struct pal_proc *p)
{
	__u32 dims = hk->dims;
	__u32 bw = hk->bit_words;
	if (bw > PAL_MAX_BIT_WORDS)
		bw = PAL_MAX_BIT_WORDS;
	sc->best = hk->always_rank;
	sc->bit_words = bw;
	for (int w = 0; w < PAL_MAX_BIT_WORDS; w++)
		sc->acc[w] = ~0ULL;
	pal_count(PAL_C_DECISIONS);
	for (__u32 d = 0; d < PAL_DIMS; d++) {
		if (!(dims & (1u << d)))
			continue;
		pal_apply_class(sc, pal_class_of(slot, p, d));
	}
	for (int w = 0; w < PAL_MAX_BIT_WORDS; w++) {
		if (w >= bw)
			break;
		__u64 x = sc->acc[w];
		if (!x)
			continue;
		__u32 idx = ((sc->gen & 1) * PAL_HOOKS + sc->hook) * PAL_MAX_BITS + w * 64 + pal_ctz64(x);
		__u32 *rank = bpf_map_lookup_elem(&pal_bit_ranks, &idx);
		if (rank && *rank < sc->best)
			sc->best = *rank;
		break;
	}
	return sc->best;
}

static __always_inline __u8 pal_verdict(struct pal_scratch *sc, __u32 rank)
{
	if (rank >= PAL_MAX_RANKS)
		return PAL_V_NONE;
	__u32 idx = ((sc->gen & 1) * PAL_HOOKS + sc->hook) * PAL_MAX_RANKS + rank;
	__u8 *v = bpf_map_lookup_elem(&pal_verdicts, &idx);
	return v ? *v : PAL_V_NONE;
}

/* ---- the process ---- */

static __always_inline void pal_begin(struct pal_scratch *sc, __u32 gen, __u32 seq, __u32 hook)
{
	__u64 pt = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();
	sc->gen = gen;
	sc->seq = seq;
	sc->hook = hook;
	sc->tgid = pt >> 32;
	sc->pid = (__u32)pt;
	sc->uid = (__u32)ug;
	sc->gid = ug >> 32;
	sc->cgroup_id = bpf_get_current_cgroup_id();
	sc->workload_state = 0;
	sc->family = 0;
	sc->protocol = 0;
	sc->dport = 0;
	sc->ev_flags = 0;
	sc->file_state = 0;
	sc->aliased = 0;
	sc->ino = 0;
	sc->dev = 0;
	__builtin_memset(sc->daddr, 0, 16);
}

/* Fills sc->proc.parent with the binary of t's real parent. Clobbers sc->buf. */
static __always_inline void pal_fill_parent(struct pal_scratch *sc, __u32 slot, struct task_struct *t)
{
	struct task_struct *parent = BPF_CORE_READ(t, real_parent);
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	sc->proc.ppid = ptgid;
	struct pal_proc *pp = bpf_map_lookup_elem(&pal_procs, &ptgid);
	if (pp) {
		bpf_probe_read_kernel(&sc->proc.parent, sizeof(struct pal_bin), &pp->bin);
	} else {
		pal_walk_exe(sc, slot, parent);
		pal_bin_from_walk(sc, &sc->proc.parent);
	}
}

/* Process info of the current task: the map entry, or resolved now (and stored) for a
 * process that started before the agent. Clobbers sc->buf when it resolves. */
static __always_inline struct pal_proc *pal_current_proc(struct pal_scratch *sc, __u32 slot)
{
	__u32 tgid = sc->tgid;
	struct pal_proc *p = bpf_map_lookup_elem(&pal_procs, &tgid);
	if (p)
		return p;
	pal_count(PAL_C_PROC_LAZY);
	sc->ev_flags |= PAL_EV_PROC_LAZY;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	sc->proc.tgid = tgid;
	pal_fill_parent(sc, slot, t);
	pal_walk_exe(sc, slot, t);
	pal_bin_from_walk(sc, &sc->proc.bin);
	if (bpf_map_update_elem(&pal_procs, &tgid, &sc->proc, BPF_NOEXIST) < 0)
		pal_count(PAL_C_PROC_FULL);
	return &sc->proc;
}

/* ---- acting and reporting ---- */

static __always_inline void pal_event_path(struct pal_event_path *dst, struct pal_bin *b)
{
	dst->len = b->len;
	dst->flags = b->flags;
	bpf_probe_read_kernel(dst->prefix, PAL_STR_BYTES, b->prefix);
	bpf_probe_read_kernel(dst->suffix, PAL_STR_BYTES, b->suffix);
}

/* Writes the event record; the file path (if walked) comes from sc->buf. */
static __always_inline void pal_emit(struct pal_scratch *sc, __u32 slot, struct pal_proc *p, __u32 rank, __u8 verdict)
{
	struct pal_event *ev = &sc->ev;
	pal_workload_class(slot); /* names the workload in the report */
	ev->workload_id = sc->workload_id;
	ev->abi_version = PAL_ABI_VERSION;
	ev->gen = sc->gen;
	ev->hook = sc->hook;
	ev->verdict = verdict;
	ev->pad0 = 0;
	ev->rank = rank;
	ev->flags = sc->ev_flags;
	ev->seq = sc->seq;
	ev->ktime = bpf_ktime_get_boot_ns();
	ev->cgroup_id = sc->cgroup_id;
	ev->pid = sc->pid;
	ev->tgid = sc->tgid;
	ev->uid = sc->uid;
	ev->gid = sc->gid;
	ev->family = sc->family;
	ev->protocol = sc->protocol;
	ev->dport = sc->dport;
	__builtin_memcpy(ev->daddr, sc->daddr, 16);
	if (p) {
		ev->ppid = p->ppid;
		pal_event_path(&ev->binary, &p->bin);
		pal_event_path(&ev->parent, &p->parent);
	} else {
		ev->ppid = 0;
		ev->binary.len = 0;
		ev->binary.flags = PAL_PATH_UNRESOLVED;
		ev->parent.len = 0;
		ev->parent.flags = PAL_PATH_UNRESOLVED;
	}
	__u32 n = 0;
	ev->ino = sc->ino;
	ev->dev = sc->dev;
	ev->alias_len = 0;
	if (sc->file_state == 1 && sc->aliased) {
		/* ev->path already holds the opened path; the decision's name is in buf */
		__u32 len = sc->w_len & 0xff;
		ev->alias_len = len;
		bpf_probe_read_kernel(ev->alias, len, &sc->buf[pal_clamp_pos(sc->w_start)]);
		ev->path_flags |= PAL_PATH_ALIAS;
		n = ev->path_len;
		if (n > PAL_PATH_MAX)
			n = PAL_PATH_MAX;
	} else if (sc->file_state == 1) {
		n = sc->w_len;
		if (n > PAL_PATH_MAX)
			n = PAL_PATH_MAX;
		bpf_probe_read_kernel(ev->path, n, &sc->buf[pal_clamp_pos(sc->w_start)]);
		ev->path_flags = sc->w_flags;
	} else if (sc->hook == PAL_HOOK_EXEC) {
		__u32 tid = sc->args_tid;
		struct pal_args *a = bpf_map_lookup_elem(&pal_args, &tid);
		if (a) {
			n = a->len;
			if (n > PAL_ARGS_MAX)
				n = PAL_ARGS_MAX;
			bpf_probe_read_kernel(ev->args, n, a->data);
			ev->path_flags = a->flags;
		} else {
			ev->path_flags = PAL_ARGS_UNREAD;
		}
	} else {
		ev->path_flags = sc->file_state == 2 ? PAL_PATH_UNRESOLVED : 0;
	}
	ev->path_len = n;
	__u32 size = offsetof(struct pal_event, path) + n;
	if (size > sizeof(struct pal_event))
		size = sizeof(struct pal_event);
	ev->size = size;
	if (bpf_ringbuf_output(&pal_events, ev, size, 0) < 0)
		pal_count(PAL_C_RINGBUF_DROPS);
	else
		pal_count(PAL_C_EVENTS);
}

/* Kills the current process group. Returns 0 on success. */
static __always_inline int pal_kill(struct pal_scratch *sc)
{
	int err = bpf_send_signal(SIGKILL);
	if (err < 0) {
		sc->ev_flags |= PAL_EV_SIGNAL_FAILED;
		pal_count(PAL_C_SIGNAL_FAILED);
	} else {
		sc->ev_flags |= PAL_EV_ACTED;
		pal_count(PAL_C_KILLS);
	}
	return err;
}

/* ---- the hooks: every backend decides through these ----
 * A backend's program only finds the hook's object (the file being executed or opened,
 * the destination address) and says what it can do with a verdict: fail the call
 * (can_deny: LSM and fmod_ret for every hook, cgroup hooks for connect) and send SIGKILL
 * (can_kill). What to decide is the maps' business alone, so the same plan decides the
 * same way on every backend. Each returns 1 when the caller must fail the call. */

/* A verdict carried out: kill and deny as the backend can. Kill also fails the call where
 * the backend can fail it (the process never sees the call succeed); deny where the backend
 * cannot fail the call kills instead (the encoder refuses such plans: this only fails closed). */
static __always_inline int pal_act(struct pal_scratch *sc, __u8 verdict, int can_deny, int can_kill)
{
	__u8 what = verdict & PAL_V_MASK;
	if (what != PAL_V_KILL && what != PAL_V_DENY)
		return 0;
	/* can_deny and can_kill are constants of the calling program: where a backend cannot
	 * signal, no signal call is even compiled into it. */
	int kill = can_kill && (what == PAL_V_KILL || !can_deny);
	if (kill)
		pal_kill(sc);
	if (!can_deny)
		return 0;
	if (!kill) {
		sc->ev_flags |= PAL_EV_ACTED;
		pal_count(PAL_C_DENIES);
	}
	return 1;
}

#define PAL_EXEC_TABLE 1  /* write the process table entry (the exec has happened) */
#define PAL_EXEC_DECIDE 2 /* decide process.exec here */
#define PAL_EXEC_DENY 4   /* and fail the exec for deny (and kill) */

/* process.exec: `file` is the binary being executed by `task` (the current task).
 * With PAL_EXEC_TABLE, the process table entry is written: the sched_process_exec
 * tracepoint, after the exec. Hooks that run before the exec (LSM, fmod_ret, kprobe) only
 * decide and leave the table to that tracepoint, which runs with every backend. */
static __always_inline int pal_hook_exec(struct task_struct *task, struct file *file, int what, __u32 args_tid)
{
	int table = what & PAL_EXEC_TABLE, can_deny = (what & PAL_EXEC_DENY) != 0;
	__u32 slot, seq = 0, gen = pal_active_gen(&seq);
	struct pal_hook *hk = gen == PAL_NONE || !(what & PAL_EXEC_DECIDE) ? NULL : pal_hook_of(gen, PAL_HOOK_EXEC);
	int decide = hk && !pal_hook_idle(hk);
	if (!table && !decide)
		return 0; /* no process.exec rule: the cost is this lookup */
	struct pal_scratch *sc = pal_enter(&slot);
	if (!sc)
		return 0;
	pal_begin(sc, gen & 1, seq, PAL_HOOK_EXEC);
	sc->args_tid = args_tid;

	sc->proc.tgid = sc->tgid;
	pal_fill_parent(sc, slot, task);
	struct task_struct *t = PAL_CAST(struct task_struct, task);
	struct fs_struct *fs = PAL_CAST(struct fs_struct, PAL_GET(t, fs));
	struct file *f = PAL_CAST(struct file, file);
	if (file && fs) {
		pal_walk(sc, slot, PAL_GET(f, f_path.dentry), PAL_GET(f, f_path.mnt), PAL_GET(fs, root.dentry),
			 PAL_GET(fs, root.mnt));
		if (gen != PAL_NONE)
			pal_apply_alias(sc, file, 0);
	} else {
		pal_walk_none(sc, PAL_PATH_UNRESOLVED);
		pal_count(PAL_C_UNRESOLVED);
	}
	pal_bin_from_walk(sc, &sc->proc.bin);
	if (table) {
		__u32 tgid = sc->tgid;
		if (bpf_map_update_elem(&pal_procs, &tgid, &sc->proc, BPF_ANY) < 0)
			pal_count(PAL_C_PROC_FULL);
	}

	int fail = 0;
	if (decide) {
		__u32 rank = pal_decide(sc, slot, hk, &sc->proc);
		if (rank != PAL_NONE) {
			__u8 verdict = pal_verdict(sc, rank);
			fail = pal_act(sc, verdict, can_deny, 1);
			pal_emit(sc, slot, &sc->proc, rank, verdict);
		}
	}
	pal_leave(slot);
	return fail;
}

/* Captures the arguments of an execve/execveat at syscall entry (argv: the caller's
 * array), for the exec's decision to report. Only when process.exec has rules. */
static __always_inline void pal_capture_args(const char *const *argv)
{
	__u32 seq = 0, gen = pal_active_gen(&seq);
	if (gen == PAL_NONE)
		return;
	struct pal_hook *hk = pal_hook_of(gen, PAL_HOOK_EXEC);
	if (!hk || pal_hook_idle(hk))
		return;
	__u32 slot;
	struct pal_scratch *sc = pal_enter(&slot);
	if (!sc)
		return;
	struct pal_args *a = &sc->args;
	__u32 len = 0, flags = 0;
	int i;
	for (i = 0; i < PAL_ARGS_COUNT; i++) {
		const char *arg = NULL;
		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) < 0) {
			flags |= PAL_ARGS_UNREAD;
			break;
		}
		if (!arg)
			break;
		if (len >= PAL_ARGS_MAX) {
			flags |= PAL_ARGS_TRUNCATED;
			break;
		}
		/* Built in the path buffer (larger than twice PAL_ARGS_MAX): each read may take
		 * up to what is left, and the bound holds without a copy of len. */
		__u32 room = PAL_ARGS_MAX - len;
		long n = bpf_probe_read_user_str(&sc->buf[len & (PAL_ARGS_MAX - 1)], room & (2 * PAL_ARGS_MAX - 1), arg);
		if (n <= 0) {
			flags |= PAL_ARGS_UNREAD;
			break;
		}
		if ((__u32)n >= room && len + n >= PAL_ARGS_MAX) {
			/* cut short: the last byte kept is the NUL the helper wrote */
			flags |= PAL_ARGS_TRUNCATED;
			len = PAL_ARGS_MAX;
			break;
		}
		len += n;
	}
	if (i == PAL_ARGS_COUNT) {
		const char *more = NULL;
		if (bpf_probe_read_user(&more, sizeof(more), &argv[PAL_ARGS_COUNT]) == 0 && more)
			flags |= PAL_ARGS_TRUNCATED;
	}
	a->len = len;
	a->flags = flags;
	bpf_probe_read_kernel(a->data, PAL_ARGS_MAX, sc->buf);
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	bpf_map_update_elem(&pal_args, &tid, a, BPF_ANY);
	pal_leave(slot);
}

/* ---- file.open ---- */

#define PAL_FILE_DIMS (0x3fu << PAL_DIM_FILE_PATH)

/* The file behind descriptor fd of the current task. */
static __always_inline struct file *pal_fd_file(long fd)
{
	struct task_struct *t = PAL_CAST(struct task_struct, bpf_get_current_task());
	struct files_struct *files = PAL_CAST(struct files_struct, PAL_GET(t, files));
	if (!files)
		return NULL;
	struct fdtable *fdt = PAL_CAST(struct fdtable, PAL_GET(files, fdt));
	if (!fdt)
		return NULL;
	unsigned int max = PAL_GET(fdt, max_fds);
	if (fd < 0 || (unsigned long)fd >= max)
		return NULL;
	struct file **fds = PAL_GET(fdt, fd);
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
	struct fs_struct *fs = PAL_CAST(struct fs_struct, PAL_GET(t, fs));
	if (!fs) {
		pal_walk_none(sc, PAL_PATH_UNRESOLVED);
		pal_count(PAL_C_UNRESOLVED);
		sc->file_state = 2;
		return;
	}
	struct file *file = PAL_CAST(struct file, f);
	pal_walk(sc, slot, PAL_GET(file, f_path.dentry), PAL_GET(file, f_path.mnt), PAL_GET(fs, root.dentry),
		 PAL_GET(fs, root.mnt));
	sc->file_state = 1;
	pal_apply_alias(sc, f, 1);
}

/* file.open: `file` is the file being opened, or NULL to take the one behind descriptor
 * `fd` (syscall exit tracepoints), found only when needed. */
static __always_inline int pal_hook_open(struct file *file, long fd, int can_deny)
{
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
		pal_walk_file(sc, slot, file ? file : pal_fd_file(fd));
	int fail = 0;
	__u32 rank = pal_decide(sc, slot, hk, p);
	if (rank != PAL_NONE) {
		__u8 verdict = pal_verdict(sc, rank);
		fail = pal_act(sc, verdict, can_deny, 1);
		if (sc->file_state == 0)
			pal_walk_file(sc, slot, file ? file : pal_fd_file(fd)); /* for the report */
		pal_emit(sc, slot, p, rank, verdict);
	}
	pal_leave(slot);
	return fail;
}

/* ---- net.connect ---- */

/* A destination as the decision needs it. */
struct pal_dest {
	__u32 family; /* 4 or 6 */
	__u32 protocol;
	__u32 dport;  /* host order */
	__u32 mapped; /* was ::ffff:a.b.c.d */
	__u32 addr[4];
};

/* IPv6 address words (network order) into d; ::ffff:a.b.c.d is an IPv4 destination: it
 * must meet the IPv4 rules. */
static __always_inline void pal_dest_v6(struct pal_dest *d, __u32 a0, __u32 a1, __u32 a2, __u32 a3)
{
	if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff)) {
		d->family = 4;
		d->addr[0] = a3;
		d->addr[1] = d->addr[2] = d->addr[3] = 0;
		d->mapped = 1;
	} else {
		d->family = 6;
		d->addr[0] = a0;
		d->addr[1] = a1;
		d->addr[2] = a2;
		d->addr[3] = a3;
	}
}

#define PAL_AF_INET 2
#define PAL_AF_INET6 10

/* A kernel struct sockaddr of `len` bytes into d; 0 when it is not an IP address. */
static __always_inline int pal_dest_sockaddr(struct pal_dest *d, const void *sa, int len)
{
	__u16 family = 0;
	if (!sa || len < (int)sizeof(family) || bpf_probe_read_kernel(&family, sizeof(family), sa) < 0)
		return 0;
	__builtin_memset(d, 0, sizeof(*d));
	if (family == PAL_AF_INET) {
		struct sockaddr_in in;
		if (len < (int)sizeof(in) || bpf_probe_read_kernel(&in, sizeof(in), sa) < 0)
			return 0;
		d->family = 4;
		d->dport = bpf_ntohs(in.sin_port);
		d->addr[0] = in.sin_addr.s_addr;
		return 1;
	}
	if (family == PAL_AF_INET6) {
		struct sockaddr_in6 in6;
		/* SIN6_LEN_RFC2133: the kernel accepts the 24-byte form without the scope id */
		if (len < 24 || bpf_probe_read_kernel(&in6, 24, sa) < 0)
			return 0;
		d->dport = bpf_ntohs(in6.sin6_port);
		pal_dest_v6(d, in6.sin6_addr.in6_u.u6_addr32[0], in6.sin6_addr.in6_u.u6_addr32[1],
			    in6.sin6_addr.in6_u.u6_addr32[2], in6.sin6_addr.in6_u.u6_addr32[3]);
		return 1;
	}
	return 0;
}

/* net.connect to the destination in d. */
static __always_inline int pal_hook_connect(struct pal_dest *d, int can_deny, int can_kill)
{
	__u32 seq = 0, gen = pal_active_gen(&seq);
	if (gen == PAL_NONE)
		return 0;
	struct pal_hook *hk = pal_hook_of(gen, PAL_HOOK_CONNECT);
	if (!hk || pal_hook_idle(hk))
		return 0;
	__u32 slot;
	struct pal_scratch *sc = pal_enter(&slot);
	if (!sc)
		return 0;
	pal_begin(sc, gen, seq, PAL_HOOK_CONNECT);
	sc->protocol = d->protocol;
	sc->dport = d->dport;
	sc->family = d->family;
	if (d->mapped)
		sc->ev_flags |= PAL_EV_MAPPED_V4;
	__builtin_memcpy(sc->daddr, d->addr, 16);
	struct pal_proc *p = pal_current_proc(sc, slot);
	int fail = 0;
	__u32 rank = pal_decide(sc, slot, hk, p);
	if (rank != PAL_NONE) {
		__u8 verdict = pal_verdict(sc, rank);
		/* Without a signal (cgroup hooks of older kernels, such as 6.1) a kill verdict fails the
		 * call: the encoder refuses kill there, so this only fails closed. */
		fail = pal_act(sc, verdict, can_deny, can_kill);
		pal_emit(sc, slot, p, rank, verdict);
	}
	pal_leave(slot);
	return fail;
}

#endif
