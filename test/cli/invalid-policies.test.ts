// The suite of broken policies: each gives its exact messages and positions, and nothing
// of a file with an error is compiled or loaded.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { palisade } from "../support/cli.ts";

const dir = "test/fixtures/invalid";
const KERNEL_HINT =
  'in the kernel a field is compared with constants using ==, !=, in [...], startsWith, endsWith, <, <=, >, >= or cidr("...").containsIP(net.daddr); ' +
  "rules with action audit (or policies in monitor mode) may use any CEL, checked in user space";

describe("palisade validate on broken policies", () => {
  it.each([
    ["bad-yaml", ["9:34: error: Unexpected scalar at node end"]],
    ["wrong-types", [
      '6:9: error (spec.mode): invalid value "block", expected one of: enforce, monitor',
      "10:14: error (spec.rules[0].match): expected string, got number",
      '12:17: error (spec.rules[0].severity): invalid value "urgent", expected one of: critical, high, medium, low, info',
    ]],
    ["unknown-fields", [
      '6:3: error (spec.selectr): unknown field "selectr" in spec; did you mean "selector"?',
      '12:7: error (spec.rules[0].acton): unknown field "acton" in spec.rules[0]; did you mean "action"?',
    ]],
    ["cel-errors", [
      "9:22: error (spec.rules[0].match): `process.binnary`: no such field; did you mean `process.binary`?",
      "13:14: error (spec.rules[1].match): `file` is not available on hook process.exec; it provides process, k8s",
      "19:11: error (spec.rules[2].match): CEL: no such overload: int == string",
      `23:58: error (spec.rules[3].match): \`matches\` (a regular expression) cannot be decided in the kernel, so a rule with action deny cannot use it; ${KERNEL_HINT}`,
    ]],
    ["empty-rules", ["6:10: error (spec.rules): must have at least 1 item"]],
    ["duplicate-rules", ['11:13: error (spec.rules[1].name): duplicate rule name "shells" (first at line 7)']],
    ["half-valid", ['21:15: error (spec.rules[0].action): invalid value "block", expected one of: deny, kill, audit']],
  ])("%s", (name, errors) => {
    const file = `${dir}/${name}.yaml`;
    const result = palisade(["validate", file]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe([...errors.map((e) => `${file}:${e}`), `${errors.length} error${errors.length > 1 ? "s" : ""}`, ""].join("\n"));
  });

  it("reports every file's errors in one run, with -o json for machines", () => {
    const result = palisade(["validate", "-o", "json", dir]);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout);
    expect(report.valid).toBe(false);
    expect(new Set(report.errors.map((e: { file: string }) => e.file)).size).toBe(7);
    expect(report.errors[0]).toEqual({ file: `${dir}/bad-yaml.yaml`, line: 9, column: 34, code: "YamlSyntax", message: "Unexpected scalar at node end" });
  });

  it("compiles nothing from a file in which one document is broken", () => {
    const result = palisade(["compile", `${dir}/half-valid.yaml`]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
  });

  it("refuses too many multi-field rules on one hook, at the first rule past the limit", () => {
    const rules = Array.from({ length: 1025 }, (_, i) => [
      `    - name: r${String(i).padStart(4, "0")}`,
      "      hook: file.open",
      `      match: file.path == "/f${i}" && process.uid == ${i}`,
      "      action: deny",
    ].join("\n"));
    const file = join(mkdtempSync(join(tmpdir(), "palisade-")), "many.yaml");
    writeFileSync(file, ["apiVersion: palisade.dev/v1alpha1", "kind: TracingPolicy", "metadata: {name: many}", "spec:", "  rules:", ...rules, ""].join("\n"));
    const result = palisade(["validate", file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `${file}:${6 + 1024 * 4}:7: error (spec.rules[1024]): hook file.open has more than 1024 rule alternatives that test two or more fields ` +
        "(the width of the kernel's rule mask); rules that test a single field (and no selector) do not count toward this limit (this rule is the first past it)\n1 error\n",
    );
  });
});
