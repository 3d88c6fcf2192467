import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { palisade } from "../support/cli.ts";

// Every bundled policy (not its PolicyTest fixture).
const bundled = readdirSync("policies").filter((f) => f.endsWith(".yaml") && !f.endsWith(".test.yaml")).sort().map((f) => `policies/${f}`);

describe("palisade compile", () => {
  it("prints the same plan, byte for byte, whatever the order of files", () => {
    const forward = palisade(["compile", ...bundled]);
    const backward = palisade(["compile", ...[...bundled].reverse()]);
    const directory = palisade(["compile", "policies"]);
    expect(forward.code).toBe(0);
    expect(backward.stdout).toBe(forward.stdout);
    expect(directory.stdout).toBe(forward.stdout);
    const plan = JSON.parse(forward.stdout);
    expect(plan.kind).toBe("KernelPlan");
    expect(plan.digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it("prints YAML with -o yaml", () => {
    const yaml = palisade(["compile", "-o", "yaml", "policies"]);
    expect(yaml.code).toBe(0);
    expect(parseYaml(yaml.stdout)).toEqual(JSON.parse(palisade(["compile", "policies"]).stdout));
  });

  it("exits 2 with a clear message for a missing file", () => {
    expect(palisade(["compile", "no/such.yaml"])).toEqual({ code: 2, stdout: "", stderr: "palisade: no such file or directory: no/such.yaml\n" });
  });
});

describe("palisade test", () => {
  it("passes the bundled policies' tests", () => {
    const result = palisade(["test"]);
    expect(result.code).toBe(0);
    expect(bundled.length).toBeGreaterThan(3);
    expect(result.stdout).toContain(`${bundled.length} of ${bundled.length} policy tests passed`);
  });

  it("fails with a diff a person can read when an event is not decided as expected", () => {
    const dir = mkdtempSync(join(tmpdir(), "palisade-test-"));
    writeFileSync(join(dir, "p.yaml"), [
      "apiVersion: palisade.dev/v1alpha1", "kind: TracingPolicy", "metadata: {name: shells}", "spec:", "  rules:",
      "    - {name: sh, hook: process.exec, match: 'process.binary == \"/bin/sh\"', action: kill}", "",
    ].join("\n"));
    writeFileSync(join(dir, "p.test.yaml"), "apiVersion: palisade.dev/v1alpha1\nkind: PolicyTest\nmetadata: {name: shells}\npolicies: [p.yaml]\nevents: events.jsonl\n");
    writeFileSync(join(dir, "events.jsonl"), [
      '{"hook":"process.exec","process":{"binary":"/bin/sh"},"action":"killed","policy":"shells","rule":"sh"}',
      '{"hook":"process.exec","process":{"binary":"/bin/bash"},"parent":{"binary":"/usr/bin/node"},"action":"killed","policy":"shells","rule":"sh"}',
      '{"hook":"process.exec","process":{"binary":"/bin/sh"},"action":"allowed"}',
      "",
    ].join("\n"));
    const result = palisade(["test", dir]);
    expect(result.code).toBe(1);
    const shownDir = dir;
    expect(result.stdout).toBe([
      `FAIL shells (${shownDir}/p.test.yaml): 1/3 events as expected`,
      `  ${shownDir}/events.jsonl:2: process.exec /bin/bash (parent /usr/bin/node)`,
      "    expected: killed by shells/sh",
      "    got:      allowed",
      `  ${shownDir}/events.jsonl:3: process.exec /bin/sh`,
      "    expected: allowed",
      "    got:      killed by shells/sh",
      "0 of 1 policy tests passed",
      "",
    ].join("\n"));
  });

  it("reports malformed events with their line", () => {
    const dir = mkdtempSync(join(tmpdir(), "palisade-test-"));
    writeFileSync(join(dir, "p.yaml"), "apiVersion: palisade.dev/v1alpha1\nkind: TracingPolicy\nmetadata: {name: p}\nspec:\n  rules:\n    - {name: r, hook: file.open, match: 'file.path == \"/x\"', action: deny}\n");
    writeFileSync(join(dir, "p.test.yaml"), "apiVersion: palisade.dev/v1alpha1\nkind: PolicyTest\nmetadata: {name: p}\npolicies: [p.yaml]\nevents: e.jsonl\n");
    writeFileSync(join(dir, "e.jsonl"), '{"hook":"file.open","process":{"binary":"/bin/cat"},"action":"allowed"}\n');
    const result = palisade(["test", "-o", "json", dir]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)[0].errors).toEqual([
      { file: `${dir}/e.jsonl`, line: 1, column: 1, code: "PolicyTestEvent", message: 'a file.open event needs "file.path"' },
    ]);
  });
});

describe("palisade import tetragon", () => {
  it("writes policies that validate, and names each feature it could not translate", () => {
    const out = join(mkdtempSync(join(tmpdir(), "palisade-import-")), "imported.yaml");
    const result = palisade(["import", "tetragon", "test/fixtures/tetragon/file-open.yaml", "-o", out]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe(
      'test/fixtures/tetragon/file-open.yaml:23:5: not imported (spec.kprobes[1].call): syscall "sys_write" sees its arguments as the process passed them, ' +
        "before the kernel resolves them; Palisade matches what the kernel resolved; Palisade translates kprobes security_file_open, security_bprm_check and tcp_connect, " +
        "and lsmhooks file_open and bprm_check_security\nimported 1 policy; 1 feature not imported\n",
    );
    expect(palisade(["validate", out]).stdout).toBe("valid: 1 policy, 2 rules in 1 file\n");
  });
});
