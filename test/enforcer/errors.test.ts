// Load failures reach JavaScript with libbpf's words and the verifier's reason.
// Needs root and BPF (and clang-19 from scripts/setup, to build the broken program).

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { BUILD_DIR, native, type BpfError } from "../../src/enforcer/native.ts";
import { removeDir, requireKernel, tempDir } from "./support.ts";

let dir: string;

const canRun = requireKernel();

beforeAll(() => {
  if (!canRun) return;
  dir = tempDir("palisade-errors");
});

afterAll(() => dir && removeDir(dir));

describe("load errors", () => {
  it("a program the verifier refuses throws with libbpf's message and the verifier log's tail", () => {
    writeFileSync(`${dir}/bad.bpf.c`, `
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } m SEC(".maps");
SEC("raw_tp/sched_process_exec")
int unchecked_lookup(void *ctx) { __u32 k = 0; __u64 *v = bpf_map_lookup_elem(&m, &k); return *v; }
char LICENSE[] SEC("license") = "GPL";
`);
    execFileSync("clang-19", ["-target", "bpf", "-O2", "-g", `-I${BUILD_DIR}`, "-c", `${dir}/bad.bpf.c`, "-o", `${dir}/bad.bpf.o`]);
    let error: BpfError | undefined;
    try {
      new (native().BpfObject)(`${dir}/bad.bpf.o`);
    } catch (e) {
      error = e as BpfError;
    }
    expect(error).toBeInstanceOf(Error);
    expect(error!.message).toMatch(/^loading BPF object .*bad\.bpf\.o: Permission denied/);
    expect(error!.message).toContain("prog 'unchecked_lookup': BPF program load failed");
    expect(error!.message).toContain("verifier log (last lines):");
    expect(error!.verifierLogTail).toMatch(/invalid mem access 'map_value_or_null'/);
    expect(error!.errno).toBe(13);
  });

  it("a missing object file says which", () => {
    expect(() => new (native().BpfObject)(`${dir}/absent.bpf.o`)).toThrow(/opening BPF object .*absent\.bpf\.o: No such file or directory/);
  });
});
