// The policy CRDs in api/crds/ are the single source of the schema: this module loads them
// once and compiles their openAPIV3Schema with ajv, so `palisade validate` accepts exactly
// what the apiserver accepts, and rejects the unknown fields the apiserver would silently prune.

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv, type ErrorObject, type SchemaObject, type SchemaValidateFunction, type ValidateFunction } from "ajv";
import { parse } from "yaml";
import { POLICY_KINDS, type PolicyKind } from "../policy/model.ts";

export type Scope = "Cluster" | "Namespaced";

export interface PolicyKindSchema {
  kind: PolicyKind;
  /** "group/version", e.g. "palisade.dev/v1alpha1". */
  apiVersion: string;
  scope: Scope;
  /** Validates a whole object (apiVersion, kind, metadata, spec, status); fills in schema defaults in place. */
  validate: ValidateFunction;
}

export const DNS_LABEL_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
export const DNS_SUBDOMAIN_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/** The duplicate-key error of `x-kubernetes-list-map-keys`; its instancePath is the repeated item. */
export const DUPLICATE_LIST_KEY = "x-kubernetes-list-map-keys";
export interface DuplicateListKeyParams {
  keys: string[];
  firstIndex: number;
}

const CRD_DIRECTORY = join(import.meta.dirname, "../../api/crds");
const GROUP = "palisade.dev";

// A CRD may only constrain metadata.name; the rest of ObjectMeta is checked by the apiserver
// for every object. These are those checks, so that files fail here as they would there.
// No additionalProperties: labels, annotations and the other ObjectMeta fields stay allowed.
const OBJECT_META: SchemaObject = {
  type: "object",
  required: ["name"],
  properties: {
    name: { type: "string", maxLength: 253, pattern: DNS_SUBDOMAIN_PATTERN },
    namespace: { type: "string", maxLength: 63, pattern: DNS_LABEL_PATTERN },
    labels: { type: "object", additionalProperties: { type: "string" } },
    annotations: { type: "object", additionalProperties: { type: "string" } },
    generation: { type: "integer" },
  },
};

interface CustomResourceDefinition {
  kind: string;
  spec: {
    group: string;
    scope: Scope;
    names: { kind: string };
    versions: { name: string; served: boolean; schema: { openAPIV3Schema: SchemaObject } }[];
  };
}

function loadPolicySchemas(): PolicyKindSchema[] {
  const ajv = createAjv();
  const schemas: PolicyKindSchema[] = [];
  for (const crd of readCustomResourceDefinitions()) {
    const kind = crd.spec.names.kind;
    if (crd.spec.group !== GROUP || !isPolicyKind(kind)) continue;
    for (const version of crd.spec.versions.filter((v) => v.served)) {
      schemas.push({
        kind,
        apiVersion: `${GROUP}/${version.name}`,
        scope: crd.spec.scope,
        validate: ajv.compile(toValidationSchema(version.schema.openAPIV3Schema)),
      });
    }
  }
  const missing = POLICY_KINDS.filter((kind) => !schemas.some((s) => s.kind === kind));
  if (missing.length > 0) throw new Error(`no served CRD version in ${CRD_DIRECTORY} for ${missing.join(", ")}`);
  return schemas;
}

function readCustomResourceDefinitions(): CustomResourceDefinition[] {
  return readdirSync(CRD_DIRECTORY)
    .filter((name) => name.endsWith(".yaml"))
    .sort()
    .map((name) => parse(readFileSync(join(CRD_DIRECTORY, name), "utf8")) as CustomResourceDefinition)
    .filter((doc) => doc?.kind === "CustomResourceDefinition");
}

function isPolicyKind(kind: string): kind is PolicyKind {
  return (POLICY_KINDS as readonly string[]).includes(kind);
}

function createAjv(): Ajv {
  const ajv = new Ajv({
    allErrors: true,
    useDefaults: true,
    // Errors carry the schema and data they concern: messages list allowed fields and values.
    verbose: true,
    // Strict: a keyword or format this module does not handle fails loudly at load time
    // instead of being silently ignored.
    strict: true,
    formats: {
      // Kubernetes integer widths; `type: integer` already holds, and JSON numbers cannot exceed int64 usefully.
      int32: true,
      int64: true,
      "date-time": /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/,
    },
  });
  // `set` lists (unique items) are not supported yet: its metaSchema makes ajv refuse them.
  ajv.addKeyword({ keyword: "x-kubernetes-list-type", metaSchema: { enum: ["atomic", "map"] } });
  ajv.addKeyword({
    keyword: DUPLICATE_LIST_KEY,
    type: "array",
    schemaType: "array",
    errors: true,
    validate: uniqueListMapKeys,
  });
  return ajv;
}

/** `x-kubernetes-list-map-keys`: no two items of the list may have the same values for all the keys. */
const uniqueListMapKeys: SchemaValidateFunction = (keys: string[], items: unknown[], _parentSchema, cxt) => {
  const firstIndexOf = new Map<string, number>();
  const errors: ErrorObject<typeof DUPLICATE_LIST_KEY, DuplicateListKeyParams>[] = [];
  items.forEach((item, index) => {
    // Items that are not objects or lack a key already fail `type` or `required`.
    if (typeof item !== "object" || item === null || keys.some((key) => !(key in item))) return;
    const identity = JSON.stringify(keys.map((key) => (item as Record<string, unknown>)[key]));
    const firstIndex = firstIndexOf.get(identity);
    if (firstIndex === undefined) {
      firstIndexOf.set(identity, index);
    } else {
      errors.push({
        keyword: DUPLICATE_LIST_KEY,
        instancePath: `${cxt?.instancePath ?? ""}/${index}`,
        schemaPath: "",
        params: { keys, firstIndex },
      });
    }
  });
  uniqueListMapKeys.errors = errors;
  return errors.length === 0;
};

/**
 * A structural schema prunes unknown fields; files should rather be told about them, so
 * every object with declared properties gets `additionalProperties: false`. Metadata gets the
 * ObjectMeta checks the apiserver applies to every object, which all have metadata.
 */
function toValidationSchema(openAPIV3Schema: SchemaObject): SchemaObject {
  const closed = closeObjects(openAPIV3Schema);
  return {
    ...closed,
    required: [...(closed.required ?? []), "metadata"],
    properties: { ...closed.properties, metadata: OBJECT_META },
  };
}

function closeObjects(schema: SchemaObject): SchemaObject {
  const result: SchemaObject = { ...schema };
  if (schema.properties) {
    result.properties = Object.fromEntries(
      Object.entries(schema.properties as Record<string, SchemaObject>).map(([name, property]) => [name, closeObjects(property)]),
    );
    result.additionalProperties ??= false;
  }
  if (typeof schema.additionalProperties === "object") result.additionalProperties = closeObjects(schema.additionalProperties);
  if (schema.items) result.items = closeObjects(schema.items);
  return result;
}

// Last, so that everything loading uses is initialised.
export const policySchemas: readonly PolicyKindSchema[] = loadPolicySchemas();
