// The agent (`palisade run`): policies -> plan -> kernel, and the kernel's decisions ->
// events. The core (probe, enforcer, outputs) is shared by the two policy sources: a
// directory of files here, the Kubernetes API in src/controller/. It probes the kernel
// first so that policies are compiled for what this kernel can do, puts the first plan in
// force before the programs attach (no moment without rules), then applies each change
// hitlessly. Shuts down on SIGTERM/SIGINT.

import { existsSync } from "node:fs";
import { hostname } from "node:os";
import { formatDiagnostic } from "../diagnostics.ts";
import { Enforcer, describeActions, type Backend, type Capabilities, type EnforcerEvent, type Workload } from "../enforcer/index.ts";
import type { RuntimeEvent } from "../events/event.ts";
import type { KernelPlan } from "../plan/types.ts";
import type { Hook } from "../policy/model.ts";
import { startOutputs, type Outputs } from "./outputs.ts";
import { PolicySource, type Rejection } from "../source/watch.ts";

/** What every agent has, whatever feeds it policies (a directory, or the Kubernetes API). */
export interface AgentCoreOptions {
  /** JSON lines destination; "-" or undefined: stdout. */
  eventsFile?: string;
  /** Leave the programs attached and the rules in force at exit, for an agent that restarts. */
  keepAttached?: boolean;
  /** bpffs directory for the pinned programs and maps (default /sys/fs/bpf/palisade). */
  pinDir?: string;
  /** The node name in events (default: the host name). */
  node?: string;
  /** host:port of the Prometheus endpoint (/metrics); false: none. Default 127.0.0.1:9464. */
  metricsAddress?: string | false;
  /** Unix socket of the observe stream; false: none. Default /run/palisade/observe.sock. */
  observeSocket?: string | false;
  log?: (line: string) => void;
}

export interface AgentOptions extends AgentCoreOptions {
  policies: string[];
}

export interface Agent {
  /** Resolves when the agent has stopped (after stop() or a signal). */
  stopped: Promise<void>;
  stop(): Promise<void>;
}

/**
 * The part of the agent every policy source shares: the kernel probe, the enforcer and the
 * event outputs (JSON lines, OpenTelemetry, and listeners such as the PolicyReporter).
 */
export interface AgentCore {
  readonly node: string;
  /** What each hook can do on this kernel: compile for this. */
  readonly capabilities: Capabilities;
  /** The backend each hook got, or null where it is not enforceable here. */
  readonly backends: Partial<Record<Hook, Backend | null>>;
  readonly log: (line: string) => void;
  /** Present once the first plan is in force. */
  readonly enforcer: Enforcer | undefined;
  /**
   * The first plan opens the enforcer (rules in force before the programs attach, with
   * `workloads` classified); later ones apply hitlessly, keeping the enforcer's workloads.
   */
  enforce(plan: KernelPlan, workloads?: ReadonlyMap<bigint, Workload>): void;
  /** JSON lines, OpenTelemetry, observe and metrics (src/agent/outputs.ts). */
  readonly outputs: Outputs;
  /** Another consumer of every event, after the JSON lines and OpenTelemetry outputs. */
  addEventListener(listener: (event: RuntimeEvent) => void): void;
  close(): Promise<void>;
}

