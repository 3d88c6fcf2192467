// The LSM backend on a kernel with BPF LSM active (Debian's 6.1 under qemu, lsm=...,bpf):
// every scenario of test/e2e/backends/scenarios.ts in one boot. Deny is a real EPERM for
// exec, open and connect; kill is SIGKILL; the bypass suite is blocked. A VM that cannot
// boot fails every test here with the reason.

import { describe, expect, it } from "vitest";
import { phaseOf, scenarioTests, vmScenarios } from "./support.ts";

const result = vmScenarios({ lsm: "bpf", phases: ["auto"], timeoutMs: 300_000 });

describe("LSM backend (bpf is an active LSM)", () => {
  it("bpf is among the active LSMs, and the enforcer picked LSM by trying, not by version", async () => {
    const run = await result();
    expect(run.lsms.split(",")).toContain("bpf");
    const phase = phaseOf(run, "auto");
    for (const h of phase.hooks) {
      expect(h.available[0], h.hook).toBe("lsm");
      // The weaker backends were tried as well, and work here too.
      expect(h.available, h.hook).toEqual(expect.arrayContaining(["fmod_ret", "kprobe", "tracepoint"]));
    }
    expect(phase.capabilities).toEqual({ "process.exec": ["deny", "kill"], "file.open": ["deny", "kill"], "net.connect": ["deny", "kill"] });
    expect(phase.programs).toEqual(expect.arrayContaining(["pal_lsm_exec", "pal_lsm_open", "pal_lsm_connect", "pal_lsm_sendmsg", "pal_exec_table", "pal_fork", "pal_exit"]));
    expect(phase.programs).not.toContain("pal_open_exit");
    // 6.1 has no bpf_rdonly_cast: the compatible build was loaded after the fast one was refused.
    expect(phase.compat).toBe(true);
  });

  scenarioTests(result, "auto", { backend: "lsm", seesScripts: true, seesIoUring: true });
});
