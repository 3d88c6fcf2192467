// The standalone agent (`palisade run`): policy files -> plan -> kernel, and the kernel's
// decisions -> events. It probes the kernel first so that policies are compiled for what
// this kernel can do, puts the first plan in force before the programs attach (no moment
// without rules), then applies each change hitlessly. Shuts down on SIGTERM/SIGINT.

import { existsSync } from "node:fs";
import { hostname } from "node:os";
import { formatDiagnostic } from "../diagnostics.ts";
import { Enforcer, capabilitiesOf, describeActions, probe, type EnforcerEvent } from "../enforcer/index.ts";
import type { KernelPlan } from "../plan/types.ts";
import { JsonLinesSink } from "../sinks/jsonl.ts";
import { otelSinkFromEnv } from "../sinks/otel.ts";
import { PolicySource, type Rejection } from "../source/watch.ts";

export interface AgentOptions {
  policies: string[];
  /** JSON lines destination; "-" or undefined: stdout. */
  eventsFile?: string;
  /** Leave the programs attached and the rules in force at exit, for an agent that restarts. */
  keepAttached?: boolean;
  /** bpffs directory for the pinned programs and maps (default /sys/fs/bpf/palisade). */
  pinDir?: string;
  log?: (line: string) => void;
}

export interface Agent {
  /** Resolves when the agent has stopped (after stop() or a signal). */
  stopped: Promise<void>;
  stop(): Promise<void>;
}

export function startAgent(options: AgentOptions): Agent {
  const log = options.log ?? ((line: string) => process.stderr.write(`palisade: ${line}\n`));
  const node = hostname();
  const probed = probe();
  if (probed.problem) throw new Error(`cannot enforce here: ${probed.problem}`);
  for (const h of probed.hooks) {
    const can = describeActions(h);
    log(`${h.hook}: ${h.selected ? `${h.selected} backend (${can})` : "not enforceable here"}${h.notes.length ? `; ${h.notes.join("; ")}` : ""}`);
  }

  for (const p of options.policies) if (!existsSync(p)) throw new Error(`no such file or directory: ${p}`);
  const source = new PolicySource(options.policies, { capabilities: capabilitiesOf(probed) });
  const sink = new JsonLinesSink(options.eventsFile, { onError: (e) => log(`events file: ${e.message}; events are dropped and counted`) });
  // OpenTelemetry only when OTEL_EXPORTER_OTLP_(LOGS_)ENDPOINT says where (docs/observability.md).
  const backends = Object.fromEntries(probed.hooks.flatMap((h) => (h.selected ? [[h.hook, h.selected]] : [])));
  const otel = otelSinkFromEnv({ backends, ruleVersion: () => enforcer?.plan?.digest.slice(0, 12), warn: log });
  if (otel) log("exporting events to OpenTelemetry");
  const reportRejection = (r: Rejection) => {
    for (const d of r.diagnostics) log(formatDiagnostic(d));
    log(`not applied: ${r.files.join(", ")} (what was in force stays in force)`);
  };
  const describe = (plan: KernelPlan) => {
    const rules = new Set(plan.hooks.flatMap((h) => h.slots.map((s) => `${s.policy}/${s.rule}`))).size;
    const n = plan.policies.length;
    return `plan ${plan.digest.slice(0, 12)}: ${n} polic${n === 1 ? "y" : "ies"}, ${rules} rule${rules === 1 ? "" : "s"}`;
  };

  let enforcer: Enforcer | undefined;
  const first = source.reload((plan) => {
    enforcer = Enforcer.open({ plan, node, ...(options.pinDir && { pinDir: options.pinDir }), onEvent: (e: EnforcerEvent) => {
        sink.write(e.event);
        otel?.write(e.event);
      }, onError: (e) => log(`event: ${e.message}`) });
  });
  if (first.rejection) reportRejection(first.rejection);
  if (!enforcer) throw new Error("no plan to enforce");
  log(`enforcing ${describe(enforcer.plan!)}`);

  source.watch(() => {
    try {
      const started = performance.now();
      const { update, rejection } = source.reload((plan) => enforcer!.applyPlan(plan));
      if (rejection) reportRejection(rejection);
      if (update) log(`enforcing ${describe(update.plan)} (${update.changed.join(", ")}; applied in ${(performance.now() - started).toFixed(1)} ms)`);
    } catch (e) {
      log(`${(e as Error).message}`);
    }
  });

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      source.close();
      enforcer!.close({ keepAttached: options.keepAttached ?? false });
      await Promise.all([sink.close(), otel?.close()]);
      log(options.keepAttached ? "stopped; rules stay in force for the next agent" : "stopped; programs detached");
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      resolveStopped();
    })());
  const onSignal = () => void stop();
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return { stopped, stop };
}
