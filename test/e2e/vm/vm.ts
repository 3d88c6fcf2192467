// Runs a command in a VM booted from Debian's kernel, with BPF LSM active ("bpf") or not
// ("nobpf"), through the run-in-vm script next to this file. See README.md beside it.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SCRIPT = join(import.meta.dirname, "run-in-vm");

export interface VmRunOptions {
  /** "bpf": BPF LSM active. "nobpf": the same kernel without bpf in lsm=: trampolines, fmod_ret and kprobes only. */
  lsm: "bpf" | "nobpf";
  /** Bash script text run in the guest as root; it sees the host's root file system read-only. */
  command: string;
  /** The command's working directory (default: ours). */
  cwd?: string;
  /**
   * Host directories under /tmp, /run or /var/tmp the command must see, e.g. fixtures made with mkdtemp: the guest has
   * its own, empty ones and shows only these in them (read-only). The repository, the cache and cwd are always shown.
   */
  hostDirs?: string[];
  /** Extra environment for the command, which does not inherit ours (it gets PATH with Node 24, HOME, PALISADE_CACHE, PALISADE_VM_LSM). */
  env?: Record<string, string>;
  /** Wall-clock limit for the whole VM, boot included; a VM boots in about 5 s here. */
  timeoutMs: number;
}

export interface VmRunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The serial console: kernel messages (errors only: the kernel runs with `quiet`) and the guest init's lines. */
  console: string;
  /** Guest uptime when the command started (boot time) and how long the command ran, in seconds, both measured in the guest. */
  bootSeconds: number;
  commandSeconds: number;
  /** Host wall-clock time for the whole run, cache check and qemu start-up included. */
  wallMs: number;
  /** Boots the job needed: 2 when node aborted in V8 before doing anything and the job ran again. */
  attempts: number;
}

/** No exit status: the VM timed out, stopped before the command finished, or could not start (bad options, no kernel). */
export class VmError extends Error {
  override name = "VmError";
  /** What the command and the kernel had printed up to then. */
  stdout = "";
  stderr = "";
  console = "";
}

/**
 * Node 24 sometimes aborts in V8 at startup inside the emulated guest ("# Fatal error in ,
 * line 0", SIGTRAP, before the job prints anything): seen in about one full test run in
 * three, with node read over 9p and with node copied into guest memory alike, never on the
 * host. Such a run is booted once more, said on stderr and counted in `attempts`; any other
 * failure, or a second abort, is the job's result.
 */
const V8_ABORT_STATUS = 128 + 5;
const abortedAtStartup = (r: VmRunResult) => r.exitCode === V8_ABORT_STATUS && r.stdout === "" && /^# Fatal error in /m.test(r.stderr);

export async function runInVm(options: VmRunOptions): Promise<VmRunResult> {
  const first = await runOnce(options);
  if (!abortedAtStartup(first)) return first;
  process.stderr.write(`run-in-vm: node aborted in V8 at startup in the guest (lsm=${options.lsm}); booting once more\n`);
  return { ...(await runOnce(options)), attempts: 2 };
}

async function runOnce(options: VmRunOptions): Promise<VmRunResult> {
  const out = await mkdtemp(join(tmpdir(), "palisade-vm-"));
  try {
    const args = ["--lsm", options.lsm, "--timeout", String(options.timeoutMs / 1000), "--out", out];
    if (options.cwd !== undefined) args.push("--cwd", options.cwd);
    for (const [name, value] of Object.entries(options.env ?? {})) args.push("--env", `${name}=${value}`);
    for (const dir of options.hostDirs ?? []) args.push("--host-dir", dir);
    args.push("--", options.command);

    const started = performance.now();
    const scriptStderr = await runScript(args, options.timeoutMs);
    const wallMs = performance.now() - started;
    const read = async (name: string) => (existsSync(join(out, name)) ? readFile(join(out, name), "utf8") : "");
    const [stdout, stderr, consoleLog, status] = await Promise.all([read("stdout"), read("stderr"), read("console.log"), read("status")]);

    if (!status) {
      // run-in-vm's own lines (the reason and the console's tail) follow the replayed guest stderr.
      const at = scriptStderr.search(/^run-in-vm: /m);
      const error = new VmError(at >= 0 ? scriptStderr.slice(at).trimEnd() : `run-in-vm failed: ${scriptStderr}`);
      Object.assign(error, { stdout, stderr, console: consoleLog });
      throw error;
    }
    return { exitCode: Number(status), stdout, stderr, console: consoleLog, ...timing(consoleLog), wallMs, attempts: 1 };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

/** Runs run-in-vm and returns its stderr. It enforces the timeout itself; ours is a backstop should it hang. */
function runScript(args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    // Its own process group, so the backstop can kill it together with qemu.
    const child = spawn(SCRIPT, args, { stdio: ["ignore", "ignore", "pipe"], detached: true });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const backstop = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), timeoutMs + 60_000);
    child.on("error", (error) => {
      clearTimeout(backstop);
      reject(error);
    });
    child.on("close", () => {
      clearTimeout(backstop);
      resolve(stderr);
    });
  });
}

/** The guest init prints "palisade-vm: job start uptime=S" and "palisade-vm: job end uptime=S status=N". */
function timing(consoleLog: string) {
  const uptime = (event: string) => Number(new RegExp(`palisade-vm: job ${event} uptime=([\\d.]+)`).exec(consoleLog)?.[1] ?? NaN);
  return { bootSeconds: uptime("start"), commandSeconds: uptime("end") - uptime("start") };
}
