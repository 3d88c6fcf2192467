// Every relative link of README.md and docs/*.md leads somewhere: the file exists, and a
// #fragment into a Markdown file names one of its headings (GitHub's anchor for it).

import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../support/cli.ts";

const documents = [join(ROOT, "README.md"), ...readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => join(ROOT, "docs", f))];

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
const anchor = (heading: string) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-");

function anchorsOf(file: string): Set<string> {
  const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchor(m[1]!)));
}

/** Links outside code: [text](target), without URLs with a scheme. */
function linksOf(file: string): string[] {
  const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "").replace(/`[^`\n]*`/g, "");
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((t) => !/^[a-z]+:/.test(t));
}

describe("links in the documentation", () => {
  it("knows GitHub's anchors", () => {
    expect(anchor("Testing policies offline: `palisade test`")).toBe("testing-policies-offline-palisade-test");
  });

  for (const doc of documents) {
    it(`${relative(ROOT, doc)}: every relative link resolves`, () => {
      const broken = linksOf(doc).filter((target) => {
        const [path, fragment] = target.split("#");
        const file = path ? join(dirname(doc), path) : doc;
        if (!existsSync(file)) return true;
        return fragment !== undefined && file.endsWith(".md") && !anchorsOf(file).has(fragment);
      });
      expect(broken).toEqual([]);
    });
  }
});
