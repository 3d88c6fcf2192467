// The VM harness itself: each test boots a real VM under software emulation.
// Missing prerequisites fail these tests with the reason; they are never skipped.

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { runInVm, VmError, type VmRunResult } from "./vm.ts";

const VM_TEST = { timeout: 180_000 };

function report(name: string, result: VmRunResult) {
  const s = (x: number) => x.toFixed(1);
  console.log(`${name}: boot ${s(result.bootSeconds)} s, command ${s(result.commandSeconds)} s, wall ${s(result.wallMs / 1000)} s`);
}

describe("run-in-vm", () => {
  beforeAll(() => {
    for (const [tool, pkg] of [["qemu-system-x86_64", "qemu-system-x86"], ["busybox", "busybox-static"], ["bpftool", "bpftool"]]) {
      try {
        execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
      } catch {
        throw new Error(`${tool} not found: install the Debian package ${pkg} (scripts/setup does)`);
      }
    }
    // Downloads and unpacks the kernel on first use; its stderr says why if it cannot.
    try {
      execFileSync(join(import.meta.dirname, "prepare"), { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
    } catch (error) {
      throw new Error(`cannot prepare the VM kernel: ${(error as { stderr?: string }).stderr ?? error}`);
    }
  }, 300_000);

  it("lsm=bpf: BPF LSM is active and the lsm program type loads", VM_TEST, async () => {
    const result = await runInVm({
      lsm: "bpf",
      command: "cat /sys/kernel/security/lsm; echo; bpftool feature probe kernel",
      timeoutMs: 150_000,
    });
    report("bpf", result);
    expect(result.exitCode, result.stderr).toBe(0);
    const [lsms, ...probe] = result.stdout.split("\n");
    expect(lsms!.split(",")).toContain("bpf");
    expect(probe).toContain("eBPF program_type lsm is available");
  });

  it("lsm without bpf: BPF LSM is inactive, tracing and kprobe programs are available", VM_TEST, async () => {
    const result = await runInVm({
      lsm: "nobpf",
      command: "cat /sys/kernel/security/lsm; echo; bpftool feature probe kernel",
      timeoutMs: 150_000,
    });
    report("nobpf", result);
    expect(result.exitCode, result.stderr).toBe(0);
    const [lsms, ...probe] = result.stdout.split("\n");
    expect(lsms!.split(",")).toEqual(["lockdown", "capability", "landlock", "yama"]);
    expect(probe).toContain("eBPF program_type tracing is available");
    expect(probe).toContain("eBPF program_type kprobe is available");
    // Not checked: bpftool calls the lsm type available here too. Such a program loads and
    // attaches, but the kernel never calls it while bpf is missing from its LSM list.
  });

  it("passes exit status, stdout, stderr, cwd, environment and host directories through", VM_TEST, async () => {
    const tricky = `it's "quoted", $HOME and \\ stay literal`;
    // A fixture in the host's /tmp, which the guest replaces with its own.
    const fixtures = mkdtempSync(join(tmpdir(), "palisade-vm-test-"));
    writeFileSync(join(fixtures, "fixture"), "from the host\n");
    try {
      const result = await runInVm({
        lsm: "bpf",
        command: 'echo "cwd $PWD"; printf "%s\\n" "$TRICKY"; cat "$FIXTURES/fixture"; echo "to stderr" >&2; exit 3',
        cwd: import.meta.dirname,
        env: { TRICKY: tricky, FIXTURES: fixtures },
        hostDirs: [fixtures],
        timeoutMs: 150_000,
      });
      report("status", result);
      expect(result.exitCode).toBe(3);
      expect(result.stdout).toBe(`cwd ${import.meta.dirname}\n${tricky}\nfrom the host\n`);
      expect(result.stderr).toBe("to stderr\n");
    } finally {
      rmSync(fixtures, { recursive: true });
    }
  });

  it("boots once more when node aborts in V8 at startup, and returns a second abort as the result", VM_TEST, async () => {
    const aborts = await runInVm({ lsm: "bpf", command: "echo '# Fatal error in , line 0' >&2; exit 133", timeoutMs: 120_000 });
    expect(aborts).toMatchObject({ exitCode: 133, stdout: "", attempts: 2 });
    // The same status after output is the job's own: no second boot.
    const own = await runInVm({ lsm: "bpf", command: "echo ran; echo '# Fatal error in , line 0' >&2; exit 133", timeoutMs: 120_000 });
    expect(own).toMatchObject({ exitCode: 133, stdout: "ran\n", attempts: 1 });
  });

  it("kills qemu at the timeout and says so", VM_TEST, async () => {
    const started = performance.now();
    const error = await runInVm({ lsm: "bpf", command: "echo started; sleep 600", timeoutMs: 20_000 }).catch((e: unknown) => e);
    const seconds = (performance.now() - started) / 1000;
    expect(error).toBeInstanceOf(VmError);
    expect((error as VmError).message).toMatch(/^run-in-vm: timed out after 20s: qemu killed/);
    // Output written before the timeout still comes back, for diagnosis.
    expect((error as VmError).stdout).toBe("started\n");
    // run-in-vm reports only once qemu has exited, so this also bounds how long qemu lived.
    expect(seconds).toBeLessThan(35);
  });
});
