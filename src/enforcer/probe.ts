// What this kernel can enforce, per hook, found by loading (and where possible attaching,
// then detaching) the smallest program of each kind (bpf/lsm/probe.bpf.c). Never by
// kernel version. `palisade probe` prints this.

import { readFileSync } from "node:fs";
import type { Hook } from "../policy/model.ts";
import { bpfObjectPath, native, type ProbeAttempt } from "./native.ts";
import { activeLsms, cgroup2Root, ensureFilesystems, privilegeProblem } from "./system.ts";
import type { Capabilities } from "./encode.ts";

export type Backend = "lsm" | "kprobe" | "tracepoint";

/** Backends this agent implements, best first. */
export const IMPLEMENTED_BACKENDS: readonly Backend[] = ["tracepoint"];

export interface HookProbe {
  hook: Hook;
  /** What each backend's programs did when tried. */
  attempts: Record<string, ProbeAttempt>;
  /** Backends whose programs this kernel accepts for the hook. */
  available: Backend[];
  /** The backend the agent uses here (the best available one it implements), or null: the hook cannot be enforced. */
  selected: Backend | null;
  /** Which actions the selected backend carries out (null: it cannot). */
  actions: { deny: "deny" | null; kill: "kill" | null; audit: "audit" | null };
  notes: string[];
}

export interface ProbeResult {
  kernel: string;
  lsms?: string[];
  cgroup2?: string;
  problem?: string;
  hooks: HookProbe[];
}

const CANDIDATES: Record<Hook, Partial<Record<Backend, string[]>>> = {
  "process.exec": { lsm: ["probe_lsm_exec"], kprobe: ["probe_fmodret_exec", "probe_kprobe_exec"], tracepoint: ["probe_tp_exec"] },
  "file.open": { lsm: ["probe_lsm_open"], kprobe: ["probe_fmodret_open", "probe_kprobe_open"], tracepoint: ["probe_tp_open"] },
  "net.connect": { lsm: ["probe_lsm_connect"], kprobe: ["probe_fmodret_connect"], tracepoint: ["probe_cgroup_connect", "probe_cgroup_connect_kill"] },
};

let cached: ProbeResult | undefined;

export function probe(options: { fresh?: boolean } = {}): ProbeResult {
  if (cached && !options.fresh) return cached;
  const kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  const problem = privilegeProblem();
  if (problem) {
    return {
      kernel, problem,
      hooks: (Object.keys(CANDIDATES) as Hook[]).map((hook) => ({
        hook, attempts: {}, available: [], selected: null, actions: { deny: null, kill: null, audit: null }, notes: [problem],
      })),
    };
  }
  ensureFilesystems();
  const lsms = activeLsms();
  const cgroup2 = cgroup2Root();
  const object = bpfObjectPath("probe");
  const tried = new Map<string, ProbeAttempt>();
  const attempt = (program: string): ProbeAttempt => {
    let result = tried.get(program);
    if (!result) {
      // cgroup programs cannot attach without a cgroup: loading is what tells.
      result = native().probeProgram(object, program, { attach: program.startsWith("probe_cgroup") ? "none" : "auto" });
      tried.set(program, result);
    }
    return result;
  };

  const hooks = (Object.keys(CANDIDATES) as Hook[]).map((hook): HookProbe => {
    const attempts: Record<string, ProbeAttempt> = {};
    const available: Backend[] = [];
    const notes: string[] = [];
    for (const [backend, programs] of Object.entries(CANDIDATES[hook]) as [Backend, string[]][]) {
      const results = programs.map((p) => (attempts[p] = attempt(p)));
      let ok = backend === "kprobe" ? results.some((r) => r.ok) : results[0]!.ok;
      if (backend === "lsm" && ok && lsms && !lsms.includes("bpf")) {
        ok = false;
        notes.push("BPF LSM programs load, but bpf is not among the active LSMs (/sys/kernel/security/lsm)");
      }
      if (backend === "tracepoint" && hook === "net.connect" && !cgroup2) {
        ok = false;
        notes.push("no cgroup v2 hierarchy is mounted: the connect hooks have nowhere to attach");
      }
      if (ok) available.push(backend);
    }
    const selected = IMPLEMENTED_BACKENDS.find((b) => available.includes(b)) ?? null;
    const better = available.filter((b) => !IMPLEMENTED_BACKENDS.includes(b));
    if (better.length) notes.push(`this kernel also accepts the ${better.join(", ")} backend, which this agent does not implement yet`);
    let actions: HookProbe["actions"] = { deny: null, kill: null, audit: null };
    if (selected === "tracepoint") {
      const canKill = hook === "net.connect" ? attempts["probe_cgroup_connect_kill"]!.ok : true;
      actions = { deny: hook === "net.connect" ? "deny" : null, kill: canKill ? "kill" : null, audit: "audit" };
      if (hook !== "net.connect") notes.push(`cannot deny: a tracepoint runs after the ${hook === "file.open" ? "open" : "exec"} happened; rules may kill instead (fallback: kill)`);
    }
    if (!selected) notes.push("no backend this agent implements works here: rules on this hook cannot be enforced");
    return { hook, attempts, available, selected, actions, notes };
  });
  cached = { kernel, ...(lsms && { lsms }), ...(cgroup2 && { cgroup2 }), hooks };
  return cached;
}

/** What each hook can do here, in the compiler's format (compile({ capabilities })). */
export function capabilitiesOf(result: ProbeResult): Capabilities {
  const out: Capabilities = {};
  for (const h of result.hooks) {
    const can: ("deny" | "kill")[] = [];
    if (h.actions.deny === "deny") can.push("deny");
    if (h.actions.kill === "kill") can.push("kill");
    out[h.hook] = can;
  }
  return out;
}
