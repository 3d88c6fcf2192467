// process.args in events on the real kernel: the arguments an exec was called with,
// captured at execve/execveat entry, bounded and marked when cut short; audit rules that
// test them are confirmed in user space with them. Needs root and BPF.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync } from "node:fs";
import { Enforcer } from "../../src/enforcer/index.ts";
import type { EnforcerEvent } from "../../src/enforcer/events.ts";
import { ARGS_COUNT, ARGS_MAX } from "../../src/enforcer/abi.ts";
import { EventLog, planOf, removeDir, requireKernel, run, tempDir } from "./support.ts";
import { tricksBinary } from "./tricks.ts";

const PIN_DIR = "/sys/fs/bpf/palisade-test-args";
const canRun = requireKernel();

let dir: string;
let enforcer: Enforcer | undefined;
const log = new EventLog();
const forPid = (pid: number | undefined) => (e: EnforcerEvent) => e.event.process.pid === pid && e.event.hook === "process.exec";

beforeAll(() => {
  if (!canRun) return;
  Enforcer.removePinned(PIN_DIR);
  dir = tempDir("palisade-args");
  copyFileSync("/bin/echo", `${dir}/denied-echo`);
  copyFileSync("/bin/echo", `${dir}/audited-echo`);
  const plan = planOf({
    name: "args",
    rules: [
      { name: "no-denied-echo", hook: "process.exec", match: `process.binary == "${dir}/denied-echo"`, action: "kill" },
      // Decided in the kernel on the binary, confirmed in user space on the arguments.
      { name: "flagged", hook: "process.exec", match: `process.binary == "${dir}/audited-echo" && "--flag" in process.args`, action: "audit" },
    ],
  });
  enforcer = Enforcer.open({ pinDir: PIN_DIR, reuse: false, plan, onEvent: log.push, onError: log.error });
});

afterAll(() => {
  enforcer?.close();
  if (dir) removeDir(dir);
});

describe("process.args", () => {
  it("a killed exec's event carries its arguments, argv[0] first", async () => {
    const r = run(`${dir}/denied-echo`, ["hello", "two words", ""]);
    expect(r.signal).toBe("SIGKILL");
    const e = await log.wait(forPid(r.pid));
    expect(e.event.process.args).toEqual([`${dir}/denied-echo`, "hello", "two words", ""]);
    expect(e.record.args?.truncated).toBe(false);
  });

  it("execveat's arguments too", async () => {
    const r = run(tricksBinary(), ["execveat", `${dir}/denied-echo`, "argv0", "via-execveat"]);
    expect(r.signal).toBe("SIGKILL");
    const e = await log.wait(forPid(r.pid));
    expect(e.event.process.args).toEqual(["argv0", "via-execveat"]);
  });

  it("an exec from a second thread (which takes the process's pid) carries its arguments too", async () => {
    const r = run(tricksBinary(), ["thread-exec", `${dir}/denied-echo`, "argv0", "from-a-thread"]);
    expect(r.signal).toBe("SIGKILL");
    const e = await log.wait(forPid(r.pid));
    expect(e.event.process.args).toEqual(["argv0", "from-a-thread"]);
  });

  it("an audit rule on process.args is confirmed with them: reported when it holds, not when it does not", async () => {
    const hit = run(`${dir}/audited-echo`, ["a", "--flag"]);
    expect(hit.stdout).toBe("a --flag\n");
    const e = await log.wait(forPid(hit.pid));
    expect(e.event).toMatchObject({ action: "audited", rule: "flagged", process: { args: [`${dir}/audited-echo`, "a", "--flag"] } });
    const miss = run(`${dir}/audited-echo`, ["a", "--other"]);
    expect(miss.stdout).toBe("a --other\n");
    expect(await log.settle(forPid(miss.pid))).toEqual([]);
  });

  it(`keeps ${ARGS_COUNT} arguments and ${ARGS_MAX} bytes, and says when it cut`, async () => {
    const many = Array.from({ length: ARGS_COUNT + 4 }, (_, i) => `a${i}`);
    const r1 = run(`${dir}/denied-echo`, many);
    const e1 = await log.wait(forPid(r1.pid));
    expect(e1.event.process.args).toEqual([`${dir}/denied-echo`, ...many].slice(0, ARGS_COUNT));
    expect(e1.record.args?.truncated).toBe(true);

    const long = "x".repeat(ARGS_MAX + 100);
    const r2 = run(`${dir}/denied-echo`, ["short", long]);
    const e2 = await log.wait(forPid(r2.pid));
    const args = e2.event.process.args!;
    expect(args.slice(0, 2)).toEqual([`${dir}/denied-echo`, "short"]);
    expect(args[2]).toBe(long.slice(0, ARGS_MAX - (`${dir}/denied-echo`.length + 1) - ("short".length + 1) - 1));
    expect(e2.record.args?.truncated).toBe(true);
  });
});
