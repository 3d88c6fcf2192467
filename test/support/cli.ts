// Runs bin/palisade as a user would, from the repository root.

import { spawnSync } from "node:child_process";
import { join } from "node:path";

export const ROOT = join(import.meta.dirname, "..", "..");

export function palisade(args: string[], options: { cwd?: string } = {}) {
  const result = spawnSync(join(ROOT, "bin", "palisade"), args, { cwd: options.cwd ?? ROOT, encoding: "utf8" });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}
