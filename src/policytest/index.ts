// `palisade test`: policies against recorded events with expected verdicts, offline.
// A PolicyTest file names policy files and a JSON-lines file of events in the agent's
// own event format; each event's action/policy/rule is what it expects ("allowed" for
// no match). Nothing touches the kernel: the compiled plan is run by the reference
// evaluator, the same decision procedure the kernel implements.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse as parseYaml } from "yaml";
import type { Diagnostic } from "../diagnostics.ts";
import type { RuntimeEvent } from "../events/event.ts";
import { HOOKS, policyId } from "../policy/model.ts";
import { decide } from "../plan/evaluate.ts";
import { loadAndCompile } from "../source/files.ts";

export type Expectation = { action: "allowed" } | { action: "denied" | "killed" | "audited" | "monitor"; policy: string; rule: string };

export interface EventResult {
  /** "file:line" of the event. */
  where: string;
  summary: string;
  expected: Expectation;
  got: Expectation;
  pass: boolean;
}

export interface PolicyTestResult {
  file: string;
  name: string;
  /** Problems that prevent running the test at all (bad test file, invalid policies, bad events). */
  errors: Diagnostic[];
  events: EventResult[];
  pass: boolean;
}

const ACTIONS = ["allowed", "denied", "killed", "audited", "monitor"];

/** Runs one PolicyTest file; files it names are shown joined onto the test file's path as given. */
export function runPolicyTest(testFile: string): PolicyTestResult {
  const fail = (message: string, line = 1): PolicyTestResult => ({
    file: testFile, name: testFile, errors: [{ file: testFile, line, column: 1, code: "PolicyTest", message }], events: [], pass: false,
  });
  let spec: { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown }; policies?: unknown; events?: unknown };
  try {
    spec = parseYaml(readFileSync(testFile, "utf8")) ?? {};
  } catch (e) {
    return fail(`cannot read test file: ${(e as Error).message.split("\n")[0]}`);
  }
  if (spec.apiVersion !== "palisade.dev/v1alpha1" || spec.kind !== "PolicyTest") {
    return fail("expected apiVersion palisade.dev/v1alpha1, kind PolicyTest");
  }
  const name = typeof spec.metadata?.name === "string" ? spec.metadata.name : testFile;
  if (!Array.isArray(spec.policies) || !spec.policies.every((p) => typeof p === "string") || spec.policies.length === 0) {
    return fail("`policies` must be a non-empty list of policy files or directories, relative to the test file");
  }
  if (typeof spec.events !== "string") return fail("`events` must name a JSON-lines file of events, relative to the test file");

  const dir = dirname(testFile);
  let compiled;
  try {
    compiled = loadAndCompile(spec.policies.map((p: string) => join(dir, p)));
  } catch (e) {
    return fail(`cannot read policies: ${(e as Error).message}`);
  }
  if (!compiled.plan) return { file: testFile, name, errors: compiled.diagnostics, events: [], pass: false };

  const eventsShown = join(dir, spec.events);
  let lines: string[];
  try {
    lines = readFileSync(eventsShown, "utf8").split("\n");
  } catch (e) {
    return fail(`cannot read events: ${(e as Error).message}`);
  }
  const errors: Diagnostic[] = [];
  const events: EventResult[] = [];
  lines.forEach((text, i) => {
    if (!text.trim() || text.trimStart().startsWith("#")) return;
    const where = `${eventsShown}:${i + 1}`;
    const parsed = parseEvent(text);
    if (typeof parsed === "string") {
      errors.push({ file: eventsShown, line: i + 1, column: 1, code: "PolicyTestEvent", message: parsed });
      return;
    }
    const { event, expected } = parsed;
    const decision = decide(compiled.plan!, event);
    const got: Expectation = decision
      ? { action: decision.slot.verdict, policy: policyId(decision.policy), rule: decision.slot.rule }
      : { action: "allowed" };
    events.push({ where, summary: summarize(event), expected, got, pass: JSON.stringify(expected) === JSON.stringify(got) });
  });
  if (!events.length && !errors.length) errors.push({ file: eventsShown, line: 1, column: 1, code: "PolicyTestEvent", message: "no events to test" });
  return { file: testFile, name, errors, events, pass: errors.length === 0 && events.every((e) => e.pass) };
}

function parseEvent(text: string): { event: RuntimeEvent; expected: Expectation } | string {
  let raw: Record<string, any>;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return `not JSON: ${(e as Error).message}`;
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return "an event must be a JSON object";
  if (!HOOKS.includes(raw.hook)) return `"hook" must be one of ${HOOKS.join(", ")}`;
  if (typeof raw.process?.binary !== "string") return `"process.binary" is required`;
  if (raw.hook === "file.open" && typeof raw.file?.path !== "string") return `a file.open event needs "file.path"`;
  if (raw.hook === "net.connect" && (typeof raw.net?.daddr !== "string" || typeof raw.net?.dport !== "number")) {
    return `a net.connect event needs "net.daddr" and "net.dport"`;
  }
  if (!ACTIONS.includes(raw.action)) return `"action" is the expected verdict: one of ${ACTIONS.join(", ")}`;
  if (raw.action !== "allowed" && (typeof raw.policy !== "string" || typeof raw.rule !== "string")) {
    return `an expected "${raw.action}" needs the "policy" and "rule" that should decide it`;
  }
  const event: RuntimeEvent = {
    hook: raw.hook,
    process: { pid: raw.process.pid ?? 1, uid: raw.process.uid ?? 0, ...raw.process },
    ...(raw.parent && { parent: raw.parent }),
    ...(raw.k8s && { k8s: raw.k8s }),
    ...(raw.file && { file: raw.file }),
    ...(raw.net && { net: { family: raw.net.daddr.includes(":") ? "ipv6" : "ipv4", protocol: "tcp", ...raw.net } }),
  };
  const expected: Expectation = raw.action === "allowed" ? { action: "allowed" } : { action: raw.action, policy: raw.policy, rule: raw.rule };
  return { event, expected };
}

/** One line a person recognises: "file.open /usr/bin/cat -> /etc/shadow in prod/api-1". */
function summarize(e: RuntimeEvent): string {
  const target = e.hook === "file.open" ? ` -> ${e.file?.path}` : e.hook === "net.connect" ? ` -> ${e.net?.daddr}:${e.net?.dport}` : "";
  const parent = e.hook === "process.exec" && e.parent?.binary ? ` (parent ${e.parent.binary})` : "";
  const where = e.k8s?.namespace ? ` in ${e.k8s.namespace}/${e.k8s.pod ?? "?"}` : "";
  return `${e.hook} ${e.process.binary}${parent}${target}${where}`;
}

export function formatExpectation(x: Expectation): string {
  return x.action === "allowed" ? "allowed" : `${x.action} by ${x.policy}/${x.rule}`;
}
