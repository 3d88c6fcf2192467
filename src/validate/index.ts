// Validates a policy file: its YAML, then each document against the policy CRDs' schema, and
// builds the policy model from the documents that pass. Pure: text in, policies and diagnostics
// out; every diagnostic points at the line and column to edit.

import { LineCounter, parseAllDocuments, visit, type Document } from "yaml";
import { sortDiagnostics, suggest, type Diagnostic, type SourcePosition } from "../diagnostics.ts";
import { ACTIONS, HOOKS, MODES, SEVERITIES, type Action, type Hook, type Mode, type Policy, type PolicyKind, type Rule, type Severity, type WorkloadSelector } from "../policy/model.ts";
import { documentView, type DocumentView, type PathSegments } from "./document-view.ts";
import { positionFinder } from "./positions.ts";
import { decodeScalar, type DecodedScalar } from "./scalar-offsets.ts";
import { didYouMean, schemaDiagnostics, typeName } from "./schema-errors.ts";
import { policySchemas, type PolicyKindSchema } from "./schema.ts";

export interface ValidationResult {
  /** The documents without any error, in file order. */
  policies: Policy[];
  /** Every problem of the file, in reading order. */
  diagnostics: Diagnostic[];
  /**
   * For documents with errors: a policy of their well-formed rules, only so that their CEL
   * can be checked too and a file's errors all come out at once. Never enforced.
   */
  salvaged: Policy[];
}

interface Source {
  file: string;
  text: string;
  positionOf(offset: number): SourcePosition;
}

/** What the schema guarantees of a document that passed it (defaults filled in). */
interface ValidPolicyObject {
  metadata: { name: string; namespace?: string; generation?: number };
  spec: {
    mode: Mode;
    selector?: WorkloadSelector;
    rules: { name: string; hook: Hook; match: string; action: Action; severity: Severity; message?: string; fallback?: "kill" }[];
  };
}

export function validateSource(file: string, text: string): ValidationResult {
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text, {
    lineCounter,
    keepSourceTokens: true, // block scalars' indentation, for locateMatch
    prettyErrors: false, // positions are reported as diagnostics, not spliced into messages
    merge: true, // `<<` merge keys, as kubectl accepts them
  });
  const source: Source = { file, text, positionOf: positionFinder(file, text, lineCounter) };
  const policies: Policy[] = [];
  const diagnostics: Diagnostic[] = [];
  const salvaged: Policy[] = [];
  for (const doc of documents) {
    const result = validateDocument(doc, source, salvaged);
    if (Array.isArray(result)) diagnostics.push(...result);
    else policies.push(result);
  }
  return { policies, diagnostics: sortDiagnostics(diagnostics), salvaged };
}

