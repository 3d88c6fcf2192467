// Turns ajv's errors into diagnostics a person can act on: placed on the offending YAML node,
// worded in terms of the file, with the allowed fields or values and a did-you-mean.

import type { ErrorObject } from "ajv";
import { suggest, type Diagnostic, type SourcePosition } from "../diagnostics.ts";
import { pointerSegments, type DocumentView, type PathSegments } from "./document-view.ts";
import { DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN, DUPLICATE_LIST_KEY, type DuplicateListKeyParams } from "./schema.ts";

interface Finding {
  code: string;
  message: string;
  hint?: string | undefined;
  at: SourcePosition;
  path: PathSegments;
}

/** Patterns people meet as names, explained, with how to turn a wrong name into a valid one. */
const NAME_PATTERNS: Record<string, { meaning: string; invalidCharacters: RegExp }> = {
  [DNS_LABEL_PATTERN]: {
    meaning: 'lowercase letters, digits and "-", starting and ending with a letter or digit',
    invalidCharacters: /[^a-z0-9-]+/g,
  },
  [DNS_SUBDOMAIN_PATTERN]: {
    meaning: 'lowercase letters, digits, "-" and ".", starting and ending with a letter or digit',
    invalidCharacters: /[^a-z0-9.-]+/g,
  },
};

export function schemaDiagnostics(errors: readonly ErrorObject[], view: DocumentView): Diagnostic[] {
  // A value of the wrong type fails its other keywords too (an enum, say): its type is the news.
  const typeErrorAt = new Set(errors.filter((e) => e.keyword === "type").map((e) => e.instancePath));
  // A misspelt field is also a missing one: the did-you-mean on the misspelling says it all.
  const misspelt = new Set<string>();
  for (const e of errors.filter((e) => e.keyword === "additionalProperties")) {
    const field = fieldSuggestion(e);
    if (field) misspelt.add(`${e.instancePath}/${field}`);
  }
  return errors
    .filter((e) => e.keyword === "type" || !typeErrorAt.has(e.instancePath))
    .filter((e) => e.keyword !== "required" || !misspelt.has(`${e.instancePath}/${e.params.missingProperty}`))
    .map((e) => {
      const { code, message, hint, at, path } = explain(e, view);
      return { ...at, code, message, ...(hint && { hint }), ...(path.length > 0 && { path: view.display(path) }) };
    });
}

function explain(error: ErrorObject, view: DocumentView): Finding {
  const path = pointerSegments(error.instancePath);
  const { params, data } = error;
  const at = view.valueAt(path);
  switch (error.keyword) {
    case "additionalProperties": {
      const fieldPath = [...path, params.additionalProperty as string];
      const parent = view.display(path);
      const suggestion = fieldSuggestion(error);
      return {
        code: "SchemaUnknownField",
        message: `unknown field ${quote(params.additionalProperty)}${parent && ` in ${parent}`}`,
        hint: suggestion ? didYouMean(suggestion) : `expected one of: ${allowedFields(error).join(", ")}`,
        at: view.keyAt(fieldPath),
        path: fieldPath,
      };
    }
    case "type":
      return { code: "SchemaType", message: `expected ${params.type}, got ${typeName(data)}`, at, path };
    case "enum": {
      const allowed = params.allowedValues as unknown[];
      const suggestion = typeof data === "string" ? suggest(data, allowed.map(String)) : undefined;
      return {
        code: "SchemaEnum",
        message: `invalid value ${quote(data)}, expected one of: ${allowed.join(", ")}`,
        hint: suggestion && didYouMean(suggestion),
        at,
        path,
      };
    }
    case "required":
      return { code: "SchemaRequired", message: `missing required field ${quote(params.missingProperty)}`, at, path };
    case "pattern":
      return { code: "SchemaPattern", ...describePatternMismatch(data as string, params.pattern as string), at, path };
    case "format":
      return { code: "SchemaFormat", message: `invalid value ${quote(data)}, expected a ${params.format}`, at, path };
    case "minLength":
    case "maxLength":
      return { code: "SchemaLength", message: describeLimit(error, "character", (data as string).length), at, path };
    case "minItems":
    case "maxItems":
      return { code: "SchemaItemCount", message: describeLimit(error, "item", (data as unknown[]).length), at, path };
    case DUPLICATE_LIST_KEY:
      return describeDuplicate(params as DuplicateListKeyParams, path, view);
    default:
      return { code: "SchemaInvalid", message: error.message ?? `fails ${error.keyword}`, at, path };
  }
}

function allowedFields(error: ErrorObject): string[] {
  return Object.keys((error.parentSchema?.properties as object | undefined) ?? {});
}

function fieldSuggestion(error: ErrorObject): string | undefined {
  return suggest(error.params.additionalProperty as string, allowedFields(error));
}

function describePatternMismatch(value: string, pattern: string): { message: string; hint?: string } {
  const name = NAME_PATTERNS[pattern];
  if (!name) return { message: `invalid value ${quote(value)}, must match ${pattern}` };
  const fixed = value.toLowerCase().replace(name.invalidCharacters, "-").replace(/^[-.]+|[-.]+$/g, "");
  return {
    message: `invalid value ${quote(value)}, must be ${name.meaning}`,
    ...(new RegExp(pattern).test(fixed) && { hint: didYouMean(fixed) }),
  };
}

function describeLimit(error: ErrorObject, unit: string, actual: number): string {
  const limit = error.params.limit as number;
  if (error.keyword.startsWith("min")) {
    return limit === 1 && unit === "character" ? "must not be empty" : `must have at least ${count(limit, unit)}`;
  }
  return `must have at most ${count(limit, unit)}, got ${actual}`;
}

/**
 * Two items of a list keyed by `x-kubernetes-list-map-keys` share their keys: reported on the
 * second one's key, naming the list's items by the list's name (rules: "rule", conditions: "condition").
 */
function describeDuplicate({ keys, firstIndex }: DuplicateListKeyParams, itemPath: PathSegments, view: DocumentView): Finding {
  const listPath = itemPath.slice(0, -1);
  const item = listPath.at(-1)!.replace(/s$/, "");
  const values = lookup(view.data, itemPath) as Record<string, unknown>;
  const firstLine = view.valueAt([...listPath, String(firstIndex), keys[0]!]).line;
  const keyPath = [...itemPath, keys[0]!];
  return {
    code: `Duplicate${capitalize(item)}${keys.map(capitalize).join("")}`,
    message: `duplicate ${item} ${keys.map((key) => `${key} ${quote(values[key])}`).join(", ")} (first at line ${firstLine})`,
    at: view.valueAt(keyPath),
    path: keyPath,
  };
}

function lookup(data: unknown, path: PathSegments): unknown {
  return path.reduce<unknown>((value, segment) => (value as Record<string, unknown> | undefined)?.[segment], data);
}

/** JSON Schema's names for the types of plain data. */
export function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

const quote = (value: unknown) => JSON.stringify(value);
export const didYouMean = (suggestion: string) => `did you mean ${quote(suggestion)}?`;
const count = (n: number, unit: string) => `${n} ${unit}${n === 1 ? "" : "s"}`;
const capitalize = (word: string) => word.charAt(0).toUpperCase() + word.slice(1);
