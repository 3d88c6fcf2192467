// The agent's metrics (docs/observability.md lists each with its labels). Events are
// counted as they pass; everything else (kernel counters, map sizes, the sinks' counts) is
// read at scrape time from where it lives.
//
// Label values are bounded: policy and rule names come from the plan, hook and action
// from fixed sets, map names from the BPF object, sink names from this file.

import type { RuntimeEvent } from "../events/event.ts";
import type { CounterName } from "../enforcer/abi.ts";
import type { Hook } from "../policy/model.ts";
import { Registry, type Histogram, type LabelledValues, type Sample } from "./exposition.ts";

/** What the metrics read from the enforcer at scrape time (absent until it is open). */
export interface KernelSource {
  counters(): Record<CounterName, bigint>;
  mapUsage(): { map: string; entries: number; capacity: number }[];
  hooks(): { hook: Hook; backend: string | null }[];
}

/** A destination of events, with its counts (JSON lines, OpenTelemetry, observe). */
export interface SinkCounts {
  /** Handed on (written to the file, acknowledged by the collector, queued to a client). */
  exported: number;
  dropped: number;
  /** Accepted and not yet handed on (a sink with a queue: otel). */
  pending?: number;
}

/**
 * Each kernel counter as its own metric: a name and a meaning each, rather than one
 * metric with a `counter` label that would sum records with kills with drops.
 */
const KERNEL_COUNTERS: Record<CounterName, { name: string; help: string }> = {
  events: { name: "palisade_kernel_records_total", help: "Event records the BPF programs wrote to the ring buffer." },
  ringbufDrops: { name: "palisade_ringbuf_dropped_events_total", help: "Event records lost because the ring buffer was full (the decision was still enforced)." },
  unresolvedPaths: { name: "palisade_kernel_unresolved_paths_total", help: "Paths the BPF code could not resolve fully (decided fail-closed for enforce rules)." },
  procLazy: { name: "palisade_kernel_lazy_process_lookups_total", help: "Processes started before the agent whose details were read on first sight." },
  procMapFull: { name: "palisade_kernel_process_map_full_total", help: "Process table updates that failed because the map was full." },
  scratchBusy: { name: "palisade_kernel_scratch_busy_total", help: "Events skipped because every per-CPU scratch slot was in use." },
  classMissing: { name: "palisade_kernel_class_missing_total", help: "Decisions that found no class entry (a plan/ABI mismatch: a bug)." },
  kills: { name: "palisade_kernel_kills_total", help: "Processes the kernel sent SIGKILL for a kill rule." },
  denies: { name: "palisade_kernel_denies_total", help: "Operations the kernel refused with EPERM for a deny rule." },
  signalFailed: { name: "palisade_kernel_signal_failures_total", help: "Kills whose bpf_send_signal failed." },
  decisions: { name: "palisade_kernel_decisions_total", help: "Operations decided against a hook that has rules." },
  fdUnreadable: { name: "palisade_kernel_unreadable_fds_total", help: "file.open: opened files whose details the BPF code could not read." },
};

