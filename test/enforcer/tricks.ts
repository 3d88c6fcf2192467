// Builds test/enforcer/tricks.c (the system calls the bypass tests make) with the system C
// compiler into build/test/, once per source version. No vitest here: the VM scenario
// runner (test/e2e/backends/scenarios.ts) uses the result too.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");
const SOURCE = join(import.meta.dirname, "tricks.c");

/** The path of the built helper (building it if needed). */
export function tricksBinary(): string {
  const hash = createHash("sha256").update(readFileSync(SOURCE)).digest("hex").slice(0, 16);
  const dir = join(ROOT, "build", "test");
  const out = join(dir, `tricks-${hash}`);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    execFileSync("cc", ["-O2", "-Wall", "-Werror", "-o", tmp, SOURCE], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    throw new Error(`cannot build ${SOURCE} with cc (Debian package gcc): ${(e as { stderr?: Buffer }).stderr?.toString() ?? e}`);
  }
  renameSync(tmp, out);
  return out;
}

/** What tricks printed: {"ok":true,...} or {"errno":N,"step":...}. */
export interface TrickResult {
  ok?: boolean;
  errno?: number;
  step?: string;
  data?: string;
  opath?: boolean;
  nsPerOp?: number;
}

export function parseTrick(stdout: string): TrickResult | undefined {
  const line = stdout.split("\n").find((l) => l.startsWith("{"));
  return line ? (JSON.parse(line) as TrickResult) : undefined;
}
