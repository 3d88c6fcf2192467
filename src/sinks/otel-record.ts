// A RuntimeEvent as an OpenTelemetry log record: EventName from the action, timestamp
// from the event, severity from the rule, a one-line body for people, and semantic
// convention attributes for machines. Pure: the export worker batches and exports.
//
// Records are built as the SDK's ReadableLogRecord, what its OTLP exporters take, rather
// than emitted through its Logger: that API is for instrumenting code with arbitrary
// attributes, which it validates and copies one by one, about 5 µs a record, half the
// budget at 100,000 events/s. These attributes come from typed events and need neither.

import { createHash } from "node:crypto";
import { SeverityNumber, type Attributes, type HrTime } from "@opentelemetry/api";
import type { Resource } from "@opentelemetry/resources";
import type { ReadableLogRecord } from "@opentelemetry/sdk-logs";
import type { EventAction, RuntimeEvent } from "../events/event.ts";
import { ATTR, EVENT_NAMES, SCOPE_NAME } from "./otel-semconv.ts";

/** What the event itself does not carry but the agent knows when it reports it. */
export interface RecordContext {
  /** The enforcement backend of the event's hook on this node (lsm, kprobe, tracepoint). */
  backend?: string;
  /** The version of the rule that decided: the policy's generation or the plan's digest. */
  ruleVersion?: string;
}

// Rule severities spread over OpenTelemetry's ranges so that the usual "WARN and above"
// filter keeps everything but info; critical is FATAL, the range meant to wake someone.
const SEVERITY_NUMBERS: Record<string, SeverityNumber> = {
  info: SeverityNumber.INFO,
  low: SeverityNumber.WARN,
  medium: SeverityNumber.WARN3,
  high: SeverityNumber.ERROR,
  critical: SeverityNumber.FATAL,
};

const VERBS: Record<EventAction, string> = { killed: "killed", denied: "denied", audited: "audited", monitor: "monitored" };

const SCOPE = { name: SCOPE_NAME };

/** `observed`: when the sink received the event (ObservedTimestamp); also its time if it has none. */
export function logRecordOf(event: RuntimeEvent, context: RecordContext, resource: Resource, observed: HrTime): ReadableLogRecord {
  // The agent always reports an action; recorded test events may lack one: they were only seen.
  const action = event.action ?? "audited";
  return {
    eventName: EVENT_NAMES[action],
    hrTime: (event.time && hrTimeOf(event.time)) || observed,
    hrTimeObserved: observed,
    severityText: event.severity,
    severityNumber: event.severity ? (SEVERITY_NUMBERS[event.severity] ?? SeverityNumber.UNSPECIFIED) : undefined,
    body: bodyOf(event, action),
    attributes: attributesOf(event, action, context),
    droppedAttributesCount: 0,
    resource,
    instrumentationScope: SCOPE,
  };
}

/** "denied open of /etc/shadow by /usr/bin/cat (pid 42): rule no-secrets of policy baseline" */
function bodyOf(event: RuntimeEvent, action: EventAction): string {
  const why = event.rule ? `: rule ${event.rule} of policy ${event.policy}` : "";
  return `${VERBS[action]} ${accessOf(event)}${why}`;
}

function accessOf({ hook, process: { pid, binary }, file, net }: RuntimeEvent): string {
  switch (hook) {
    case "process.exec":
      return `exec of ${binary} (pid ${pid})`;
    case "file.open":
      return `open of ${file?.path ?? "an unknown file"} by ${binary} (pid ${pid})`;
    case "net.connect": {
      const peer = !net ? "an unknown peer" : `${net.family === "ipv6" ? `[${net.daddr}]` : net.daddr}:${net.dport}/${net.protocol}`;
      return `connect to ${peer} by ${binary} (pid ${pid})`;
    }
  }
}

