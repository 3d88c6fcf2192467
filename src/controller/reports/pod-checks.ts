// Checks no kernel hook can make: what a Pod's spec grants (a privileged container, the
// host's PID or IPC namespace). They are read from the Pod object once its containers have
// started, after the fact, and reported as warn results: Palisade never blocks them (that is
// admission control's job), see docs/policy-reports.md.

import type { V1Container, V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { OBSERVED_ACTION, type Observation } from "./results.ts";

export const POD_CHECK_POLICY = "pod-privileges";
export const POD_CHECK_CATEGORY = "pod.spec";

export interface PodFinding {
  observation: Observation;
  /** One start of one container (or one pod): seeing the same start again is not a repeat. */
  startKey: string;
}

type Started = { status: V1ContainerStatus; millis: number };

/** When the container last started, if it has (running now, or ran and ended). */
function started(status: V1ContainerStatus | undefined): Started | undefined {
  const at = status?.state?.running?.startedAt ?? status?.state?.terminated?.startedAt;
  if (!status || at === undefined) return undefined;
  const millis = new Date(at).getTime();
  return Number.isFinite(millis) ? { status, millis } : undefined;
}

/** The pod's findings for containers that have started; nothing before they start. */
export function podSpecFindings(pod: V1Pod): PodFinding[] {
  const uid = pod.metadata?.uid ?? `${pod.metadata?.namespace}/${pod.metadata?.name}`;
  const podName = pod.metadata?.name ?? "";
  const spec = pod.spec;
  if (!spec) return [];
  const statuses = new Map<string, V1ContainerStatus>();
  for (const s of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? []), ...(pod.status?.ephemeralContainerStatuses ?? [])]) {
    statuses.set(s.name, s);
  }
  const containers: V1Container[] = [...(spec.initContainers ?? []), ...spec.containers, ...((spec.ephemeralContainers ?? []) as V1Container[])];
  const starts = containers.map((c) => ({ container: c, start: started(statuses.get(c.name)) }));

  const findings: PodFinding[] = [];
  for (const { container, start } of starts) {
    if (!start || container.securityContext?.privileged !== true) continue;
    findings.push({
      startKey: `${uid}/${container.name}/${start.status.restartCount ?? 0}`,
      observation: {
        policy: POD_CHECK_POLICY,
        rule: "privileged-container",
        result: "warn",
        severity: "high",
        action: OBSERVED_ACTION,
        category: POD_CHECK_CATEGORY,
        subject: container.image ?? "",
        subjectKind: "image",
        target: container.name,
        targetKind: "container",
        message: `container ${container.name} started privileged (full access to the host's devices and kernel)`,
        timeMillis: start.millis,
        details: { pod: podName },
      },
    });
  }

  const first = starts.map((s) => s.start?.millis).filter((m) => m !== undefined).sort((a, b) => a - b)[0];
  if (first === undefined) return findings;
  const hostNamespaces = [
    { on: spec.hostPID, rule: "host-pid", severity: "high", what: "PID namespace (sees and signals every process)" },
    { on: spec.hostIPC, rule: "host-ipc", severity: "medium", what: "IPC namespace" },
  ] as const;
  for (const h of hostNamespaces) {
    if (h.on !== true) continue;
    findings.push({
      startKey: `${uid}/${h.rule}`,
      observation: {
        policy: POD_CHECK_POLICY,
        rule: h.rule,
        result: "warn",
        severity: h.severity,
        action: OBSERVED_ACTION,
        category: POD_CHECK_CATEGORY,
        subject: "",
        subjectKind: "image",
        target: "",
        message: `pod ${podName} started in the host's ${h.what}`,
        timeMillis: first,
        details: { pod: podName },
      },
    });
  }
  return findings;
}
