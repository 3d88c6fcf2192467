/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The Palisade kernel ABI: map layouts shared by the BPF programs (bpf/lsm/NAME.bpf.c),
 * the native addon (src/enforcer/native) and the TypeScript encoder
 * (src/enforcer/abi.ts mirrors every number here; test/enforcer/abi.test.ts checks
 * that they agree). docs/kernel-abi.md explains the design.
 *
 * Included from BPF C (after vmlinux.h) and from C++ (after <linux/types.h>), so it
 * uses only the __uN types both provide. Every struct is laid out without implicit
 * padding: explicit pad fields keep the C, C++ and TypeScript views identical.
 */
#ifndef PALISADE_ABI_H
#define PALISADE_ABI_H

/* Bump on any incompatible change to a map or the event record. Pinned maps of another
 * ABI version are never reused: the agent loads fresh maps and swaps the programs. */
#define PAL_ABI_VERSION 3

#define PAL_GENS 2
#define PAL_HOOKS 3
#define PAL_HOOK_EXEC 0
#define PAL_HOOK_OPEN 1
#define PAL_HOOK_CONNECT 2

/* Dimension ids: src/plan/dimensions.ts (append-only there, mirrored here). */
#define PAL_DIMS 22
#define PAL_STR_DIMS 14 /* ids 0..13: strings; even = prefix trie, odd = suffix trie */
#define PAL_DIM_BINARY 0
#define PAL_DIM_NAME 2
#define PAL_DIM_PARENT_BINARY 4
#define PAL_DIM_PARENT_NAME 6
#define PAL_DIM_FILE_PATH 8
#define PAL_DIM_FILE_NAME 10
#define PAL_DIM_FILE_DIR 12
#define PAL_DIM_UID 14
#define PAL_DIM_GID 15
#define PAL_DIM_PID 16
#define PAL_DIM_DPORT 17
#define PAL_DIM_FAMILY 18
#define PAL_DIM_PROTOCOL 19
#define PAL_DIM_DADDR 20
#define PAL_DIM_WORKLOAD 21

#define PAL_NONE 0xffffffffu
#define PAL_STR_BYTES 256     /* src/plan/keys.ts STRING_KEY_BYTES */
#define PAL_MAX_BIT_WORDS 16  /* 1024 multi-dimension slots per hook */
#define PAL_MAX_BITS (PAL_MAX_BIT_WORDS * 64)
#define PAL_MAX_RANKS 65536   /* slots per hook */
#define PAL_MAX_CLASSES 32768 /* classes per generation (plan-wide ids) */
#define PAL_MAX_LPM_ENTRIES 262144

/* rank_verdicts values */
#define PAL_V_NONE 0
#define PAL_V_KILL 1
#define PAL_V_DENY 2
#define PAL_V_MONITOR 3
#define PAL_V_AUDIT 4
#define PAL_V_MASK 0x0f
#define PAL_V_USERSPACE 0x80 /* the slot has a userspaceCheck: user space confirms */

/* config ARRAY[1] */
struct pal_config {
	__u32 active_gen; /* 0 or 1: the generation every program reads, once per event */
	__u32 abi_version;
	__u64 flips;      /* generation flips so far (informational) */
};

/* hooks ARRAY[PAL_GENS * PAL_HOOKS], index gen * PAL_HOOKS + hook */
struct pal_hook {
	__u32 dims;        /* bit i: dimension id i is looked up */
	__u32 always_rank; /* best rank among slots that constrain nothing, or PAL_NONE */
	__u32 bit_words;   /* u64 words of the mask in use, 0..PAL_MAX_BIT_WORDS */
	__u32 pad;
	__u32 default_class[PAL_DIMS]; /* class when no entry matches */
	__u32 unknown_class[PAL_DIMS]; /* class when the value cannot be read */
};

/* classes ARRAY[PAL_GENS * PAL_MAX_CLASSES], index gen * PAL_MAX_CLASSES + class id */
struct pal_class {
	__u32 best_single; /* first of ClassPlan.singles, or PAL_NONE */
	__u32 pad;
	__u64 bits[PAL_MAX_BIT_WORDS]; /* ClassPlan.bits | DimensionPlan.wildcardBits */
};

