// The TypeScript view of the kernel ABI (src/enforcer/abi.ts) against the C compiler's
// (bpf/lsm/abi.h, reported by the addon). Needs the build, not root.

import { describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { LAYOUT, ABI_VERSION, MAX_CLASSES, MAX_RANKS, MAX_BITS, COUNTERS, STR_DIMS, MAX_LPM_ENTRIES, kernelDev, ARGS_MAX, ARGS_COUNT } from "../../src/enforcer/abi.ts";
import { BUILD_DIR, native } from "../../src/enforcer/native.ts";
import { DIMENSIONS, HOOK_IDS } from "../../src/plan/dimensions.ts";
import { joinPath } from "../../src/enforcer/events.ts";

describe("kernel ABI", () => {
  it("has the layout the C compiler gives it", () => {
    const addon = join(BUILD_DIR, "palisade_enforcer.node");
    if (!existsSync(addon)) throw new Error(`${addon} is missing: run scripts/setup (or scripts/build-enforcer)`);
    const c = native().layout();
    for (const [k, v] of Object.entries(LAYOUT)) expect(c[k], k).toBe(v);
    expect(c).toMatchObject({
      PAL_ABI_VERSION: ABI_VERSION, PAL_MAX_CLASSES: MAX_CLASSES, PAL_MAX_RANKS: MAX_RANKS, PAL_MAX_BITS: MAX_BITS,
      PAL_COUNTERS: COUNTERS, PAL_STR_DIMS: STR_DIMS, PAL_MAX_LPM_ENTRIES: MAX_LPM_ENTRIES, PAL_ARGS_MAX: ARGS_MAX,
      PAL_ARGS_COUNT: ARGS_COUNT,
    });
  });

  it("numbers dimensions and hooks as the plan does", () => {
    // bpf/lsm/abi.h: PAL_DIM_* and PAL_HOOK_*
    const ids: Record<string, number> = {
      "process.binary": 0, "process.name": 2, "process.parent.binary": 4, "process.parent.name": 6, "file.path": 8,
      "file.name": 10, "file.dir": 12, "process.uid": 14, "process.gid": 15, "process.pid": 16, "net.dport": 17,
      "net.family": 18, "net.protocol": 19, "net.daddr": 20, workload: 21,
    };
    for (const [name, id] of Object.entries(ids)) expect(DIMENSIONS.find((d) => d.name === name)?.id, name).toBe(id);
    expect(DIMENSIONS.filter((d) => d.kind === "prefix" || d.kind === "suffix").every((d) => d.id < STR_DIMS)).toBe(true);
    expect(HOOK_IDS).toEqual({ "process.exec": 0, "file.open": 1, "net.connect": 2 });
  });

  it("converts stat's device numbers to the kernel's", () => {
    // makedev(8, 1) = 0x801; makedev(259, 65536) (glibc: minor high bits above bit 20)
    expect(kernelDev(0x801n)).toBe((8 << 20) | 1);
    const big = (259n << 8n) | 0n | ((65536n & ~0xffn) << 12n);
    expect(kernelDev(big)).toBe((259 << 20) | 65536);
  });

  it("rebuilds paths of any length from the prefix and reversed suffix", () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    for (const len of [0, 1, 255, 256, 257, 400, 511, 512, 513, 3000]) {
      const path = "/" + "abcdefghij".repeat(400).slice(0, Math.max(0, len - 1));
      const bytes = enc(path).subarray(0, len);
      const prefix = new Uint8Array(256);
      prefix.set(bytes.subarray(0, 256));
      const suffix = new Uint8Array(256);
      suffix.set(Uint8Array.from(bytes.subarray(Math.max(0, len - 256))).reverse());
      const got = joinPath(len, prefix, suffix);
      if (len <= 512) expect(got).toEqual({ path: new TextDecoder().decode(bytes), complete: true });
      else expect(got.complete).toBe(false);
    }
  });
});
