// Every OpenTelemetry name the OTel sink emits, in one place: the event names, the log
// record attribute keys and the resource keys. docs/observability.md documents them;
// test/sinks/otel.test.ts pins them. Names follow the OpenTelemetry Semantic Conventions
// (checked against @opentelemetry/semantic-conventions 1.45.0). Most of them are still in
// "development" status upstream, so a rename there is a change here, and only here.

/** EventName of a log record, by the action the agent took (see docs/observability.md). */
export const EVENT_NAMES = {
  killed: "palisade.process.killed",
  denied: "palisade.access.denied",
  audited: "palisade.policy.audit",
  monitor: "palisade.policy.monitor",
} as const;

/** Log record attributes. */
export const ATTR = {
  processPid: "process.pid",
  processParentPid: "process.parent_pid",
  processExecutablePath: "process.executable.path",
  // Semconv: "Do not set [process.command_line] if you have to assemble it just for
  // monitoring; use process.command_args instead". The kernel gives us argv, not a line.
  processCommandArgs: "process.command_args",
  processUserId: "process.user.id",

  filePath: "file.path",

  // The process's own view of its connection: the peer it connects to. Stable in semconv,
  // unlike destination.*, which is for observers between source and destination.
  networkPeerAddress: "network.peer.address",
  networkPeerPort: "network.peer.port",
  networkTransport: "network.transport",
  networkType: "network.type",

  k8sNamespaceName: "k8s.namespace.name",
  k8sPodName: "k8s.pod.name",
  k8sPodUid: "k8s.pod.uid",
  k8sContainerName: "k8s.container.name",
  containerId: "container.id",
  containerImageName: "container.image.name",
  containerImageTags: "container.image.tags",
  containerImageRepoDigests: "container.image.repo_digests",

  securityRuleName: "security_rule.name",
  securityRuleRulesetName: "security_rule.ruleset.name",
  securityRuleUuid: "security_rule.uuid",
  securityRuleVersion: "security_rule.version",

  // Palisade's own: no semantic convention says these.
  palisadeAction: "palisade.action",
  palisadeBackend: "palisade.backend",
  palisadeHook: "palisade.hook",
  palisadeParentExecutablePath: "palisade.parent.executable.path",
} as const;

/**
 * Resource attributes Palisade sets itself. k8s.node.name and k8s.cluster.name come from
 * OTEL_RESOURCE_ATTRIBUTES (the Helm chart sets them there), like any other resource
 * attribute an operator wants on every record.
 */
export const RESOURCE_ATTR = {
  serviceName: "service.name",
  hostName: "host.name",
} as const;

/** The instrumentation scope of every record. */
export const SCOPE_NAME = "palisade";