/* String tries: one LPM trie per (gen, hook, string dimension), reached through the
 * ARRAY_OF_MAPS pal_str at index (gen * PAL_HOOKS + hook) * PAL_STR_DIMS + dim.
 * (An LPM key holds at most 256 data bytes, so gen/hook/dim cannot share the key.) */
struct pal_str_key {
	__u32 prefixlen; /* entry bits only */
	__u8 data[PAL_STR_BYTES];
};

/* int LPM trie: prefixlen = 24 header bits + the entry's bits (of 32) */
struct pal_int_key {
	__u32 prefixlen;
	__u8 gen;
	__u8 hook;
	__u8 dim;
	__u8 value[4]; /* big-endian */
	__u8 pad;      /* never compared: prefixlen <= 56 */
};

/* addr LPM trie: prefixlen = 24 + 8 (family) + the CIDR's length */
struct pal_addr_key {
	__u32 prefixlen;
	__u8 gen;
	__u8 hook;
	__u8 dim;
	__u8 family;   /* 4 or 6; IPv4-mapped IPv6 is stored and looked up as 4 */
	__u8 addr[16]; /* IPv4 in the first 4 bytes */
};

#define PAL_INT_HEADER_BITS 24

/* workloads HASH: cgroup id -> class of the workload dimension (per gen and hook; PAL_NONE
 * on a hook whose rules do not use it: the entry then only names the workload in events).
 * A process takes the class of its own cgroup or, failing that, of its nearest ancestor
 * with an entry, at most PAL_WORKLOAD_DEPTH levels up: the controller classifies a pod's
 * cgroup before its containers' cgroups exist. */
#define PAL_WORKLOAD_DEPTH 8
struct pal_workload_key {
	__u64 cgroup_id;
	__u8 gen;
	__u8 hook;
	__u8 pad[6];
};

/* inodes HASH: a file a rule names exactly, by identity. Opening or executing that inode
 * through any other name (a hard link) is decided as the name the rule gives it. */
struct pal_inode_key {
	__u64 ino;
	__u32 dev; /* kernel encoding: major << 20 | minor */
	__u8 gen;
	__u8 pad[3];
};

struct pal_alias {
	__u32 len;
	__u32 name_len;
	__u8 path[PAL_STR_BYTES];
};

/* Path flags */
#define PAL_PATH_UNRESOLVED 1 /* too deep, too long or unreadable: unknown class, fails closed */
#define PAL_PATH_DETACHED 2   /* not reachable from the task's root (pseudo file, other mount tree) */
#define PAL_PATH_NONE 4       /* no file: kernel thread without an executable; the value is "" */
#define PAL_PATH_ALIAS 8      /* decided as the name a rule gives this inode (pal_inodes) */

/* A resolved path as the decision needs it (keys of src/plan/keys.ts). */
struct pal_bin {
	__u32 len;      /* byte length of the whole path (may exceed 256) */
	__u32 flags;    /* PAL_PATH_* */
	__u32 name_len; /* length of the last component */
	__u32 pad;
	__u8 prefix[PAL_STR_BYTES]; /* prefixKey(path) */
	__u8 suffix[PAL_STR_BYTES]; /* suffixKey(path): last bytes reversed */
	__u8 name[PAL_STR_BYTES];   /* prefixKey(basename(path)) */
};

/* proc HASH: tgid -> what other hooks need of the process without walking paths again */
struct pal_proc {
	__u32 tgid;
	__u32 ppid;
	struct pal_bin bin;    /* process.binary */
	struct pal_bin parent; /* process.parent.binary */
};

/* Paths in events: the prefix and reversed suffix give back paths up to 512 bytes whole. */
struct pal_event_path {
	__u32 len;
	__u32 flags;
	__u8 prefix[PAL_STR_BYTES];
	__u8 suffix[PAL_STR_BYTES];
};

#define PAL_PATH_MAX 4096
#define PAL_MAX_DEPTH 96 /* path components plus mount crossings */

