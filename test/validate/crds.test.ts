import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ACTIONS, HOOKS, MODES, POLICY_KINDS, SEVERITIES } from "../../src/policy/model.ts";
import { policySchemas } from "../../src/validate/schema.ts";

type Schema = Record<string, any>;

const crdDirectory = join(import.meta.dirname, "../../api/crds");
const readCrd = (name: string) => parse(readFileSync(join(crdDirectory, name), "utf8")) as Schema;
const cluster = readCrd("palisade.dev_tracingpolicies.yaml");
const namespaced = readCrd("palisade.dev_tracingpoliciesnamespaced.yaml");
const version = (crd: Schema) => crd.spec.versions[0];
const schema = version(cluster).schema.openAPIV3Schema as Schema;
const rule = schema.properties.spec.properties.rules.items as Schema;

/** Every subschema, with its path. */
function* subschemas(node: Schema, path = "openAPIV3Schema"): Generator<[string, Schema]> {
  yield [path, node];
  for (const [name, property] of Object.entries(node.properties ?? {})) yield* subschemas(property as Schema, `${path}.${name}`);
  if (typeof node.additionalProperties === "object") yield* subschemas(node.additionalProperties, `${path}.*`);
  if (node.items) yield* subschemas(node.items, `${path}[]`);
}

describe("policy CRDs", () => {
  it("name the kinds, scopes and short names of the brief", () => {
    expect([cluster, namespaced].map((crd) => [crd.metadata.name, crd.spec.scope, crd.spec.names])).toEqual([
      [
        "tracingpolicies.palisade.dev",
        "Cluster",
        {
          kind: "TracingPolicy",
          listKind: "TracingPolicyList",
          plural: "tracingpolicies",
          singular: "tracingpolicy",
          shortNames: ["ptp"],
          categories: ["palisade"],
        },
      ],
      [
        "tracingpoliciesnamespaced.palisade.dev",
        "Namespaced",
        {
          kind: "TracingPolicyNamespaced",
          listKind: "TracingPolicyNamespacedList",
          plural: "tracingpoliciesnamespaced",
          singular: "tracingpolicynamespaced",
          shortNames: ["ptpn"],
          categories: ["palisade"],
        },
      ],
    ]);
  });

  it("serve one identical version, v1alpha1, with a status subresource and printer columns", () => {
    expect(version(namespaced)).toEqual(version(cluster));
    expect(cluster.spec.versions).toHaveLength(1);
    expect(version(cluster)).toMatchObject({ name: "v1alpha1", served: true, storage: true, subresources: { status: {} } });
    expect(version(cluster).additionalPrinterColumns.map((c: Schema) => [c.name, c.jsonPath])).toEqual([
      ["Mode", ".spec.mode"],
      ["Ready", '.status.conditions[?(@.type=="Ready")].status'],
      ["Nodes", ".status.nodes.enforcing"],
      ["Age", ".metadata.creationTimestamp"],
    ]);
  });

  it("agree with the model's constants", () => {
    expect(schema.properties.spec.properties.mode.enum).toEqual(MODES);
    expect(rule.properties.hook.enum).toEqual(HOOKS);
    expect(rule.properties.action.enum).toEqual(ACTIONS);
    expect(rule.properties.severity.enum).toEqual(SEVERITIES);
    expect(policySchemas.map((s) => [s.kind, s.apiVersion, s.scope])).toEqual([
      [POLICY_KINDS[0], "palisade.dev/v1alpha1", "Cluster"],
      [POLICY_KINDS[1], "palisade.dev/v1alpha1", "Namespaced"],
    ]);
  });

  it("are structural: every node typed, no pruning opt-outs, list map keys required", () => {
    for (const [path, node] of subschemas(schema)) {
      expect(node.type, path).toBeDefined();
      expect(node["x-kubernetes-preserve-unknown-fields"], path).toBeUndefined();
      for (const key of node["x-kubernetes-list-map-keys"] ?? []) expect(node.items.required, path).toContain(key);
    }
  });
});
