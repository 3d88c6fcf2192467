// docs/compiler.md stays true: its worked example is what the compiler produces.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compile } from "../../src/compiler/index.ts";
import { decide } from "../../src/plan/evaluate.ts";
import { validateSource } from "../../src/validate/index.ts";
import { ROOT } from "../support/cli.ts";

const doc = readFileSync(join(ROOT, "docs", "compiler.md"), "utf8");
const block = (lang: string) => {
  const match = new RegExp("```" + lang + "\\n([\\s\\S]*?)```").exec(doc);
  if (!match) throw new Error(`docs/compiler.md has no ${lang} block`);
  return match[1]!;
};

describe("docs/compiler.md worked example", () => {
  const { policies, diagnostics } = validateSource("compiler.md", block("yaml"));
  const plan = compile(policies).plan!;

  it("shows exactly the plan the compiler produces", () => {
    expect(diagnostics).toEqual([]);
    expect(plan.hooks[0]).toEqual(JSON.parse(block("json")));
  });

  it("decides the three events as the table says", () => {
    const exec = (binary: string, parent: string, uid: number) => decide(plan, { hook: "process.exec", process: { pid: 1, uid, binary }, parent: { binary: parent } });
    expect(exec("/bin/sh", "/usr/bin/node", 0)?.slot).toMatchObject({ rule: "shells", verdict: "killed" });
    expect(exec("/bin/sh", "/usr/lib/apt/methods/http", 0)).toBeNull();
    expect(exec("/tmp/x", "/bin/bash", 1000)?.slot).toMatchObject({ rule: "tmp-exec", verdict: "denied" });
  });
});
