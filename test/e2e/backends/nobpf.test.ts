// A kernel with trampolines and kprobes but without bpf among its active LSMs (Debian's 6.1
// under qemu booted without bpf in lsm=, as Ubuntu's and RHEL's default kernels look): the
// enforcer must pick fmod_ret by itself (LSM programs load and attach there, but the kernel
// never calls them). One boot runs three phases: the enforcer's own choice (fmod_ret:
// EPERM), then kprobes and the tracepoint backend forced (kill only), each through the
// whole scenario and bypass suite. A VM that cannot boot fails every test with the reason.

import { describe, expect, it } from "vitest";
import { phaseOf, scenarioTests, vmScenarios } from "./support.ts";

const result = vmScenarios({ lsm: "nobpf", phases: ["auto", "kprobe", "tracepoint"], timeoutMs: 420_000 });

describe("fmod_ret backend (trampolines, bpf not an active LSM)", () => {
  it("the LSM programs load but bpf is not active: the enforcer does not trust them and picks fmod_ret", async () => {
    const run = await result();
    expect(run.lsms.split(",")).not.toContain("bpf");
    const phase = phaseOf(run, "auto");
    for (const h of phase.hooks) {
      expect(Object.entries(h.attempts).filter(([k]) => k.startsWith("probe_lsm_")).every(([, ok]) => ok), h.hook).toBe(true);
      expect(h.available, h.hook).not.toContain("lsm");
      expect(h.available[0], h.hook).toBe("fmod_ret");
      expect(h.notes.join(" "), h.hook).toMatch(/bpf is not among the active LSMs/);
    }
    expect(phase.capabilities).toEqual({ "process.exec": ["deny", "kill"], "file.open": ["deny", "kill"], "net.connect": ["deny", "kill"] });
    expect(phase.programs).toEqual(expect.arrayContaining(["pal_fmr_exec", "pal_fmr_open", "pal_fmr_connect", "pal_fmr_sendmsg"]));
  });

  scenarioTests(result, "auto", { backend: "fmod_ret", seesScripts: true, seesIoUring: true });
});

describe("kprobe backend (forced): kill only", () => {
  it("says it cannot deny, and kills", async () => {
    const phase = phaseOf(await result(), "kprobe");
    expect(phase.capabilities).toEqual({ "process.exec": ["kill"], "file.open": ["kill"], "net.connect": ["kill"] });
    expect(phase.programs).toEqual(expect.arrayContaining(["pal_kp_exec", "pal_kp_open", "pal_kp_connect", "pal_kp_sendmsg"]));
    for (const h of phase.hooks) expect(h.notes.join(" "), h.hook).toMatch(/cannot deny/);
  });

  scenarioTests(result, "kprobe", { backend: "kprobe", seesScripts: true, seesIoUring: true });
});

describe("tracepoint backend (forced) on 6.1", () => {
  it("uses the compatible build, and says connect cannot kill where the cgroup hooks may not signal", async () => {
    const phase = phaseOf(await result(), "tracepoint");
    expect(phase.compat).toBe(true);
    expect(phase.capabilities).toEqual({ "process.exec": ["kill"], "file.open": ["kill"], "net.connect": ["deny"] });
    expect(phase.programs).toEqual(expect.arrayContaining(["pal_exec", "pal_open_exit", "pal_connect4_nokill"]));
    expect(phase.dropped).toEqual(["kill-port"]);
  });

  scenarioTests(result, "tracepoint", { backend: "tracepoint", seesScripts: false, seesIoUring: false });
});