/** The document's policy, or all its problems; an empty document has neither. */
function validateDocument(doc: Document.Parsed, source: Source, salvaged: Policy[]): Policy | Diagnostic[] {
  const yamlProblems = [...doc.errors, ...doc.warnings];
  if (yamlProblems.length > 0) {
    return yamlProblems.map((e) => diagnostic(source.positionOf(e.pos[0]), "YamlSyntax", e.message));
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (e) {
    // toJS throws, without a position, on an alias to no anchor and on aliases expanding
    // beyond the yaml package's limit (a "billion laughs" document).
    const at = unresolvedAliasOffset(doc) ?? doc.contents?.range[0] ?? 0;
    return [diagnostic(source.positionOf(at), "YamlSyntax", (e as Error).message)];
  }
  // Nothing but comments, or nothing at all (as between two `---`).
  if (data == null) return [];
  const view = documentView(doc, data, source.positionOf);
  const schema = policySchemaFor(view);
  if (Array.isArray(schema)) return schema;

  const problems = [
    ...schemaDiagnostics(schema.validate(data) ? [] : (schema.validate.errors ?? []), view),
    ...scopeDiagnostics(schema, view),
  ];
  if (problems.length === 0) return buildPolicy(schema, data as ValidPolicyObject, view, source);
  const wellFormed = salvage(data);
  if (wellFormed) salvaged.push(buildPolicy(schema, wellFormed, view, source));
  return problems;
}

/** The rules of an invalid document that are themselves well formed (indexes kept), with defaults. */
function salvage(data: unknown): ValidPolicyObject | undefined {
  const rules = (data as { spec?: { rules?: unknown } })?.spec?.rules;
  if (!Array.isArray(rules)) return undefined;
  const isRule = (r: any) => typeof r?.name === "string" && HOOKS.includes(r.hook) && typeof r.match === "string" && ACTIONS.includes(r.action);
  const kept = rules.map((r: any) => (isRule(r) ? { ...r, severity: SEVERITIES.includes(r.severity) ? r.severity : "medium" } : undefined));
  if (!kept.some(Boolean)) return undefined;
  const mode = (data as { spec: { mode?: unknown } }).spec.mode;
  return { metadata: { name: "salvaged" }, spec: { mode: MODES.includes(mode as Mode) ? (mode as Mode) : "enforce", rules: kept } } as ValidPolicyObject;
}

function unresolvedAliasOffset(doc: Document.Parsed): number | undefined {
  let offset: number | undefined;
  visit(doc, {
    Alias(_, alias) {
      if (alias.resolve(doc)) return undefined;
      offset = alias.range?.[0];
      return visit.BREAK;
    },
  });
  return offset;
}

function diagnostic(at: SourcePosition, code: string, message: string): Diagnostic {
  return { ...at, code, message };
}

/** The schema for the document's apiVersion and kind, or why it is not a policy. */
function policySchemaFor(view: DocumentView): PolicyKindSchema | Diagnostic[] {
  const notAPolicy = (path: PathSegments, message: string, hint?: string): Diagnostic => ({
    ...view.valueAt(path),
    code: "NotAPolicy",
    message,
    ...(hint && { hint }),
    ...(path.length > 0 && { path: view.display(path) }),
  });
  const object = view.data;
  if (typeof object !== "object" || object === null || Array.isArray(object)) {
    return [notAPolicy([], `expected a policy (a mapping with apiVersion, kind, metadata and spec), got ${typeName(object)}`)];
  }
  const { apiVersion, kind } = object as Record<string, unknown>;
  const schema = policySchemas.find((s) => s.apiVersion === apiVersion && s.kind === kind);
  if (schema) return schema;

  const problems: Diagnostic[] = [];
  const apiVersions = unique(policySchemas.map((s) => s.apiVersion));
  const apiVersionKnown = apiVersions.includes(apiVersion as string);
  if (!apiVersionKnown) {
    const tetragon = typeof apiVersion === "string" && apiVersion.startsWith("cilium.io/");
    const hint = tetragon ? 'this looks like a Tetragon policy: convert it with "palisade import tetragon"' : undefined;
    problems.push(notAPolicy(["apiVersion"], unexpected("apiVersion", apiVersion, apiVersions), hint));
  }
  const kinds = unique(policySchemas.filter((s) => !apiVersionKnown || s.apiVersion === apiVersion).map((s) => s.kind));
  if (!kinds.includes(kind as PolicyKind)) {
    const suggestion = typeof kind === "string" ? suggest(kind, kinds) : undefined;
    problems.push(notAPolicy(["kind"], unexpected("kind", kind, kinds), suggestion && didYouMean(suggestion)));
  }
  return problems;
}

function unexpected(field: string, actual: unknown, expected: readonly string[]): string {
  const wanted = expected.join(" or ");
  return actual === undefined
    ? `missing ${field}, expected ${wanted}`
    : `expected ${field} ${wanted}, got ${JSON.stringify(actual)}`;
}

function scopeDiagnostics(schema: PolicyKindSchema, view: DocumentView): Diagnostic[] {
  const metadata = (view.data as { metadata?: { namespace?: unknown } }).metadata;
  if (schema.scope !== "Cluster" || metadata?.namespace === undefined) return [];
  const path = ["metadata", "namespace"];
  return [
    {
      ...view.keyAt(path),
      code: "ClusterScopedNamespace",
      message: `${schema.kind} is cluster-scoped and cannot have a namespace`,
      hint: `remove metadata.namespace, or use kind ${namespacedKind()} for a policy that applies to one namespace`,
      path: view.display(path),
    },
  ];
}

function namespacedKind(): string {
  return policySchemas.find((s) => s.scope === "Namespaced")!.kind;
}

function buildPolicy(schema: PolicyKindSchema, object: ValidPolicyObject, view: DocumentView, source: Source): Policy {
  const { metadata, spec } = object;
  return {
    kind: schema.kind,
    name: metadata.name,
    ...(schema.scope === "Namespaced" && { namespace: metadata.namespace ?? "default" }),
    ...(metadata.generation !== undefined && { generation: metadata.generation }),
    mode: spec.mode,
    ...(spec.selector && { selector: spec.selector }),
    rules: spec.rules.flatMap((rule, index): Rule[] => {
      if (!rule) return []; // a rule left out by salvage()
      const path = ["spec", "rules", String(index)];
      return [{
        ...rule,
        position: view.valueAt(path),
        path: view.display(path),
        locateMatch: matchLocator(view, [...path, "match"], source),
      }];
    }),
    position: view.keyAt(["kind"]),
  };
}

/** Decodes the `match` scalar on first use: most rules never need a position inside it. */
function matchLocator(view: DocumentView, path: PathSegments, source: Source): Rule["locateMatch"] {
  // The schema made `match` a string, so its node is a scalar.
  const node = view.scalarAt(path)!;
  let decoded: DecodedScalar | undefined;
  return (offset) => {
    decoded ??= decodeScalar(source.text, node);
    const index = Math.min(Math.max(0, Math.trunc(offset)), decoded.value.length);
    return source.positionOf(decoded.offsets[index]!);
  };
}


function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}
