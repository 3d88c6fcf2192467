// Commands of docs/*.md run as written: every block marked `<!-- doc-test: NAME -->` runs,
// with the other blocks of the same NAME in that file, in one shell from the clone's root,
// and must exit 0 and print every line its comments promise (see doc-blocks.ts). Needs
// root where the blocks load BPF programs.

import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../support/cli.ts";
import { markedBlocks, runShell, unkeptPromises } from "./doc-blocks.ts";

const DOCS = join(ROOT, "docs");

const groups = readdirSync(DOCS).filter((f) => f.endsWith(".md")).flatMap((file) => {
  const text = readFileSync(join(DOCS, file), "utf8");
  const names = new Set([...text.matchAll(/<!-- doc-test: ([\w-]+) -->/g)].map((m) => m[1]!));
  return [...names].map((name) => ({ file, name, blocks: markedBlocks(text, "doc-test", name) }));
});

describe("runnable blocks of docs/", () => {
  it("finds the marked blocks, each followed by its sh block", () => {
    const markers = readdirSync(DOCS).filter((f) => f.endsWith(".md"))
      .reduce((n, f) => n + [...readFileSync(join(DOCS, f), "utf8").matchAll(/<!-- doc-test: /g)].length, 0);
    expect(groups.reduce((n, g) => n + g.blocks.length, 0)).toBe(markers);
    expect(groups.map((g) => `${g.file}#${g.name}`)).toContain("operations.md#restarts");
  });

  it("notices a promise its output does not keep", () => {
    expect(unkeptPromises(["echo hello\n# hello …\n# bye\n"], "hello world\n")).toEqual(["bye"]);
  });

  for (const { file, name, blocks } of groups) {
    it(`${file} ${name}: runs as written and prints what it promises`, async () => {
      const result = await runShell(blocks.join("\n"), ROOT, 180_000);
      const transcript = `exit ${result.status}, signal ${result.signal}; output:\n${result.stdout}\n${result.stderr}`;
      expect(unkeptPromises(blocks, result.stdout + result.stderr), transcript).toEqual([]);
      expect(result.status, transcript).toBe(0);
    }, 200_000);
  }
});
