// The directory source: policy files and directories on disk -> validated policies.
// Directories are read recursively for *.yaml and *.yml, in sorted order; PolicyTest
// files (*.test.yaml) and dot-files are not policies and are skipped.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { sortDiagnostics, type Diagnostic } from "../diagnostics.ts";
import type { Policy } from "../policy/model.ts";
import { validateSource } from "../validate/index.ts";
import { checkRules, compile } from "../compiler/index.ts";
import type { KernelPlan } from "../plan/types.ts";

export interface LoadedPolicies {
  files: string[];
  policies: Policy[];
  diagnostics: Diagnostic[];
}

export const POLICY_TEST_SUFFIX = ".test.yaml";

export const isPolicyFile = (name: string) => /\.ya?ml$/.test(name) && !name.endsWith(POLICY_TEST_SUFFIX) && !name.startsWith(".");

/** Every policy file a path names: itself if a file, else the YAML files below it. */
export function expandPaths(paths: readonly string[], accept: (name: string) => boolean = isPolicyFile): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (entry.name.startsWith(".")) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (accept(entry.name)) files.push(path);
    }
  };
  for (const p of paths) {
    if (statSync(p).isDirectory()) walk(p);
    else files.push(p);
  }
  return files;
}

/** Reads and validates policy files; diagnostics name files as the paths given name them. */
export function loadPolicies(paths: readonly string[]): LoadedPolicies {
  const files = expandPaths(paths);
  const policies: Policy[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const file of files) {
    const result = validateSource(file, readFileSync(file, "utf8"));
    policies.push(...result.policies);
    diagnostics.push(...sortDiagnostics([...result.diagnostics, ...checkRules(result.salvaged)]));
  }
  return { files, policies, diagnostics };
}

/**
 * Loads, validates and compiles. With any problem there is no plan, and the problems are all
 * of them: schema errors do not hide the CEL errors of the other documents and files.
 */
export function loadAndCompile(paths: readonly string[]): LoadedPolicies & { plan?: KernelPlan } {
  const loaded = loadPolicies(paths);
  if (loaded.diagnostics.length) {
    return { ...loaded, diagnostics: sortDiagnostics([...loaded.diagnostics, ...checkRules(loaded.policies)]) };
  }
  const { plan, diagnostics } = compile(loaded.policies);
  return { ...loaded, diagnostics, ...(plan && { plan }) };
}
