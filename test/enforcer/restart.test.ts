// A restarted agent takes over the pinned programs and maps: rules stay in force while
// no agent runs, and while the new one loads. Needs root and BPF.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { copyFileSync, existsSync } from "node:fs";
import { Enforcer } from "../../src/enforcer/index.ts";
import { EventLog, planOf, removeDir, requireKernel, run, tempDir } from "./support.ts";

const PIN_DIR = "/sys/fs/bpf/palisade-test-restart";
let dir: string;
const opened: Enforcer[] = [];

const canRun = requireKernel();

beforeAll(() => {
  if (!canRun) return;
  Enforcer.removePinned(PIN_DIR);
  dir = tempDir("palisade-restart");
  copyFileSync("/bin/echo", `${dir}/denied-echo`);
  copyFileSync("/bin/echo", `${dir}/ok-echo`);
});

afterAll(() => {
  for (const e of opened) e.close();
  Enforcer.removePinned(PIN_DIR);
  if (dir) removeDir(dir);
});

/** Execs the denied binary in a loop in the background; resolves with how many ran. */
function hammer(ms: number): Promise<number> {
  const child = spawn("/bin/bash", ["-c", `end=$((SECONDS + ${Math.ceil(ms / 1000)})); n=0; while ((SECONDS < end)); do ${dir}/denied-echo RAN; done`], { stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  return new Promise((resolve) => child.on("exit", () => resolve(out.split("\n").filter((l) => l === "RAN").length)));
}

describe("restart", () => {
  it("keeps enforcing with no agent, and a new agent takes over without a gap", async () => {
    const first = planOf({ name: "first", rules: [{ name: "no-denied", hook: "process.exec", match: `process.binary == "${dir}/denied-echo"`, action: "kill" }] });
    const a = Enforcer.open({ pinDir: PIN_DIR, plan: first });
    a.close({ keepAttached: true });
    expect(existsSync(`${PIN_DIR}/links/exec`)).toBe(true);
    expect(run(`${dir}/denied-echo`, ["x"]).signal).toBe("SIGKILL");

    const ran = hammer(2000);
    await new Promise((r) => setTimeout(r, 200));
    const log = new EventLog();
    const b = Enforcer.open({ pinDir: PIN_DIR, onEvent: log.push });
    opened.push(b);
    expect(b.reusedMaps).toBe(true);
    expect(await ran).toBe(0);

    // The old plan is still the one in force; the new agent replaces it.
    expect(run(`${dir}/denied-echo`, ["x"]).signal).toBe("SIGKILL");
    const second = planOf({ name: "second", rules: [{ name: "no-ok", hook: "process.exec", match: `process.binary == "${dir}/ok-echo"`, action: "kill" }] });
    b.applyPlan(second);
    expect(run(`${dir}/denied-echo`, ["free"]).stdout).toBe("free\n");
    const killed = run(`${dir}/ok-echo`, ["x"]);
    expect(killed.signal).toBe("SIGKILL");
    const e = await log.wait((x) => x.event.process.pid === killed.pid);
    expect(e.event).toMatchObject({ policy: "second", rule: "no-ok", action: "killed" });

    b.close();
    opened.pop();
    expect(existsSync(PIN_DIR)).toBe(false);
    expect(run(`${dir}/ok-echo`, ["back"]).stdout).toBe("back\n");
  });
});