export function startAgentCore(options: AgentCoreOptions): AgentCore {
  const log = options.log ?? ((line: string) => process.stderr.write(`palisade: ${line}\n`));
  const node = options.node ?? hostname();
  // Loaded (not attached) before anything is compiled: should this kernel refuse a program
  // its probe let through, that hook has fallen back already, and policies are compiled
  // for what is actually loaded.
  const loaded = Enforcer.load({ node, ...(options.pinDir && { pinDir: options.pinDir }) });
  const probed = loaded.probe;
  for (const h of probed.hooks) {
    const can = describeActions(h);
    log(`${h.hook}: ${h.selected ? `${h.selected} backend (${can})` : "not enforceable here"}${h.notes.length ? `; ${h.notes.join("; ")}` : ""}`);
  }
  const backends = Object.fromEntries(probed.hooks.map((h) => [h.hook, h.selected])) as Partial<Record<Hook, Backend | null>>;
  const selected = Object.fromEntries(probed.hooks.flatMap((h) => (h.selected ? [[h.hook, h.selected]] : [])));
  let outputs: Outputs;
  try {
    outputs = startOutputs({
      node, eventsFile: options.eventsFile, backends: selected, ruleVersion: () => enforcer?.plan?.digest.slice(0, 12), log, kernel: () => enforcer,
      metricsAddress: options.metricsAddress, observeSocket: options.observeSocket,
    });
  } catch (e) {
    loaded.close({ keepAttached: loaded.reusedMaps });
    throw e;
  }
  const listeners: ((event: RuntimeEvent) => void)[] = [];

  let enforcer: Enforcer | undefined;
  const onEvent = (e: EnforcerEvent) => {
    outputs.write(e.event);
    for (const listener of listeners) listener(e.event);
  };
  return {
    node,
    capabilities: loaded.capabilities,
    backends,
    log,
    outputs,
    get enforcer() {
      return enforcer;
    },
    enforce(plan, workloads) {
      if (enforcer) outputs.planApplied(plan, enforcer.applyPlan(plan).durationMs);
      else {
        loaded.start({ plan, ...(workloads && { workloads }), onEvent, onError: (e) => log(`event: ${e.message}`) });
        enforcer = loaded;
        outputs.planApplied(plan);
      }
    },
    addEventListener(listener) {
      listeners.push(listener);
    },
    async close() {
      // Never started: a previous agent's programs and rules stay as they were.
      if (enforcer) enforcer.close({ keepAttached: options.keepAttached ?? false });
      else loaded.close({ keepAttached: loaded.reusedMaps });
      await outputs.close();
      log(options.keepAttached ? "stopped; rules stay in force for the next agent" : "stopped; programs detached");
    },
  };
}

export function describePlan(plan: KernelPlan): string {
  const rules = new Set(plan.hooks.flatMap((h) => h.slots.map((s) => `${s.policy}/${s.rule}`))).size;
  const n = plan.policies.length;
  return `plan ${plan.digest.slice(0, 12)}: ${n} polic${n === 1 ? "y" : "ies"}, ${rules} rule${rules === 1 ? "" : "s"}`;
}

/** Runs `stop` on SIGTERM or SIGINT; the agent handle every source returns. */
export function agentLifecycle(close: () => Promise<void>): Agent {
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      try {
        await close();
      } finally {
        resolveStopped();
      }
    })());
  const onSignal = () => void stop();
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return { stopped, stop };
}

/** The standalone agent: policy files and directories, watched for changes. */
export function startAgent(options: AgentOptions): Agent {
  for (const p of options.policies) if (!existsSync(p)) throw new Error(`no such file or directory: ${p}`);
  const core = startAgentCore(options);
  const log = core.log;
  const source = new PolicySource(options.policies, { capabilities: core.capabilities });
  const reportRejection = (r: Rejection) => {
    core.outputs.policyRejected();
    for (const d of r.diagnostics) log(formatDiagnostic(d));
    log(`not applied: ${r.files.join(", ")} (what was in force stays in force)`);
  };

  const first = source.reload((plan) => core.enforce(plan));
  if (first.rejection) reportRejection(first.rejection);
  if (!core.enforcer) throw new Error("no plan to enforce");
  log(`enforcing ${describePlan(core.enforcer.plan!)}`);

  source.watch(() => {
    try {
      const started = performance.now();
      const { update, rejection } = source.reload((plan) => core.enforce(plan));
      if (rejection) reportRejection(rejection);
      if (update) log(`enforcing ${describePlan(update.plan)} (${update.changed.join(", ")}; applied in ${(performance.now() - started).toFixed(1)} ms)`);
    } catch (e) {
      log(`${(e as Error).message}`);
    }
  });

  return agentLifecycle(async () => {
    source.close();
    await core.close();
  });
}
