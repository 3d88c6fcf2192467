// The standalone agent as a user runs it: `palisade run` on a policy directory, real
// processes, a real kernel. Needs root and BPF (fails, never skips, without them).

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../support/cli.ts";

const PIN_DIR = "/sys/fs/bpf/palisade-test-agent";
const dir = mkdtempSync(join(tmpdir(), "palisade-agent-"));
const forbidden = join(dir, "forbidden");
const policies = join(dir, "policies");
const eventsFile = join(dir, "events.jsonl");

const policy = (action: string, extra = "") =>
  `apiVersion: palisade.dev/v1alpha1\nkind: TracingPolicy\nmetadata: {name: demo}\nspec:\n  rules:\n` +
  `    - {name: no-forbidden, hook: process.exec, match: 'process.binary == "${forbidden}"', action: ${action}, severity: high}\n${extra}`;

let agent: ChildProcess;
let log = "";

function waitForLog(pattern: RegExp, after = 0): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent never logged ${pattern}; log:\n${log}`)), 30_000);
    const check = () => {
      if (pattern.test(log.slice(after))) {
        clearTimeout(timer);
        agent.stderr!.off("data", check);
        resolve();
      }
    };
    agent.stderr!.on("data", check);
    check();
  });
}

const runForbidden = () => spawnSync(forbidden, [], { encoding: "utf8" });
const events = () => readFileSync(eventsFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("the agent tests need root (CAP_BPF, CAP_SYS_ADMIN): run them as root");
  copyFileSync("/usr/bin/id", forbidden);
  spawnSync("mkdir", ["-p", policies]);
  writeFileSync(join(policies, "demo.yaml"), policy("kill"));
  agent = spawn(join(ROOT, "bin", "palisade"), ["run", "--policies", policies, "--events-file", eventsFile, "--pin-dir", PIN_DIR], { stdio: ["ignore", "ignore", "pipe"] });
  agent.stderr!.setEncoding("utf8").on("data", (d: string) => (log += d));
  await waitForLog(/enforcing plan [0-9a-f]{12}: 1 policy, 1 rule\n/);
}, 60_000);

afterAll(() => {
  if (agent.exitCode === null) agent.kill("SIGKILL");
});

describe("palisade run", () => {
  it("kills a denied exec before it runs and writes the event", async () => {
    const result = runForbidden();
    expect(result.signal).toBe("SIGKILL");
    expect(result.stdout).toBe("");
    await expect.poll(events).toContainEqual(expect.objectContaining({
      hook: "process.exec", action: "killed", policy: "demo", rule: "no-forbidden", severity: "high",
      process: expect.objectContaining({ pid: result.pid, binary: forbidden }),
    }));
  });

  it("applies an edited file without a restart", async () => {
    const mark = log.length;
    writeFileSync(join(policies, "demo.yaml"), policy("audit"));
    await waitForLog(/enforcing plan .* \(.*demo\.yaml; applied in [\d.]+ ms\)/, mark);
    expect(runForbidden().status).toBe(0);
    await expect.poll(() => events().at(-1)).toMatchObject({ action: "audited", rule: "no-forbidden" });
  });

  it("reports a broken file with its position and keeps what is in force", async () => {
    writeFileSync(join(policies, "demo.yaml"), policy("kill"));
    await waitForLog(/enforcing plan .*demo\.yaml/, log.length);
    const mark = log.length;
    writeFileSync(join(policies, "demo.yaml"), policy("kill").replace("process.binary", "process.binnary"));
    await waitForLog(/not applied: .*demo\.yaml/, mark);
    expect(log.slice(mark)).toContain(`${join(policies, "demo.yaml")}:6:`);
    expect(log.slice(mark)).toContain("`process.binnary`: no such field; did you mean `process.binary`?");
    expect(runForbidden().signal).toBe("SIGKILL");
  });

  it("stops on SIGTERM and detaches everything", async () => {
    agent.kill("SIGTERM");
    const code = await new Promise((resolve) => agent.once("exit", resolve));
    expect(code).toBe(0);
    expect(log).toContain("stopped; programs detached");
    expect(existsSync(PIN_DIR)).toBe(false);
    expect(runForbidden().status).toBe(0);
  });
});

describe("palisade probe", () => {
  it("says, per hook, which backend this kernel gives and what it can do", () => {
    const result = spawnSync(join(ROOT, "bin", "palisade"), ["probe", "-o", "json"], { encoding: "utf8" });
    expect(result.status).toBe(0);
    const probe = JSON.parse(result.stdout);
    expect(probe.hooks.map((h: { hook: string }) => h.hook)).toEqual(["process.exec", "file.open", "net.connect"]);
    for (const h of probe.hooks) {
      expect(h.selected, `${h.hook}: ${h.notes.join("; ")}`).not.toBeNull();
      expect(h.actions.audit).toBe("audit");
      // Whatever the backend, a deny that cannot be carried out must be said, not implied.
      if (h.actions.deny === null) expect(h.notes.join(" ")).toMatch(/cannot deny/);
    }
    const text = spawnSync(join(ROOT, "bin", "palisade"), ["probe"], { encoding: "utf8" }).stdout;
    expect(text).toMatch(/^kernel \S+/);
    expect(text).toMatch(/^process\.exec +\w+ +can: /m);
  });
});