function attributesOf(event: RuntimeEvent, action: EventAction, context: RecordContext): Attributes {
  const a: Attributes = {
    [ATTR.palisadeAction]: action,
    [ATTR.palisadeHook]: event.hook,
    [ATTR.processPid]: event.process.pid,
    [ATTR.processExecutablePath]: event.process.binary,
    [ATTR.processUserId]: event.process.uid,
  };
  const ppid = event.process.ppid ?? event.parent?.pid;
  if (ppid !== undefined) a[ATTR.processParentPid] = ppid;
  if (event.process.args) a[ATTR.processCommandArgs] = event.process.args;
  if (event.parent?.binary) a[ATTR.palisadeParentExecutablePath] = event.parent.binary;
  if (event.file) a[ATTR.filePath] = event.file.path;
  if (event.net) {
    a[ATTR.networkPeerAddress] = event.net.daddr;
    a[ATTR.networkPeerPort] = event.net.dport;
    a[ATTR.networkTransport] = event.net.protocol;
    a[ATTR.networkType] = event.net.family;
  }
  const k8s = event.k8s;
  if (k8s?.namespace) a[ATTR.k8sNamespaceName] = k8s.namespace;
  if (k8s?.pod) a[ATTR.k8sPodName] = k8s.pod;
  if (k8s?.podUid) a[ATTR.k8sPodUid] = k8s.podUid;
  if (k8s?.container) a[ATTR.k8sContainerName] = k8s.container;
  // Semconv's container.id is the runtime's id alone: "containerd://4f1c…" in a pod's status is "4f1c…".
  if (k8s?.containerId) a[ATTR.containerId] = k8s.containerId.replace(/^[a-z0-9.+-]+:\/\//, "");
  if (k8s?.image) {
    const image = parseImageReference(k8s.image);
    a[ATTR.containerImageName] = image.name;
    if (image.tag) a[ATTR.containerImageTags] = [image.tag];
    if (image.digest) a[ATTR.containerImageRepoDigests] = [`${image.name}@${image.digest}`];
  }
  if (event.rule) a[ATTR.securityRuleName] = event.rule;
  if (event.policy) a[ATTR.securityRuleRulesetName] = event.policy;
  if (event.policy && event.rule) a[ATTR.securityRuleUuid] = ruleUuid(event.policy, event.rule);
  if (context.ruleVersion) a[ATTR.securityRuleVersion] = context.ruleVersion;
  if (context.backend) a[ATTR.palisadeBackend] = context.backend;
  return a;
}

/**
 * "registry:5000/team/app:1.2@sha256:ab…" → name "registry:5000/team/app", tag "1.2",
 * digest "sha256:ab…": semconv wants the name without tag, and the tag on its own.
 */
export function parseImageReference(reference: string): { name: string; tag?: string; digest?: string } {
  const at = reference.indexOf("@");
  const named = at < 0 ? reference : reference.slice(0, at);
  const digest = at < 0 ? undefined : reference.slice(at + 1);
  // A colon after the last slash separates the tag; one before it is a registry's port.
  const colon = named.lastIndexOf(":");
  const hasTag = colon > named.lastIndexOf("/");
  return {
    name: hasTag ? named.slice(0, colon) : named,
    ...(hasTag && { tag: named.slice(colon + 1) }),
    ...(digest && { digest }),
  };
}

/** RFC 4122 namespace for names that are DNS names. */
const DNS_NAMESPACE = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
/** The namespace of rule UUIDs: UUIDv5 of the DNS name rules.palisade.dev. */
export const RULE_UUID_NAMESPACE = uuidV5(DNS_NAMESPACE, "rules.palisade.dev");

const ruleUuids = new Map<string, string>();

/**
 * UUIDv5 of "<policy>/<rule>" (policy as in events: "name", or "namespace/name" when
 * namespaced; rule names cannot contain "/"): the same rule gets the same UUID on every
 * node and across restarts and edits, so a SIEM can key on it.
 */
export function ruleUuid(policy: string, rule: string): string {
  const name = `${policy}/${rule}`;
  let uuid = ruleUuids.get(name);
  if (!uuid) ruleUuids.set(name, (uuid = uuidV5(RULE_UUID_NAMESPACE, name)));
  return uuid;
}

function uuidV5(namespace: string, name: string): string {
  const hash = createHash("sha1").update(Buffer.from(namespace.replaceAll("-", ""), "hex")).update(name).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50; // version 5
  hash[8] = (hash[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = hash.toString("hex", 0, 16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The event's time with all its digits (Date keeps milliseconds), or undefined if it is no time. */
export function hrTimeOf(iso: string): HrTime | undefined {
  const millis = Date.parse(iso);
  if (Number.isNaN(millis)) return undefined;
  const fraction = /\.(\d{1,9})/.exec(iso)?.[1] ?? "";
  return [Math.floor(millis / 1000), Number(fraction.padEnd(9, "0"))];
}
