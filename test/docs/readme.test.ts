// The README's commands run as written: the quick start's `./scripts/run` (in the
// background, then Ctrl-C) and every block of the tour, in one shell, as a new user would
// paste them, with the output their comments promise (see doc-blocks.ts).
// Needs root and BPF, like the tour itself.

import { spawn, spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../support/cli.ts";
import { commands, markedBlocks, runShell, unkeptPromises } from "./doc-blocks.ts";

const readme = readFileSync(join(ROOT, "README.md"), "utf8");

const blocks = (name: string) => markedBlocks(readme, "readme-test", name);

const libraryPolicies = readdirSync(join(ROOT, "policies")).filter((f) => f.endsWith(".yaml") && !f.endsWith(".test.yaml")).length;

describe("README quick start", () => {
  const [quickStart, ...others] = blocks("quick-start");

  it("is the two commands, and the second is what CI runs", () => {
    expect(others).toEqual([]);
    expect(commands(quickStart!)).toEqual(["./scripts/run", "./scripts/test"]);
    // ./scripts/test is not run from here: it runs this test suite, which would run it again.
    // CI runs it (.ci/run), so the README's command is the one that is exercised.
    const ciCommands = commands(readFileSync(join(ROOT, ".ci", "run"), "utf8")).filter((l) => !/^(set|cd) /.test(l));
    expect(ciCommands).toEqual(["./scripts/test"]);
  });

  it("./scripts/run enforces the bundled policies, reports events on stdout, and stops on Ctrl-C", async () => {
    if (process.getuid?.() !== 0) throw new Error("the README's commands need root: run the tests as root");
    const run = spawn("bash", ["-c", commands(quickStart!)[0]!], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    run.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    run.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => run.once("exit", resolve));
    try {
      await expect.poll(() => stderr, { timeout: 90_000, interval: 500 }).toMatch(new RegExp(`enforcing plan [0-9a-f]{12}: ${libraryPolicies} policies`));
      // security-monitor reports every program started: this one must show up on stdout
      // (after set-up's own lines, "setup: ...").
      const probe = spawnSync("/usr/bin/true");
      const events = () => stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
      await expect.poll(() => events().find((e) => e.process?.pid === probe.pid), { timeout: 15_000 })
        .toMatchObject({ hook: "process.exec", action: "audited", policy: "security-monitor", rule: "exec" });
      // "Safe on a workstation": the host's shells and reads of /etc/shadow go on (the
      // policies that act select pods; the rest report).
      expect(spawnSync("/bin/sh", ["-c", "head -c0 /etc/shadow && echo ok"], { encoding: "utf8" }).stdout).toBe("ok\n");
    } finally {
      process.kill(-run.pid!, "SIGINT");
    }
    expect(await exited).toBe(0);
    expect(stderr).toContain("stopped; programs detached");
  }, 150_000);
});

describe("README tour", () => {
  const tour = blocks("tour");

  it("runs as written and prints what the README shows", async () => {
    if (process.getuid?.() !== 0) throw new Error("the README's commands need root: run the tests as root");
    expect(tour.length).toBeGreaterThanOrEqual(4);
    const result = await runShell(tour.join("\n"), ROOT, 180_000);
    const transcript = `exit ${result.status}, signal ${result.signal}; output:\n${result.stdout}\n${result.stderr}`;
    expect(result.signal, transcript).toBeNull();
    expect(unkeptPromises(tour, result.stdout + result.stderr), transcript).toEqual([]);
    // What the comments cannot say: the exec was killed twice (before and after the broken
    // edit), no policy test failed, and the tour's last command (import) succeeded.
    expect(result.stdout.match(/^exit status 137$/gm), transcript).toHaveLength(2);
    expect(result.stdout, transcript).not.toMatch(/^FAIL /m);
    expect(result.status, transcript).toBe(0);
  }, 200_000);
});