/* Arguments of an exec, captured at execve/execveat entry (sys_enter_execve*) from the
 * caller's argv, kept per thread (args HASH, LRU: tid -> struct pal_args) until the exec
 * is decided: each argument NUL-terminated, in order. */
#define PAL_ARGS_MAX 1024  /* bytes kept */
#define PAL_ARGS_COUNT 16  /* arguments kept */
#define PAL_ARGS_TRUNCATED 1 /* more arguments or bytes than kept */
#define PAL_ARGS_UNREAD 2    /* none captured (the exec began before the agent, or argv was unreadable) */

struct pal_args {
	__u32 len;   /* bytes of data in use */
	__u32 flags; /* PAL_ARGS_* */
	__u8 data[PAL_ARGS_MAX];
};

/* Event flags */
#define PAL_EV_ACTED 1          /* the kernel killed or denied */
#define PAL_EV_SIGNAL_FAILED 2  /* bpf_send_signal refused */
#define PAL_EV_MAPPED_V4 4      /* destination was IPv4-mapped IPv6, reported as IPv4 */
#define PAL_EV_PROC_LAZY 8      /* process info resolved at this event (no exec seen) */

/* events RINGBUF record: fixed part, then path_len bytes of the file path */
struct pal_event {
	__u32 abi_version;
	__u32 size; /* bytes of this record */
	__u8 gen;
	__u8 hook;
	__u8 verdict; /* rank_verdicts value (with PAL_V_USERSPACE) */
	__u8 pad0;
	__u32 rank;
	__u32 flags; /* PAL_EV_* */
	__u32 seq;   /* low 32 bits of pal_config.flips when the event began: which plan decided */
	__u64 ktime; /* bpf_ktime_get_boot_ns */
	__u64 cgroup_id;
	__u64 workload_id; /* the cgroup whose pal_workloads entry classified the process, or 0 */
	__u32 pid;  /* thread id */
	__u32 tgid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	/* net.connect */
	__u8 family; /* 4 or 6 */
	__u8 protocol;
	__u16 dport;
	__u8 daddr[16];
	struct pal_event_path binary;
	struct pal_event_path parent;
	/* file.open: the path opened (path), and when PAL_PATH_ALIAS is set in path_flags, the
	 * name the decision used (alias): the same inode under the name a rule gives it */
	__u64 ino;
	__u32 dev;
	__u32 alias_len;
	__u8 alias[PAL_STR_BYTES];
	/* The variable tail, record size = offsetof(path) + path_len. file.open: the path,
	 * path_flags PAL_PATH_*; process.exec: the arguments (as struct pal_args data),
	 * path_flags PAL_ARGS_*. */
	__u32 path_len;
	__u32 path_flags;
	union {
		__u8 path[PAL_PATH_MAX];
		__u8 args[PAL_ARGS_MAX];
	};
};

/* counters PERCPU_ARRAY[PAL_COUNTERS] (u64): every lost or degraded event is counted */
#define PAL_C_EVENTS 0          /* records written to the ring buffer */
#define PAL_C_RINGBUF_DROPS 1   /* records lost: ring buffer full */
#define PAL_C_UNRESOLVED 2      /* paths that could not be resolved (fail closed) */
#define PAL_C_PROC_LAZY 3       /* process info resolved lazily (process predates the agent) */
#define PAL_C_PROC_FULL 4       /* proc map updates that failed (map full) */
#define PAL_C_SCRATCH_BUSY 5    /* events skipped: every per-CPU scratch slot in use */
#define PAL_C_CLASS_MISSING 6   /* class id without an entry (plan/ABI mismatch) */
#define PAL_C_KILLS 7
#define PAL_C_DENIES 8
#define PAL_C_SIGNAL_FAILED 9
#define PAL_C_DECISIONS 10      /* events decided against a hook with rules */
#define PAL_C_FD_UNREADABLE 11  /* file.open: the returned fd's file could not be read */
#define PAL_COUNTERS 16

#define PAL_SCRATCH_SLOTS 4

#endif
