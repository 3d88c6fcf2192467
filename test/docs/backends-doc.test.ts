// docs/backends.md stays true to the enforcer: one row per backend, saying whether it can
// deny and kill as BACKEND_INFO does for each hook, and the preference order per hook.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BACKEND_INFO, BACKEND_ORDER, IMPLEMENTED_BACKENDS } from "../../src/enforcer/probe.ts";
import { ROOT } from "../support/cli.ts";

const doc = readFileSync(join(ROOT, "docs", "backends.md"), "utf8");

describe("docs/backends.md", () => {
  it("has a row per backend whose deny column matches what each hook can do", () => {
    for (const backend of IMPLEMENTED_BACKENDS) {
      const row = doc.split("\n").find((l) => l.startsWith(`| \`${backend}\` |`));
      expect(row, backend).toBeDefined();
      const deny = row!.split(/(?<!\\)\|/).map((c) => c.trim())[6]!;
      const denying = (Object.keys(BACKEND_INFO) as (keyof typeof BACKEND_INFO)[]).filter((hook) => BACKEND_INFO[hook][backend].deny);
      if (denying.length === 3) expect(deny, backend).toMatch(/^EPERM/);
      else if (denying.length === 0) expect(deny, backend).toBe("no");
      else expect(deny, backend).toBe(`${denying.map((h) => h.split(".")[1]).join(", ")} only`);
      for (const hook of Object.keys(BACKEND_INFO) as (keyof typeof BACKEND_INFO)[]) expect(BACKEND_INFO[hook][backend].kill).toBe(true);
    }
  });

  it("states the preference order per hook", () => {
    const order = (hook: keyof typeof BACKEND_ORDER) => BACKEND_ORDER[hook].map((b) => `\`${b}\``).join(", ");
    expect(order("process.exec")).toBe(order("file.open"));
    expect(doc.replace(/\s+/g, " ")).toContain(`exec and open ${order("process.exec")}; connect ${order("net.connect")}`);
  });
});
