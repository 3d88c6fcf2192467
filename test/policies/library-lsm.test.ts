// The library's deny rules where the kernel can deny: Debian's kernel with BPF LSM active,
// under qemu (test/e2e/vm). On this host exec can only be killed (library.test.ts); there,
// package-managers' `deny` (with `fallback: kill` for kernels like this host's) must make
// execve fail with EPERM and leave the caller alive, and container-shells' `kill` must
// still kill. The policies are the host variants library.test.ts uses (variants.ts).

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { ROOT } from "../support/cli.ts";
import { runInVm } from "../e2e/vm/vm.ts";
import { hostVariant } from "./variants.ts";

interface Outcome {
  binary: string;
  pid: number;
  signal: string | null;
  status: number | null;
  error: string | null;
  stdout: string;
}
interface GuestResult {
  outcomes: { packageManager: Outcome; shell: Outcome; otherProgram: Outcome; metadata: { pid: number; outcome: string } };
  events: { action: string; policy?: string; rule?: string; process: { pid: number; binary: string } }[];
  log: string;
}

let result: GuestResult;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "palisade-library-lsm-"));
  for (const name of ["package-managers", "container-shells", "cloud-metadata"]) writeFileSync(join(dir, `${name}.yaml`), stringify(hostVariant(name)));
  const vm = await runInVm({ lsm: "bpf", command: `node test/policies/library-lsm-guest.ts ${dir}`, cwd: ROOT, hostDirs: [dir], timeoutMs: 900_000 });
  const line = vm.stdout.split("\n").find((l) => l.startsWith("LIBRARY-LSM "));
  if (vm.exitCode !== 0 || !line) throw new Error(`the guest exited ${vm.exitCode}.\nstdout:\n${vm.stdout}\nstderr:\n${vm.stderr.slice(-4000)}`);
  result = JSON.parse(line.slice("LIBRARY-LSM ".length));
}, 960_000);

const eventOf = (pid: number) => result.events.find((e) => e.process.pid === pid);

describe("the library on a kernel with BPF LSM", () => {
  it("chose the LSM backend for every hook", () => {
    expect(result.log).toMatch(/process\.exec: lsm backend/);
    expect(result.log).toMatch(/net\.connect: lsm backend/);
  });

  it("package-managers: execve fails with EPERM, the caller lives, the event says denied", () => {
    const { packageManager } = result.outcomes;
    expect(packageManager.error).toBe("EPERM");
    expect(packageManager.signal).toBeNull();
    // A refused execve leaves no child for spawnSync to name: find the event by the binary.
    expect(result.events.find((e) => e.process.binary === packageManager.binary)).toMatchObject({ action: "denied", policy: "package-managers", rule: "package-manager-exec" });
  });

  it("container-shells: the shell is killed before it runs", () => {
    const { shell } = result.outcomes;
    expect(shell.signal).toBe("SIGKILL");
    expect(shell.stdout).toBe("");
    expect(eventOf(shell.pid)).toMatchObject({ action: "killed", policy: "container-shells", rule: "shell-exec" });
  });

  it("cloud-metadata: connect fails with EPERM", () => {
    const { metadata } = result.outcomes;
    expect(metadata.outcome).toBe("EPERM");
    expect(result.events).toContainEqual(expect.objectContaining({ action: "denied", policy: "cloud-metadata", rule: "metadata-connect" }));
  });

  it("other programs run", () => {
    expect(result.outcomes.otherProgram).toMatchObject({ status: 0, stdout: "0\n" });
    expect(eventOf(result.outcomes.otherProgram.pid)).toBeUndefined();
  });
});
