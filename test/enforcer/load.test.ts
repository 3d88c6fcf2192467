// Loading apart from starting: Enforcer.load() loads the programs and says what they can do
// (what the agent compiles for) without attaching anything or changing what is in force;
// start() puts a plan in force and attaches. Needs root and BPF.

import { afterEach, describe, expect, it } from "vitest";
import { copyFileSync } from "node:fs";
import { Enforcer } from "../../src/enforcer/index.ts";
import { compile } from "../../src/compiler/index.ts";
import { makePolicy } from "../support/policies.ts";
import { EventLog, planOf, removeDir, requireKernel, run, tempDir } from "./support.ts";

const PIN_DIR = "/sys/fs/bpf/palisade-test-load";
const canRun = requireKernel();

let enforcer: Enforcer | undefined;
let dir: string | undefined;

afterEach(() => {
  enforcer?.close();
  enforcer = undefined;
  if (dir) removeDir(dir);
  dir = undefined;
});

describe("Enforcer.load, then start", () => {
  it("load attaches nothing; start puts the plan in force; a plan that cannot be applied leaves it loaded for another try", async () => {
    if (!canRun) return;
    Enforcer.removePinned(PIN_DIR);
    dir = tempDir("palisade-load");
    copyFileSync("/bin/echo", `${dir}/denied-echo`);
    enforcer = Enforcer.load({ pinDir: PIN_DIR, reuse: false });
    expect(enforcer.links()).toEqual([]);
    expect(enforcer.capabilities["process.exec"]).toContain("kill");
    expect(run(`${dir}/denied-echo`, ["hi"]).stdout).toBe("hi\n");

    // Compiled without this kernel's capabilities: file.open cannot deny here.
    const { plan: unfit } = compile([makePolicy({ name: "x", rules: [{ name: "d", hook: "file.open", match: 'file.path == "/x"', action: "deny" }] })]);
    expect(() => enforcer!.start({ plan: unfit! })).toThrow(/cannot do there/);
    expect(enforcer.links()).toEqual([]);

    const log = new EventLog();
    enforcer.start({ plan: planOf({ name: "p", rules: [{ name: "r", hook: "process.exec", match: `process.binary == "${dir}/denied-echo"`, action: "kill" }] }), onEvent: log.push });
    expect(enforcer.links().length).toBeGreaterThan(0);
    const r = run(`${dir}/denied-echo`, ["hi"]);
    expect(r.signal).toBe("SIGKILL");
    await log.wait((e) => e.event.process.pid === r.pid);
    expect(() => enforcer!.start()).toThrow(/started already/);
  });

  it("started without a plan on fresh maps, nothing is decided (both generations idle)", async () => {
    if (!canRun) return;
    Enforcer.removePinned(PIN_DIR);
    const log = new EventLog();
    enforcer = Enforcer.open({ pinDir: PIN_DIR, reuse: false, onEvent: log.push });
    expect(run("/bin/true").status).toBe(0);
    expect(await log.settle(() => true)).toEqual([]);
    expect(enforcer.counters().decisions).toBe(0n);
  });
});