/** Seconds: a small plan applies in about a millisecond, 10,000 rules in some hundreds. */
const APPLY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly events: LabelledValues;
  private readonly policies: LabelledValues;
  private readonly rejections: LabelledValues;
  private readonly applyDuration: Histogram;

  constructor(sources: { kernel: () => KernelSource | undefined; sinks: () => Record<string, SinkCounts>; observers?: () => number }) {
    const r = this.registry;
    this.events = r.values("counter", "palisade_events_total", "Events reported, by the policy and rule that decided, the hook and the action taken.", ["policy", "rule", "hook", "action"]);
    this.policies = r.values("gauge", "palisade_policies", "Policies in force, by state (enforce or monitor: the policy's mode).", ["state"]);
    this.rejections = r.values("counter", "palisade_policy_rejections_total", "Policy changes refused (invalid, or not compilable for this kernel); what was in force stayed.");
    this.applyDuration = r.histogram("palisade_plan_apply_duration_seconds", "Time to put a new plan in force in the kernel (write the inactive generation, flip, clear the old one).", APPLY_BUCKETS);

    const kernel = <T>(read: (k: KernelSource) => T[]) => () => {
      const k = sources.kernel();
      return k ? read(k) : [];
    };
    for (const [counter, { name, help }] of Object.entries(KERNEL_COUNTERS) as [CounterName, { name: string; help: string }][]) {
      r.collect("counter", name, help, kernel((k) => [{ labels: {}, value: Number(k.counters()[counter]) }]));
    }
    // One read of the maps serves both families of a scrape.
    let usage: ReturnType<KernelSource["mapUsage"]> = [];
    r.collect("gauge", "palisade_map_entries", "Entries in each bounded BPF map (hash and LPM-trie maps; pal_s<hook>_<dim>: a string trie of the plan in force).", kernel((k) => {
      usage = k.mapUsage();
      return usage.map((u) => ({ labels: { map: u.map }, value: u.entries }));
    }));
    r.collect("gauge", "palisade_map_capacity_entries", "Most entries each map can hold.", () => usage.map((u) => ({ labels: { map: u.map }, value: u.capacity })));
    r.collect("gauge", "palisade_hook_backend_info", "The kernel backend enforcing each hook on this node (1 per hook; a hook without one is absent).", kernel((k) =>
      k.hooks().flatMap((h): Sample[] => (h.backend ? [{ labels: { hook: h.hook, backend: h.backend }, value: 1 }] : []))));

    const sinks = (field: "exported" | "dropped") => () => Object.entries(sources.sinks()).map(([sink, counts]) => ({ labels: { sink }, value: counts[field] }));
    r.collect("counter", "palisade_exported_events_total", "Events each sink handed on: written (jsonl), acknowledged by the collector (otel), queued to a client (observe).", sinks("exported"));
    r.collect("counter", "palisade_export_dropped_events_total", "Events a sink dropped: its destination too slow or failing (observe: per slow client).", sinks("dropped"));
    r.collect("gauge", "palisade_export_pending_events", "Events a sink accepted and has not yet handed on or dropped (otel: queued or in an export).", () =>
      Object.entries(sources.sinks()).flatMap(([sink, counts]) => (counts.pending === undefined ? [] : [{ labels: { sink }, value: counts.pending }])));
    // The agent process itself, under the names every Prometheus client library uses.
    r.collect("gauge", "process_resident_memory_bytes", "Resident memory of the agent process.", () => [{ labels: {}, value: process.memoryUsage.rss() }]);
    r.collect("counter", "process_cpu_seconds_total", "User and system CPU time of the agent process (every thread).", () => {
      const { user, system } = process.cpuUsage();
      return [{ labels: {}, value: (user + system) / 1e6 }];
    });
    const started = (Date.now() - performance.now()) / 1000;
    r.collect("gauge", "process_start_time_seconds", "When the agent process started, in seconds since the epoch.", () => [{ labels: {}, value: Math.round(started) }]);
    if (sources.observers) {
      const observers = sources.observers;
      r.collect("gauge", "palisade_observe_clients", "Clients connected to the observe stream.", () => [{ labels: {}, value: observers() }]);
    }
  }

  event(event: RuntimeEvent): void {
    this.events.add([event.policy ?? "", event.rule ?? "", event.hook, event.action ?? ""]);
  }

  /** The policies in force now, counted by state. */
  setPolicies(byState: Record<string, number>): void {
    this.policies.clear();
    for (const [state, count] of Object.entries(byState)) this.policies.set([state], count);
  }

  planApplied(durationMs: number): void {
    this.applyDuration.observe(durationMs / 1000);
  }

  policyRejected(): void {
    this.rejections.add([]);
  }
}
