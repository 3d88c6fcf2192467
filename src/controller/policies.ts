// Policy objects from the API server -> the validated policy model, through the same
// validate stage as files (the CRD schema, then the model). An object has no file, so a
// diagnostic is told by its field path, and a CEL mistake by its line and column inside
// the `match` string: "spec.rules[0].match:1:12: unknown field ...".

import type { Diagnostic } from "../diagnostics.ts";
import type { Policy, PolicyKind } from "../policy/model.ts";
import { validateSource } from "../validate/index.ts";
import { checkRules } from "../compiler/index.ts";
import type { KubeObject } from "./informer.ts";

export interface PolicyObject extends KubeObject {
  kind: PolicyKind;
  spec?: unknown;
  status?: unknown;
}

export const POLICY_GROUP_VERSION = "palisade.dev/v1alpha1";

/** The key a policy object has in the reconciler, NodeState and logs. */
export const policyObjectKey = (kind: PolicyKind, namespace: string | undefined, name: string): string =>
  kind === "TracingPolicyNamespaced" ? `${kind}/${namespace}/${name}` : `${kind}/${name}`;

export interface ObjectValidation {
  /** The object's policy when it is valid. */
  policy?: Policy;
  /** Rendered without a file: "spec.rules[0].match:1:12: message". */
  problems: string[];
  diagnostics: Diagnostic[];
  /** The policy, or the well-formed part of an invalid one, for locating CEL positions. */
  located: Policy[];
}

/**
 * Validates one object. The API server has already applied the CRD schema, but an object
 * written before a schema change (or with validation off) must not be trusted: it goes
 * through the same stage as a file, as the text the object is.
 */
export function validateObject(o: PolicyObject): ObjectValidation {
  const { name, namespace, generation } = o.metadata;
  const doc = { apiVersion: o.apiVersion ?? POLICY_GROUP_VERSION, kind: o.kind, metadata: { name, ...(namespace && { namespace }), ...(generation !== undefined && { generation }) }, spec: o.spec };
  // JSON is YAML, and writing it costs a third of what a YAML rendering does.
  const result = validateSource(policyObjectKey(o.kind, namespace, name), JSON.stringify(doc, null, 2));
  const diagnostics = [...result.diagnostics, ...checkRules(result.salvaged)];
  const located = [...result.policies, ...result.salvaged];
  return {
    ...(result.policies[0] && !diagnostics.length && { policy: result.policies[0] }),
    diagnostics,
    problems: diagnostics.map((d) => renderDiagnostic(d, located)),
    located,
  };
}

/** A diagnostic of an object, by field path (and position inside a CEL expression). */
export function renderDiagnostic(d: Diagnostic, located: readonly Policy[]): string {
  const hint = d.hint ? `; ${d.hint}` : "";
  const match = d.path && /^(spec\.rules\[\d+\])\.match$/.exec(d.path);
  if (match) {
    const rule = located.flatMap((p) => p.rules).find((r) => r.path === match[1]);
    const offset = rule && offsetAt(rule.match.length, rule.locateMatch, d);
    if (rule && offset !== undefined) {
      const before = rule.match.slice(0, offset).split("\n");
      return `${d.path}:${before.length}:${before.at(-1)!.length + 1}: ${d.message}${hint}`;
    }
  }
  return `${d.path ?? "spec"}: ${d.message}${hint}`;
}

/** The offset inside the match string that the validator located at the diagnostic's line and column. */
function offsetAt(length: number, locate: Policy["rules"][number]["locateMatch"], d: Diagnostic): number | undefined {
  for (let offset = 0; offset <= length; offset++) {
    const at = locate(offset);
    if (at.line === d.line && at.column === d.column) return offset;
  }
  return undefined;
}
