// Test variants of the library's policies, derived from the shipped files (never hand
// copies), for kernels shared with other processes: see library.test.ts.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { ROOT } from "../support/cli.ts";

export const LIBRARY = join(ROOT, "policies");
/** The group the tests' own processes run as; host variants act on it only. */
export const TEST_GID = 54321;

export interface PolicyDoc {
  metadata: { name: string };
  spec: { selector?: unknown; rules: { name: string; match: string; action: string }[] };
}

export const shipped = (name: string): PolicyDoc => parse(readFileSync(join(LIBRARY, `${name}.yaml`), "utf8"));

/** The shipped policy without its selector, each rule narrowed to the tests' processes. */
export function hostVariant(name: string, rewriteMatch: (match: string) => string = (m) => m): PolicyDoc {
  const doc = shipped(name);
  delete doc.spec.selector;
  for (const rule of doc.spec.rules) rule.match = `(${rewriteMatch(rule.match)}) && process.gid == ${TEST_GID}`;
  return doc;
}
