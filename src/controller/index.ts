// `palisade run --kubernetes`: the agent fed by the Kubernetes API instead of a directory.
//
//   TracingPolicy, TracingPolicyNamespaced informers -> PolicyReconciler -> plan -> enforcer
//   Pod (this node), Namespace informers -> scanWorkloads -> enforcer.setWorkloads
//   after each reconcile -> NodeState -> this node's PalisadeNode (status/NodeStatePublisher)
//   one agent of the cluster, elected by Lease -> every policy's /status (status/startStatusAggregator)
//   every event -> JSON lines, OpenTelemetry, observe (the agent core) and PolicyReports (reports/)
//
// Nothing is applied before every informer has listed once, so 1,000 policies at start are
// one plan, and scoped rules know the pods from the first plan on. Later changes are
// debounced: a burst (kubectl apply of a directory) becomes one apply per 250 ms at most.

import { hostname } from "node:os";
import type { V1Pod } from "@kubernetes/client-node";
import { agentLifecycle, describePlan, startAgentCore, type Agent, type AgentCoreOptions } from "../agent/index.ts";
import { policyId, type Hook, type PolicyKind } from "../policy/model.ts";
import { KubeClient, loadKubeConfig } from "./client.ts";
import { PolicyReporter, type ReportFlavor } from "./reports/index.ts";
import { NodeStatePublisher, startStatusAggregator } from "./status/index.ts";
import { Informer, type ChangeType, type InformerOptions, type KubeObject } from "./informer.ts";
import type { NodeState } from "./node-state.ts";
import { POLICY_GROUP_VERSION, type PolicyObject } from "./policies.ts";
import { PolicyReconciler } from "./reconciler.ts";
import { Debounce } from "./debounce.ts";
import { PodCgroupWatch, scanWorkloads, type NamespaceObject, type PodObject } from "./workloads.ts";
import { cgroup2Root } from "../enforcer/system.ts";

export interface KubernetesAgentOptions extends AgentCoreOptions {
  /** A kubeconfig file; default KUBECONFIG, ~/.kube/config, then the in-cluster service account. */
  kubeconfig?: string;
  /** Where the pods' cgroups are: the cgroup v2 root that holds kubepods(.slice) (default: found in /proc/mounts). */
  cgroupRoot?: string;
  /** Quiet time before a change is applied, so a burst becomes one apply (default 20 ms). */
  debounceMs?: number;
  /** Longest a change waits while changes keep coming (default 250 ms). */
  maxDelayMs?: number;
  /** Namespace of the heartbeat and aggregator Leases (default $POD_NAMESPACE, else palisade-system). */
  statusNamespace?: string;
  /** PolicyReports as wgpolicyk8s.io/v1alpha2 (default) or openreports.io/v1alpha1. */
  reportFormat?: ReportFlavor;
}

export interface KubernetesAgent extends Agent {
  /** Resolves once the first plan is in force; rejects if the agent could not start. */
  ready: Promise<void>;
  /** The latest state of this node, as published. */
  nodeState(): NodeState | undefined;
}

const POLICY_RESOURCES: { kind: PolicyKind; plural: string }[] = [
  { kind: "TracingPolicy", plural: "tracingpolicies" },
  { kind: "TracingPolicyNamespaced", plural: "tracingpoliciesnamespaced" },
];

