// The directory source as the agent uses it: watches policy paths and produces a new plan
// whenever they change. Each file is all-or-nothing: a file that does not validate keeps
// its last good version in force (none, if it never had one) and is reported with its
// positions; the other files still update. A change that only fails when compiled with
// the rest (two files defining one policy, a kernel limit) is refused whole, and the
// previous plan stays.

import { existsSync, readFileSync, statSync, watch, type FSWatcher } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { sortDiagnostics, type Diagnostic } from "../diagnostics.ts";
import type { Policy } from "../policy/model.ts";
import type { KernelPlan } from "../plan/types.ts";
import { checkRules, compile, type CompileOptions } from "../compiler/index.ts";
import { validateSource } from "../validate/index.ts";
import { expandPaths, isPolicyFile } from "./files.ts";

export interface PolicyUpdate {
  /** The plan now wanted: the last good version of every file. */
  plan: KernelPlan;
  policies: Policy[];
  /** Files read in this round whose content changed, appeared or disappeared. */
  changed: string[];
}

export interface Rejection {
  /** Files whose current content is not in force. */
  files: string[];
  diagnostics: Diagnostic[];
}

interface FileState {
  text: string;
  /** Policies of the last good version of the file. */
  good: Policy[];
}

export class PolicySource {
  private readonly paths: readonly string[];
  private readonly options: CompileOptions;
  private readonly files = new Map<string, FileState>();
  private plan: KernelPlan | undefined;
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  /**
   * While watching: the paths the watchers named since the last reload, so that a reload
   * reads only those; undefined when a full scan is needed (not watching, a watcher that gave
   * no name, a directory that changed, a reload that failed).
   */
  private named: Set<string> | undefined;

  /** `options` are the compiler's (the kernel's capabilities, for one). */
  constructor(paths: readonly string[], options: CompileOptions = {}) {
    this.paths = paths;
    this.options = options;
  }

  get current(): KernelPlan | undefined {
    return this.plan;
  }

  /**
   * Reads the paths again; returns the new plan if it changed, and what was refused.
   * `accept` puts a new plan in force (the enforcer); if it throws, nothing changes here
   * either, so the next reload tries again.
   */
  reload(accept: (plan: KernelPlan) => void = () => {}): { update?: PolicyUpdate; rejection?: Rejection } {
    const named = this.named;
    if (this.watchers.length) this.named = new Set();
    try {
      return this.reloadFiles(named ? this.namedFiles(named) : undefined, accept);
    } catch (e) {
      this.named = undefined;
      throw e;
    }
  }

  /**
   * Of the paths the watchers named, the policy files (present or gone) this source reads;
   * undefined when a directory among them changed (a full scan tells what is inside).
   */
  private namedFiles(named: Set<string>): { present: Set<string>; read: string[] } | undefined {
    const present = new Set(this.files.keys());
    const read: string[] = [];
    for (const path of named) {
      let isDir = false;
      try {
        isDir = statSync(path).isDirectory();
      } catch {
        // gone
      }
      if (isDir) return undefined;
      if (!this.isPolicyPath(path)) continue;
      if (existsSync(path)) {
        present.add(path);
        read.push(path);
      } else {
        present.delete(path);
      }
    }
    return { present, read };
  }

  /** Whether a full scan would read `path`: a path given, or a policy file below a directory given (no dot-names on the way). */
  private isPolicyPath(path: string): boolean {
    return this.paths.some((root) => {
      if (path === root) return true;
      const rel = relative(root, path);
      if (!rel || rel.startsWith("..")) return false;
      const parts = rel.split(sep);
      return parts.every((p) => !p.startsWith(".")) && isPolicyFile(parts.at(-1)!);
    });
  }

  private reloadFiles(hint: { present: Set<string>; read: string[] } | undefined, accept: (plan: KernelPlan) => void): { update?: PolicyUpdate; rejection?: Rejection } {
    const present = hint?.present ?? new Set(this.paths.flatMap((p) => (existsSync(p) ? expandPaths([p]) : [])));
    const next = new Map(this.files);
    const changed: string[] = [];
    const rejected: Diagnostic[] = [];
    const rejectedFiles: string[] = [];
    for (const file of this.files.keys()) {
      if (!present.has(file)) {
        next.delete(file);
        changed.push(file);
      }
    }
    for (const file of hint?.read ?? present) {
      let text: string;
      try {
        text = readFileSync(file, "utf8");
      } catch {
        continue; // removed between listing and reading: the next round sees it gone
      }
      const before = this.files.get(file);
      if (before?.text === text) continue;
      changed.push(file);
      const result = validateSource(file, text);
      const problems = [...result.diagnostics, ...checkRules(result.salvaged)];
      if (problems.length) {
        rejected.push(...problems);
        rejectedFiles.push(file);
        next.set(file, { text, good: before?.good ?? [] });
      } else {
        next.set(file, { text, good: result.policies });
      }
    }
    const rejection = (extra: Diagnostic[] = [], files = rejectedFiles): Rejection | undefined =>
      rejected.length + extra.length ? { files, diagnostics: sortDiagnostics([...rejected, ...extra]) } : undefined;
    if (!changed.length) return {};

    const policiesNow = () => [...next.keys()].sort().flatMap((f) => next.get(f)!.good);
    const compileAll = () => compile(policiesNow(), this.options);
    // One compile when everything compiles. Otherwise a changed file whose problems are its
    // own (its CEL, what this kernel can do), found by compiling it alone, keeps its last
    // good version, and the rest is compiled again.
    let { plan, diagnostics } = compileAll();
    if (!plan) {
      let own = false;
      for (const file of changed) {
        const state = next.get(file);
        if (!state || state.good === this.files.get(file)?.good) continue;
        const alone = compile(state.good, this.options).diagnostics;
        if (!alone.length) continue;
        own = true;
        rejected.push(...alone);
        rejectedFiles.push(file);
        next.set(file, { text: state.text, good: this.files.get(file)?.good ?? [] });
      }
      if (own) ({ plan, diagnostics } = compileAll());
    }
    if (!plan) {
      // Only the combination fails: keep every file as it was, so the next change retries.
      const r = rejection(diagnostics, changed);
      return r ? { rejection: r } : {};
    }
    const r = rejection();
    if (plan.digest !== this.plan?.digest) accept(plan);
    for (const [file, state] of next) this.files.set(file, state);
    for (const file of this.files.keys()) if (!next.has(file)) this.files.delete(file);
    if (plan.digest === this.plan?.digest) return r ? { rejection: r } : {};
    this.plan = plan;
    return { update: { plan, policies: policiesNow(), changed }, ...(r && { rejection: r }) };
  }

  /** Watches the paths (directories recursively; a file through its directory, as editors replace files). */
  watch(onChange: () => void, debounceMs = 5): void {
    const fire = () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(onChange, debounceMs);
    };
    this.named = undefined; // what changed before the watchers started is read by a full scan
    for (const p of this.paths) {
      const isDir = statSync(p).isDirectory();
      const dir = isDir ? p : dirname(p);
      this.watchers.push(watch(dir, { recursive: isDir }, (_event, name) => {
        if (name) this.named?.add(join(dir, name));
        else this.named = undefined;
        fire();
      }));
    }
  }

  close(): void {
    clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }
}
