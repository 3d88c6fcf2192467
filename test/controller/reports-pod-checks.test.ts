// Pod-spec findings: privileged containers and host namespaces, once their containers started.

import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { podSpecFindings } from "../../src/controller/reports/pod-checks.ts";

const STARTED = "2026-11-24T12:00:00Z";

function pod(overrides: { privileged?: boolean; hostPID?: boolean; hostIPC?: boolean; running?: boolean; restartCount?: number } = {}): V1Pod {
  const { privileged = true, running = true, restartCount = 0 } = overrides;
  return {
    metadata: { name: "agent-x", namespace: "kube-system", uid: "pod-uid" },
    spec: {
      hostPID: overrides.hostPID,
      hostIPC: overrides.hostIPC,
      initContainers: [{ name: "init", image: "busybox", securityContext: { privileged: true } }],
      containers: [
        { name: "main", image: "agent:1", securityContext: { privileged } },
        { name: "sidecar", image: "proxy:1" },
      ],
    },
    status: {
      initContainerStatuses: [{ name: "init", image: "busybox", imageID: "", ready: false, restartCount: 0, state: { terminated: { exitCode: 0, startedAt: new Date("2026-11-24T11:59:00Z") } } }],
      containerStatuses: [
        { name: "main", image: "agent:1", imageID: "", ready: running, restartCount, state: running ? { running: { startedAt: new Date(STARTED) } } : { waiting: { reason: "ContainerCreating" } } },
        { name: "sidecar", image: "proxy:1", imageID: "", ready: true, restartCount: 0, state: { running: { startedAt: new Date(STARTED) } } },
      ],
    },
  };
}

describe("podSpecFindings", () => {
  it("reports each privileged container that has started, init containers included, as warn", () => {
    const findings = podSpecFindings(pod());
    expect(findings.map((f) => [f.observation.rule, f.observation.target, f.observation.subject, f.observation.result, f.observation.severity])).toEqual([
      ["privileged-container", "init", "busybox", "warn", "high"],
      ["privileged-container", "main", "agent:1", "warn", "high"],
    ]);
    expect(findings[1]!.observation.timeMillis).toBe(Date.parse(STARTED));
    expect(findings[1]!.observation.action).toBe("observed");
  });

  it("says nothing before a container starts, or when it is not privileged", () => {
    expect(podSpecFindings(pod({ running: false })).map((f) => f.observation.target)).toEqual(["init"]);
    expect(podSpecFindings(pod({ privileged: false })).map((f) => f.observation.target)).toEqual(["init"]);
    const notStarted = pod();
    notStarted.status = {};
    expect(podSpecFindings(notStarted)).toEqual([]);
  });

  it("keys findings by container start, so a restart is a new occurrence and an update is not", () => {
    const first = podSpecFindings(pod()).map((f) => f.startKey);
    expect(podSpecFindings(pod()).map((f) => f.startKey)).toEqual(first);
    expect(podSpecFindings(pod({ restartCount: 1 })).map((f) => f.startKey)).toEqual([first[0], "pod-uid/main/1"]);
  });

  it("reports the host's PID and IPC namespaces once per pod", () => {
    const findings = podSpecFindings(pod({ privileged: false, hostPID: true, hostIPC: true }));
    expect(findings.map((f) => [f.observation.rule, f.observation.severity, f.startKey])).toEqual([
      ["privileged-container", "high", "pod-uid/init/0"],
      ["host-pid", "high", "pod-uid/host-pid"],
      ["host-ipc", "medium", "pod-uid/host-ipc"],
    ]);
    // The earliest start in the pod is when it began to run in the host's namespaces.
    expect(findings[1]!.observation.timeMillis).toBe(Date.parse("2026-11-24T11:59:00Z"));
  });
});