export function startKubernetesAgent(options: KubernetesAgentOptions): KubernetesAgent {
  const node = options.node ?? process.env.NODE_NAME ?? hostname();
  const kubeConfig = loadKubeConfig(options.kubeconfig);
  const client = new KubeClient(kubeConfig);
  const cgroupRoot = options.cgroupRoot ?? cgroup2Root();
  if (!cgroupRoot) throw new Error("no cgroup v2 hierarchy is mounted: pods cannot be told apart (mount cgroup2, or pass --cgroup-root)");
  const core = startAgentCore({ ...options, node });
  const log = core.log;
  const namespace = options.statusNamespace;
  const publisher = new NodeStatePublisher({ kubeConfig, node, log, ...(namespace && { namespace }) });
  const aggregator = startStatusAggregator({ kubeConfig, identity: node, log, ...(namespace && { namespace }) });
  const reporter = new PolicyReporter({ kubeConfig, node, log, ...(options.reportFormat && { flavor: options.reportFormat }) });
  core.addEventListener((event) => reporter.record(event));
  const reconciler = new PolicyReconciler({ capabilities: core.capabilities, enforceable: (h: Hook) => !!core.backends[h] });
  let started = false;
  let closed = false;
  let latestState: NodeState | undefined;

  const informer = <T extends KubeObject>(path: string, onChange: InformerOptions<T>["onChange"], extra: Partial<InformerOptions<T>> = {}) =>
    new Informer<T>(client, { path, onChange, log: (line) => log(`watch ${line}`), ...extra });

  // Policies: the reconciler sees each change; a round runs once changes stop for debounceMs.
  const policies = POLICY_RESOURCES.map(({ kind, plural }) =>
    informer<PolicyObject>(`/apis/${POLICY_GROUP_VERSION}/${plural}`, (type: ChangeType, o: PolicyObject) => {
      const object = { ...o, kind }; // list items may come without kind
      if (type === "deleted" ? reconciler.remove(object) : reconciler.upsert(object)) policyRound.schedule();
    }),
  );
  const pods = informer<PodObject>("/api/v1/pods", (type, pod) => {
    if (type !== "deleted") reporter.recordPod(pod as V1Pod);
    workloadRound.schedule();
  }, { fieldSelector: `spec.nodeName=${node}` });
  const namespaces = informer<NamespaceObject>("/api/v1/namespaces", () => workloadRound.schedule());

  const publish = () => {
    latestState = {
      node,
      heartbeatTime: new Date().toISOString(),
      backends: core.backends,
      ...(reconciler.plan && { planDigest: reconciler.plan.digest }),
      policies: reconciler.states(),
    };
    publisher.publish(latestState);
    // Reports keep results of the policies in force only (a deleted policy's results go).
    if (reconciler.plan) reporter.retainPolicies(reconciler.plan.policies.map(policyId));
  };

  const reconcile = () => {
    try {
      reconcileOnce();
    } catch (e) {
      log(`reconcile: ${(e as Error).message}`);
      policyRound.retry();
    }
  };
  const reconcileOnce = () => {
    const began = performance.now();
    const result = reconciler.reconcile((plan) => core.enforce(plan));
    for (const f of result.failed) {
      core.outputs.policyRejected();
      log(`${f.key}: not applied (what was in force stays in force): ${f.message}`);
    }
    if (result.plan) {
      log(`enforcing ${describePlan(result.plan)} (${result.reconciled.length} object${result.reconciled.length === 1 ? "" : "s"} changed; applied in ${(performance.now() - began).toFixed(1)} ms)`);
    }
    publish();
    if (result.retry) policyRound.retry();
    else if (reconciler.dirty) policyRound.schedule();
  };
  const policyRound = new Debounce(() => started && reconcile(), options.debounceMs ?? 20, options.maxDelayMs ?? 250);

  let lastWorkloads = "";
  const classified = (n: number) => `classified ${n} cgroup${n === 1 ? "" : "s"} of ${pods.store.size} pod${pods.store.size === 1 ? "" : "s"} on ${node}`;
  const scan = () => {
    const found = scanWorkloads(cgroupRoot, pods.store.values(), namespaces.store);
    return { ...found, digest: JSON.stringify([...found.workloads].map(([id, w]) => [String(id), w])) };
  };
  const applyWorkloads = () => {
    const enforcer = core.enforcer;
    if (!enforcer) return;
    cgroupWatch.refresh();
    const { workloads, missing, digest } = scan();
    // The kernel is only written when the classification changed.
    if (digest !== lastWorkloads) {
      try {
        enforcer.setWorkloads(workloads);
        lastWorkloads = digest;
        log(classified(workloads.size));
      } catch (e) {
        log(`classifying workloads: ${(e as Error).message}`);
        workloadRound.retry();
        return;
      }
    }
    // A pod's cgroup appears after its object: look again until every one is there.
    if (missing) workloadRound.later(1_000);
  };
  const workloadRound = new Debounce(() => started && applyWorkloads(), options.debounceMs ?? 20, options.maxDelayMs ?? 250);
  const cgroupWatch = new PodCgroupWatch(cgroupRoot, () => workloadRound.schedule());

  const all = [...policies, pods, namespaces];
  for (const i of all) i.start();
  const ready = (async () => {
    await Promise.all(all.map((i) => i.synced));
    if (closed) return;
    // The first plan goes in with the pods already classified: scoped rules hold from the start.
    const first = scan();
    const result = reconciler.reconcile((plan) => core.enforce(plan, first.workloads));
    for (const f of result.failed) {
      core.outputs.policyRejected();
      log(`${f.key}: not applied: ${f.message}`);
    }
    if (!core.enforcer) throw new Error("the first plan could not be put in force");
    lastWorkloads = first.digest;
    log(classified(first.workloads.size));
    if (first.missing) workloadRound.later(1_000);
    started = true;
    log(`enforcing ${describePlan(core.enforcer.plan!)} on node ${node}`);
    publish();
  })();
  ready.catch((e) => log(`cannot start: ${(e as Error).message}`));

  const lifecycle = agentLifecycle(async () => {
    closed = true;
    policyRound.cancel();
    workloadRound.cancel();
    cgroupWatch.close();
    await Promise.all(all.map((i) => i.stop()));
    client.close();
    await Promise.all([reporter.close(), publisher.close(), aggregator.stop()]);
    await core.close();
  });
  return { ...lifecycle, ready, nodeState: () => latestState };
}
