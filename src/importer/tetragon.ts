// `palisade import tetragon`: translates Cilium Tetragon tracing policies (cilium.io/v1alpha1
// TracingPolicy and TracingPolicyNamespaced) into Palisade policies where the meaning carries
// over, and refuses the rest feature by feature, each refusal pointing at the Tetragon YAML
// that has no equivalent. Pure: text in, YAML text and diagnostics out.
//
// Tetragon semantics followed here (its pkg/selectors and docs/concepts/tracing-policy):
// - a hook's selectors are OR'ed and short-circuited: only the first matching selector acts;
// - a selector's filters are AND'ed; the values of one filter are OR'ed, and a negated
//   operator (NotEqual, NotPrefix, NotDAddr, ...) matches when none of its values does;
// - a selector without actions posts an event, which is what a Palisade `audit` rule does.

import { Document, isNode, LineCounter, parseAllDocuments } from "yaml";
import { sortDiagnostics, suggest, type Diagnostic } from "../diagnostics.ts";
import type { Action, Hook, LabelSelector, LabelSelectorRequirement, Mode, PolicyKind, Severity } from "../policy/model.ts";
import { formatIp, networkOf, parseIp } from "../policy/ip.ts";
import { documentView, type DocumentView } from "../validate/document-view.ts";
import { positionFinder } from "../validate/positions.ts";
import { didYouMean, typeName } from "../validate/schema-errors.ts";
import { DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN } from "../validate/schema.ts";

export interface TetragonImport {
  /** Palisade policy documents, `---` separated; empty when nothing translates. */
  yaml: string;
  /** How many policy documents `yaml` holds. */
  policies: number;
  /** What was not translated, and why. */
  refusals: Diagnostic[];
  /** What was translated with a difference worth knowing, or left out as output-only. */
  warnings: Diagnostic[];
}

const TETRAGON_API_VERSION = "cilium.io/v1alpha1";
const TETRAGON_KINDS: readonly PolicyKind[] = ["TracingPolicy", "TracingPolicyNamespaced"];

// Diagnostic codes.
/** Valid Tetragon with no Palisade equivalent. */
const UNSUPPORTED = "TetragonUnsupported";
/** Not a valid Tetragon policy (wrong type, unknown field or value). */
const INVALID = "TetragonInvalid";
/** Warning: only shaped Tetragon's event output, so it is left out. */
const DROPPED = "TetragonDropped";
/** Warning: translated to the nearest Palisade meaning, which differs in a corner case. */
const APPROXIMATED = "TetragonApproximated";
/** Warning: a rule that could never apply, so it is left out. */
const UNREACHABLE = "TetragonUnreachable";
/** Warning: a document that is some other Kubernetes object. */
const SKIPPED = "TetragonSkipped";

export function importTetragon(file: string, text: string): TetragonImport {
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text, { lineCounter, prettyErrors: false, merge: true });
  const positionOf = positionFinder(file, text, lineCounter);
  const refusals: Diagnostic[] = [];
  const warnings: Diagnostic[] = [];
  const outputs: string[] = [];
  for (const doc of documents) {
    const yamlProblems = [...doc.errors, ...doc.warnings];
    if (yamlProblems.length > 0) {
      for (const e of yamlProblems) refusals.push({ ...positionOf(e.pos[0]), code: "YamlSyntax", message: e.message });
      continue;
    }
    if (doc.contents === null) continue;
    let data: unknown;
    try {
      data = doc.toJS();
    } catch (e) {
      // Aliases expanding beyond the yaml package's limit (a "billion laughs" document).
      refusals.push({ ...positionOf(doc.contents.range?.[0] ?? 0), code: "YamlSyntax", message: (e as Error).message });
      continue;
    }
    const reporter = new Reporter(documentView(doc, data, positionOf), refusals, warnings);
    const policy = importDocument(data, reporter);
    if (policy) outputs.push(renderPolicy(policy, file));
  }
  return {
    yaml: outputs.join("---\n"),
    policies: outputs.length,
    refusals: distinct(sortDiagnostics(refusals)),
    warnings: distinct(sortDiagnostics(warnings)),
  };
}

// ---------------------------------------------------------------------------------------------
// Diagnostics and reading untyped YAML data

type Path = readonly string[];
type YamlObject = Record<string, unknown>;

/** One document's diagnostics, placed at the key (or list item) a path names. */
class Reporter {
  readonly view: DocumentView;
  readonly refusals: Diagnostic[];
  readonly warnings: Diagnostic[];

  constructor(view: DocumentView, refusals: Diagnostic[], warnings: Diagnostic[]) {
    this.view = view;
    this.refusals = refusals;
    this.warnings = warnings;
  }

  refuse(path: Path, message: string, options: { code?: string; hint?: string | undefined } = {}): void {
    this.refusals.push(this.diagnostic(path, options.code ?? UNSUPPORTED, message, options.hint));
  }

  invalid(path: Path, message: string, hint?: string): void {
    this.refuse(path, message, { code: INVALID, hint });
  }

  warn(path: Path, code: string, message: string): void {
    this.warnings.push(this.diagnostic(path, code, message));
  }

  display(path: Path): string {
    return this.view.display(path);
  }

  private diagnostic(path: Path, code: string, message: string, hint?: string): Diagnostic {
    return {
      ...this.view.keyAt(path),
      code,
      message,
      ...(hint && { hint }),
      ...(path.length > 0 && { path: this.view.display(path) }),
    };
  }
}

/** Without repeats: a macro shared by several selectors is reported once. */
function distinct(sorted: Diagnostic[]): Diagnostic[] {
  const key = (d: Diagnostic) => JSON.stringify([d.line, d.column, d.code, d.message]);
  return sorted.filter((d, i) => i === 0 || key(d) !== key(sorted[i - 1]!));
}

function isObject(value: unknown): value is YamlObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A field's value; own keys only, so that user-chosen names like "constructor" stay data. */
function field(object: YamlObject, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

/** Absent (or null) means "not set", as Kubernetes decodes it. */
function isSet(value: unknown): boolean {
  return value !== undefined && value !== null;
}

/** Set and not an empty list, mapping or string: something that changes what Tetragon does. */
function isEffective(value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0;
  if (isObject(value)) return Object.keys(value).length > 0;
  return isSet(value) && value !== false && value !== "";
}

function expectObject(r: Reporter, path: Path, value: unknown): YamlObject | undefined {
  if (isObject(value)) return value;
  r.invalid(path, `expected a mapping, got ${typeName(value)}`);
  return undefined;
}

/** A list; absent counts as empty. */
function expectList(r: Reporter, path: Path, value: unknown): unknown[] | undefined {
  if (!isSet(value)) return [];
  if (Array.isArray(value)) return value;
  r.invalid(path, `expected a list, got ${typeName(value)}`);
  return undefined;
}

function expectString(r: Reporter, path: Path, value: unknown): string | undefined {
  if (typeof value === "string") return value;
  r.invalid(path, `expected a string, got ${typeName(value)}`);
  return undefined;
}

/** The `values` of a filter: strings, or numbers YAML read from unquoted ports and PIDs. */
function expectValues(r: Reporter, path: Path, value: unknown): string[] | undefined {
  const items = expectList(r, path, value);
  if (!items) return undefined;
  const values: string[] = [];
  let valid = true;
  items.forEach((item, i) => {
    if (typeof item === "string" || (typeof item === "number" && Number.isFinite(item))) values.push(String(item));
    else {
      r.invalid([...path, String(i)], `expected a string, got ${typeName(item)}`);
      valid = false;
    }
  });
  return valid ? values : undefined;
}

/** Object names and namespaces as the apiserver (and Palisade's validator) accepts them. */
const OBJECT_NAME = { pattern: new RegExp(DNS_SUBDOMAIN_PATTERN), maxLength: 253, what: 'lowercase letters, digits, "-" and "."' };
const NAMESPACE_NAME = { pattern: new RegExp(DNS_LABEL_PATTERN), maxLength: 63, what: 'lowercase letters, digits and "-"' };

function expectName(r: Reporter, path: Path, value: unknown, rule: typeof OBJECT_NAME): string | undefined {
  const text = expectString(r, path, value);
  if (text === undefined || (rule.pattern.test(text) && text.length <= rule.maxLength)) return text;
  r.invalid(path, `${JSON.stringify(text)} is not a Kubernetes name: ${rule.what}, starting and ending with a letter or digit, at most ${rule.maxLength} characters`);
  return undefined;
}

function expectIndex(r: Reporter, path: Path, value: unknown): number | undefined {
  if (typeof value === "number" && Number.isInteger(value) && value >= 0) return value;
  r.invalid(path, `expected a non-negative integer, got ${JSON.stringify(value) ?? typeName(value)}`);
  return undefined;
}

/** Refuses fields Tetragon does not define: Palisade cannot tell what they would change. */
function checkFields(r: Reporter, path: Path, object: YamlObject, known: readonly string[], what: string): boolean {
  const unknown = Object.keys(object).filter((key) => !known.includes(key));
  for (const key of unknown) {
    const suggestion = suggest(key, known);
    r.invalid([...path, key], `${JSON.stringify(key)} is not a field of a Tetragon ${what}`, suggestion && didYouMean(suggestion));
  }
  return unknown.length === 0;
}


// ---------------------------------------------------------------------------------------------
// CEL, built as a tree so that parentheses appear only where precedence needs them

type Cel =
  | { kind: "and" | "or"; operands: Cel[] }
  | { kind: "not"; operand: Cel }
  /** `primary`: a call or literal, which `!` can prefix without parentheses. */
  | { kind: "test"; text: string; primary: boolean };

const TRUE: Cel = { kind: "test", text: "true", primary: true };

const relation = (text: string): Cel => ({ kind: "test", text, primary: false });
const call = (text: string): Cel => ({ kind: "test", text, primary: true });

function all(operands: Cel[]): Cel {
  const flat = operands.flatMap((c) => (c.kind === "and" ? c.operands : c === TRUE ? [] : [c]));
  return flat.length === 0 ? TRUE : flat.length === 1 ? flat[0]! : { kind: "and", operands: flat };
}

function any(operands: Cel[]): Cel {
  const flat = operands.flatMap((c) => (c.kind === "or" ? c.operands : [c]));
  return flat.length === 1 ? flat[0]! : { kind: "or", operands: flat };
}

function not(operand: Cel): Cel {
  return operand.kind === "not" ? operand.operand : { kind: "not", operand };
}

function renderCel(c: Cel, within: "top" | "and" | "or" | "not" = "top"): string {
  switch (c.kind) {
    case "test":
      return within === "not" && !c.primary ? `(${c.text})` : c.text;
    case "not":
      return `!${renderCel(c.operand, "not")}`;
    case "and": {
      // Inside || the parentheses are for people: && binds tighter anyway.
      const text = c.operands.map((o) => renderCel(o, "and")).join(" && ");
      return within === "not" || within === "or" ? `(${text})` : text;
    }
    case "or": {
      const text = c.operands.map((o) => renderCel(o, "or")).join(" || ");
      return within === "and" || within === "not" ? `(${text})` : text;
    }
  }
}

/** JSON's string escapes are a subset of CEL's, so JSON quoting is correct CEL quoting. */
const celString = (s: string): string => JSON.stringify(s);

/** `field == v` or `field in [v, ...]`. */
function oneOf(field: string, literals: string[]): Cel {
  return relation(literals.length === 1 ? `${field} == ${literals[0]}` : `${field} in [${literals.join(", ")}]`);
}

// ---------------------------------------------------------------------------------------------
// What carries over

interface Target {
  hook: Hook;
  /** Tetragon's type for the call's argument 0, the only argument a Palisade hook sees. */
  argumentType: "file" | "linux_binprm" | "sock";
  /** The Palisade field holding that argument's path; none for sockets. */
  pathField?: string;
  /** What the Tetragon hook implies and the Palisade hook does not. */
  implied: Cel;
  /** The rule name stem. */
  stem: string;
}

const KPROBE_TARGETS = new Map<string, Target>([
  ["security_file_open", { hook: "file.open", argumentType: "file", pathField: "file.path", implied: TRUE, stem: "security-file-open" }],
  // The bprm file is the program being executed, which Palisade calls process.binary.
  ["security_bprm_check", { hook: "process.exec", argumentType: "linux_binprm", pathField: "process.binary", implied: TRUE, stem: "security-bprm-check" }],
  ["tcp_connect", { hook: "net.connect", argumentType: "sock", implied: relation('net.protocol == "tcp"'), stem: "tcp-connect" }],
]);

const LSM_TARGETS = new Map<string, Target>([
  ["file_open", { ...KPROBE_TARGETS.get("security_file_open")!, stem: "lsm-file-open" }],
  ["bprm_check_security", { ...KPROBE_TARGETS.get("security_bprm_check")!, stem: "lsm-bprm-check" }],
]);

const TRANSLATED_HOOKS_HINT =
  "Palisade translates kprobes security_file_open, security_bprm_check and tcp_connect, and lsmhooks file_open and bprm_check_security";

/** Syscalls whose meaning a translated call covers, to point people at it. */
const SYSCALL_EQUIVALENTS = new Map([
  ["open", "security_file_open"],
  ["openat", "security_file_open"],
  ["openat2", "security_file_open"],
  ["creat", "security_file_open"],
  ["execve", "security_bprm_check"],
  ["execveat", "security_bprm_check"],
  ["connect", "tcp_connect"],
]);

/** Why a kprobe call or LSM hook does not translate: a message and a hint. */
function refusalOfCall(call: string, syscall: boolean): [string, { hint: string }] {
  if (call.startsWith("list:")) return ["a list of calls has no Palisade equivalent", { hint: TRANSLATED_HOOKS_HINT }];
  if (call === "security_file_permission" || call === "file_permission") {
    return [
      `"${call}" checks each read and write of a file already open; Palisade's file.open sees opens only`,
      { hint: "security_file_open (or lsmhooks file_open) translates to file.open" },
    ];
  }
  const syscallName = /^(?:__[a-z0-9]+_)?sys_(\w+)$/.exec(call)?.[1];
  if (syscall || syscallName !== undefined) {
    const equivalent = syscallName && SYSCALL_EQUIVALENTS.get(syscallName);
    return [
      `syscall "${call}" sees its arguments as the process passed them, before the kernel resolves them; Palisade matches what the kernel resolved`,
      { hint: equivalent ? `use call ${equivalent}, which Palisade translates` : TRANSLATED_HOOKS_HINT },
    ];
  }
  return [`"${call}" has no Palisade hook`, { hint: TRANSLATED_HOOKS_HINT }];
}

// Tetragon's operator spellings (pkg/selectors SelectorOp), by canonical name.
const OPERATOR_SPELLINGS: Record<string, readonly string[]> = {
  Equal: ["eq"], NotEqual: ["neq"], In: [], NotIn: [],
  Prefix: ["prefix"], NotPrefix: ["notprefix"], Postfix: ["postfix"], NotPostfix: ["notpostfix"],
  GreaterThan: ["gt", "GT"], LessThan: ["lt", "LT"], Mask: ["mask"], InMap: [], NotInMap: [],
  InRange: [], NotInRange: [], SubString: [], SubStringIgnCase: [], CelExpr: [], FileType: [], NotFileType: [],
  CapabilitiesGained: [], State: ["state"], Protocol: ["protocol"], Family: ["family"],
  SAddr: ["saddr", "Saddr"], NotSAddr: ["notsaddr", "NotSaddr"], DAddr: ["daddr", "Daddr"], NotDAddr: ["notdaddr", "NotDaddr"],
  SPort: ["sport", "Sport"], NotSPort: ["notsport", "NotSport"], DPort: ["dport", "Dport"], NotDPort: ["notdport", "NotDport"],
  SPortPriv: ["sportpriv", "SportPriv"], NotSPortPriv: ["notsportpriv", "NotSportPriv"],
  DPortPriv: ["dportpriv", "DportPriv"], NotDPortPriv: ["notdportpriv", "NotDportPriv"],
};
const CANONICAL_OPERATOR = new Map(
  Object.entries(OPERATOR_SPELLINGS).flatMap(([canonical, aliases]) => [canonical, ...aliases].map((s) => [s, canonical] as const)),
);

function operatorOf(r: Reporter, path: Path, value: unknown): string | undefined {
  const spelled = expectString(r, path, value);
  if (spelled === undefined) return undefined;
  const canonical = CANONICAL_OPERATOR.get(spelled);
  if (!canonical) r.invalid(path, `unknown Tetragon operator ${JSON.stringify(spelled)}`, hintFor(spelled, [...CANONICAL_OPERATOR.keys()]));
  return canonical;
}

function hintFor(word: string, candidates: readonly string[]): string | undefined {
  const suggestion = suggest(word, candidates);
  return suggestion && didYouMean(suggestion);
}

// ---------------------------------------------------------------------------------------------
// Documents and policies

interface ImportedRule {
  name: string;
  hook: Hook;
  match: string;
  action: Action;
  severity: Severity;
  message: string;
}

interface ImportedPolicy {
  kind: PolicyKind;
  name: string;
  namespace?: string;
  mode: Mode;
  podSelector?: LabelSelector;
  rules: ImportedRule[];
}

const SPEC_FIELDS = [
  "kprobes", "fentries", "lsmhooks", "tracepoints", "uprobes", "usdts", "enforcers", "loader",
  "podSelector", "containerSelector", "hostSelector", "nodeSelector", "lists", "options", "selectorsMacros",
];

/** Whole hook families with no Palisade counterpart. */
const UNSUPPORTED_SECTIONS: Record<string, string> = {
  tracepoints: "tracepoints see a syscall's or event's raw arguments, not what Palisade hooks see",
  uprobes: "user-space probes have no Palisade equivalent",
  usdts: "user-space static probes have no Palisade equivalent",
  enforcers: "enforcers override syscall return values, which Palisade does not do",
  loader: "loader events (executable mappings) have no Palisade equivalent",
};

/** Scoping a policy by these has no Palisade equivalent, and without them it would apply more widely. */
const UNSUPPORTED_SCOPES: Record<string, string> = {
  containerSelector: "Palisade selects whole pods, not containers",
  hostSelector: "Palisade cannot select host processes alone, nor add them to selected pods",
  nodeSelector: "Palisade policies apply on every node",
};

function importDocument(data: unknown, r: Reporter): ImportedPolicy | undefined {
  const apiVersion = isObject(data) ? field(data, "apiVersion") : undefined;
  const kind = isObject(data) ? field(data, "kind") : undefined;
  if (!isObject(data) || typeof apiVersion !== "string" || typeof kind !== "string") {
    const got = isObject(data) ? "a mapping without them" : typeName(data);
    r.invalid([], `expected a Tetragon policy, a mapping with apiVersion ${TETRAGON_API_VERSION}, kind, metadata and spec; got ${got}`);
    return undefined;
  }
  const tetragonKind = TETRAGON_KINDS.find((k) => k === kind);
  if (apiVersion !== TETRAGON_API_VERSION) {
    if (tetragonKind) r.invalid(["apiVersion"], `expected apiVersion ${TETRAGON_API_VERSION} for a Tetragon ${kind}, got ${JSON.stringify(apiVersion)}`);
    else r.warn(["kind"], SKIPPED, `skipped ${apiVersion} ${kind}: not a Tetragon policy`);
    return undefined;
  }
  if (!tetragonKind) {
    r.invalid(["kind"], `expected kind TracingPolicy or TracingPolicyNamespaced, got ${JSON.stringify(kind)}`, hintFor(kind, TETRAGON_KINDS));
    return undefined;
  }
  return importPolicy(data, tetragonKind, r);
}

function importPolicy(data: YamlObject, kind: PolicyKind, r: Reporter): ImportedPolicy | undefined {
  const refusalsBefore = r.refusals.length;
  const metadata = expectObject(r, ["metadata"], field(data, "metadata"));
  const name = metadata && expectName(r, ["metadata", "name"], field(metadata, "name"), OBJECT_NAME);
  // null: none (a cluster-scoped object's is ignored, as Kubernetes does); undefined: malformed.
  const namespace = kind === "TracingPolicyNamespaced" && metadata && isSet(field(metadata, "namespace"))
    ? expectName(r, ["metadata", "namespace"], field(metadata, "namespace"), NAMESPACE_NAME)
    : null;
  const spec = expectObject(r, ["spec"], field(data, "spec"));
  if (!spec) return undefined;

  let wholePolicyTranslates = checkFields(r, ["spec"], spec, SPEC_FIELDS, "policy spec");
  for (const [section, reason] of Object.entries(UNSUPPORTED_SECTIONS)) {
    if (isEffective(field(spec, section))) r.refuse(["spec", section], reason);
  }
  for (const [scope, reason] of Object.entries(UNSUPPORTED_SCOPES)) {
    if (!isSet(field(spec, scope))) continue;
    r.refuse(["spec", scope], `${reason}; without ${scope} the policy would apply more widely, so it is not translated`);
    wholePolicyTranslates = false;
  }
  const mode = policyMode(r, spec);
  // null: no podSelector; undefined: a malformed one.
  const podSelector = isSet(field(spec, "podSelector")) ? labelSelector(r, ["spec", "podSelector"], field(spec, "podSelector")) : null;

  const macros = isSet(field(spec, "selectorsMacros")) ? expectObject(r, ["spec", "selectorsMacros"], field(spec, "selectorsMacros")) : {};
  // Bad metadata stops the output, not the search for every other problem.
  const context: ProbeContext = { r, policyName: name ?? "(unnamed)", macros: macros ?? {}, rules: new RuleNames() };
  for (const section of ["kprobes", "fentries"]) {
    forEachProbe(r, spec, section, (probe, path) => {
      if (!checkFields(r, path, probe, KPROBE_FIELDS, "kprobe")) return;
      const call = expectString(r, [...path, "call"], field(probe, "call"));
      if (call === undefined) return;
      const target = KPROBE_TARGETS.get(call);
      if (!target) {
        r.refuse([...path, "call"], ...refusalOfCall(call, field(probe, "syscall") === true));
      } else if (isEffective(field(probe, "returnArgAction"))) {
        r.refuse([...path, "returnArgAction"], "socket tracking across probes has no Palisade equivalent");
      } else {
        translateProbe(context, path, probe, target);
      }
    });
  }
  forEachProbe(r, spec, "lsmhooks", (hook, path) => {
    if (!checkFields(r, path, hook, LSM_HOOK_FIELDS, "LSM hook")) return;
    const hookName = expectString(r, [...path, "hook"], field(hook, "hook"));
    if (hookName === undefined) return;
    const target = LSM_TARGETS.get(hookName);
    if (target) translateProbe(context, path, hook, target);
    else r.refuse([...path, "hook"], ...refusalOfCall(hookName, false));
  });

  const rules = context.rules.list;
  if (name === undefined || namespace === undefined || !wholePolicyTranslates || mode === undefined || podSelector === undefined) return undefined;
  if (rules.length === 0) {
    // Every part that did not translate has said why; a policy that simply has nothing says so.
    if (r.refusals.length === refusalsBefore) r.refuse(["spec"], `Tetragon policy "${name}" translates to no Palisade rule`, { hint: TRANSLATED_HOOKS_HINT });
    return undefined;
  }
  return {
    kind,
    name,
    ...(namespace !== null && { namespace }),
    mode,
    ...(podSelector && { podSelector }),
    rules,
  };
}

/** Tetragon's `policy-mode` option is Palisade's spec.mode; the other options tune how Tetragon attaches probes. */
function policyMode(r: Reporter, spec: YamlObject): Mode | undefined {
  const options = expectList(r, ["spec", "options"], field(spec, "options"));
  if (!options) return undefined;
  let mode: Mode | undefined = "enforce";
  options.forEach((option, i) => {
    const path = ["spec", "options", String(i)];
    const entry = expectObject(r, path, option);
    if (!entry || !checkFields(r, path, entry, ["name", "value"], "option")) return;
    const name = expectString(r, [...path, "name"], field(entry, "name"));
    if (name === "policy-mode") {
      const value = field(entry, "value");
      if (value === "enforce" || value === "monitor") mode = value;
      else {
        r.invalid([...path, "value"], `policy-mode must be "enforce" or "monitor", got ${JSON.stringify(value) ?? typeName(value)}`);
        mode = undefined;
      }
    } else if (name !== undefined) {
      r.warn(path, DROPPED, `option ${JSON.stringify(name)} tunes how Tetragon attaches its probes; it means nothing to Palisade`);
    }
  });
  return mode;
}

/** A Kubernetes label selector, copied after checking its shape; undefined when malformed. */
function labelSelector(r: Reporter, path: Path, value: unknown): LabelSelector | undefined {
  const selector = expectObject(r, path, value);
  if (!selector || !checkFields(r, path, selector, ["matchLabels", "matchExpressions"], "label selector")) return undefined;
  const result: LabelSelector = {};
  let valid = true;
  const labels = field(selector, "matchLabels");
  if (isSet(labels)) {
    const labelsObject = expectObject(r, [...path, "matchLabels"], labels);
    if (labelsObject) {
      result.matchLabels = {};
      for (const [key, labelValue] of Object.entries(labelsObject)) {
        const text = expectString(r, [...path, "matchLabels", key], labelValue);
        if (text === undefined) valid = false;
        else result.matchLabels[key] = text;
      }
    } else valid = false;
  }
  const expressions = expectList(r, [...path, "matchExpressions"], field(selector, "matchExpressions"));
  if (!expressions) valid = false;
  else if (expressions.length > 0) {
    result.matchExpressions = [];
    expressions.forEach((item, i) => {
      const requirement = labelRequirement(r, [...path, "matchExpressions", String(i)], item);
      if (requirement) result.matchExpressions!.push(requirement);
      else valid = false;
    });
  }
  return valid ? result : undefined;
}

const LABEL_OPERATORS = ["In", "NotIn", "Exists", "DoesNotExist"] as const;

function labelRequirement(r: Reporter, path: Path, value: unknown): LabelSelectorRequirement | undefined {
  const requirement = expectObject(r, path, value);
  if (!requirement || !checkFields(r, path, requirement, ["key", "operator", "values"], "label selector requirement")) return undefined;
  const key = expectString(r, [...path, "key"], field(requirement, "key"));
  const operator = expectString(r, [...path, "operator"], field(requirement, "operator"));
  const values = expectValues(r, [...path, "values"], field(requirement, "values"));
  const knownOperator = LABEL_OPERATORS.find((o) => o === operator);
  if (operator !== undefined && !knownOperator) {
    r.invalid([...path, "operator"], `expected In, NotIn, Exists or DoesNotExist, got ${JSON.stringify(operator)}`, hintFor(operator, LABEL_OPERATORS));
  }
  if (key === undefined || !knownOperator || !values) return undefined;
  return { key, operator: knownOperator, ...(values.length > 0 && { values }) };
}

const MAX_RULE_NAME_LENGTH = 63;

/** Unique rule names in Palisade's DNS-label form, in the order rules are added. */
class RuleNames {
  readonly list: ImportedRule[] = [];
  private readonly taken = new Set<string>();

  add(preferred: string, rule: Omit<ImportedRule, "name">): void {
    const stem = dnsLabel(preferred, MAX_RULE_NAME_LENGTH - 7) || "rule"; // room for a "-<n>" suffix
    let name = stem;
    for (let n = 2; this.taken.has(name); n++) name = `${stem}-${n}`;
    this.taken.add(name);
    this.list.push({ name, ...rule });
  }
}

function dnsLabel(text: string, maxLength: number): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").slice(0, maxLength).replace(/^-+|-+$/g, "");
}

// ---------------------------------------------------------------------------------------------
// Probes (kprobes, fentries, lsmhooks) and their selectors

const KPROBE_FIELDS = ["call", "return", "syscall", "message", "args", "data", "returnArg", "returnArgAction", "selectors", "tags", "ignore"];
const LSM_HOOK_FIELDS = ["hook", "message", "args", "selectors", "tags"];
const ARG_FIELDS = ["index", "type", "resolve", "sizeArgIndex", "returnCopy", "maxData", "label", "source", "btfType", "btfTypeModule"];
const SELECTOR_FIELDS = [
  "label", "matchPIDs", "matchArgs", "matchData", "matchActions", "matchReturnArgs", "matchReturnActions", "matchBinaries",
  "matchParentBinaries", "matchNamespaces", "matchNamespaceChanges", "matchCapabilities", "matchCapabilityChanges",
  "matchWorkloads", "macros",
];

/** Selector filters with no Palisade counterpart, and why. */
const UNSUPPORTED_FILTERS: Record<string, string> = {
  matchPIDs: "Palisade rules do not match process IDs",
  matchData: "Palisade rules see no kernel data beyond the hook's own fields",
  matchReturnArgs: "Palisade decides before the call returns, so it has no return value to match",
  matchReturnActions: "Palisade decides before the call returns, so it has no return value to act on",
  matchNamespaces: "Palisade rules do not match Linux namespaces",
  matchNamespaceChanges: "Palisade rules do not match Linux namespace changes",
  matchCapabilities: "Palisade rules do not match capabilities",
  matchCapabilityChanges: "Palisade rules do not match capability changes",
  matchWorkloads: "Palisade selects workloads per policy (spec.selector), not per rule",
};

interface ProbeContext {
  r: Reporter;
  policyName: string;
  macros: YamlObject;
  rules: RuleNames;
}

/** A probe's `args` list, which argument filters refer to. */
interface ProbeArgs {
  list: unknown[];
  path: Path;
}

function forEachProbe(r: Reporter, spec: YamlObject, section: string, visit: (probe: YamlObject, path: Path) => void): void {
  expectList(r, ["spec", section], field(spec, section))?.forEach((item, i) => {
    const path = ["spec", section, String(i)];
    const probe = expectObject(r, path, item);
    if (probe) visit(probe, path);
  });
}

/** What a selector does in Palisade; "silent": nothing (NoPost). */
type Outcome = Action | "silent";
/** Palisade applies the strongest matching rule (compiler/precedence.ts): kill, then deny, then audit. */
const STRENGTH: Record<Outcome, number> = { silent: 0, audit: 1, deny: 2, kill: 3 };

interface SelectorTranslation {
  path: Path;
  /** Held back until the selector becomes a rule: a selector that does not needs none. */
  warnings: Diagnostic[];
  label: string | undefined;
  /** Undefined when a filter could not be translated. */
  condition: Cel | undefined;
  /** Undefined when an action could not be translated; such a selector still comes first in Tetragon. */
  outcome: Outcome | undefined;
}

function translateProbe(context: ProbeContext, path: Path, probe: YamlObject, target: Target): void {
  const { r } = context;
  if (isSet(field(probe, "returnArg"))) r.warn([...path, "returnArg"], DROPPED, "the return value only adds to Tetragon's event output; Palisade events do not carry it");
  if (isEffective(field(probe, "tags"))) r.warn([...path, "tags"], DROPPED, "tags only label Tetragon's events; Palisade events carry the policy and rule names instead");
  const args = expectList(r, [...path, "args"], field(probe, "args"));
  const selectors = expectList(r, [...path, "selectors"], field(probe, "selectors"));
  const message = isSet(field(probe, "message")) ? expectString(r, [...path, "message"], field(probe, "message")) : "";
  if (!args || !selectors || message === undefined) return;

  const addRule = (origin: Path, preferredName: string, match: Cel, action: Action): boolean => {
    const text = renderCel(all([target.implied, match]));
    if (text.length > MAX_MATCH_LENGTH) {
      r.refuse(origin, `the translated match is ${text.length} characters, more than the ${MAX_MATCH_LENGTH} a Palisade rule allows`, { hint: "split the values over several selectors" });
      return false;
    }
    context.rules.add(preferredName, {
      hook: target.hook,
      match: text,
      action,
      severity: action === "audit" ? "medium" : "high",
      message: ruleMessage(message, context.policyName, r.display(origin)),
    });
    return true;
  };

  if (selectors.length === 0) {
    // Without selectors, Tetragon posts an event for every call.
    addRule(path, target.stem, TRUE, "audit");
    return;
  }
  const probeArgs = { list: args, path: [...path, "args"] };
  const translations = selectors.map((selector, i) => translateSelector(context, [...path, "selectors", String(i)], selector, target, probeArgs));
  translations.forEach((selector, i) => {
    const { condition, outcome } = selector;
    if (condition === undefined || outcome === undefined || outcome === "silent") return;
    // Tetragon acts on the first matching selector only, Palisade on the strongest matching
    // rule: so a rule must leave out what an earlier, weaker selector takes first.
    const earlierWeaker = translations.slice(0, i).filter((e) => STRENGTH[e.outcome ?? "silent"] < STRENGTH[outcome]);
    const untranslated = earlierWeaker.find((e) => e.condition === undefined);
    if (untranslated) {
      r.refuse(selector.path, `Tetragon checks ${r.display(untranslated.path)} first, and it could not be translated`);
      return;
    }
    const catchAll = earlierWeaker.find((e) => e.condition === TRUE);
    if (catchAll) {
      r.warn(selector.path, UNREACHABLE, `never applies: Tetragon checks ${r.display(catchAll.path)} first, and it matches every call`);
      return;
    }
    const match = all([condition, ...earlierWeaker.map((e) => not(e.condition!))]);
    if (addRule(selector.path, selector.label ?? `${target.stem}-${i}`, match, outcome)) {
      r.warnings.push(...selector.warnings, ...earlierWeaker.flatMap((e) => e.warnings));
    }
  });
}

const MAX_MATCH_LENGTH = 4096;
const MAX_MESSAGE_LENGTH = 1024;

function ruleMessage(tetragonMessage: string, policyName: string, origin: string): string {
  const imported = `imported from Tetragon policy ${policyName} (${origin})`;
  const room = MAX_MESSAGE_LENGTH - imported.length - 2;
  return tetragonMessage && room > 0 ? `${tetragonMessage.slice(0, room)}; ${imported}` : imported.slice(0, MAX_MESSAGE_LENGTH);
}

/** One filter list entry, from the selector itself or from a macro it uses. */
interface Entry {
  path: Path;
  value: unknown;
}

function translateSelector(context: ProbeContext, path: Path, value: unknown, target: Target, args: ProbeArgs): SelectorTranslation {
  const warnings: Diagnostic[] = [];
  const r = new Reporter(context.r.view, context.r.refusals, warnings);
  const untranslated: SelectorTranslation = { path, warnings, label: undefined, condition: undefined, outcome: undefined };
  const selector = expectObject(r, path, value);
  if (!selector || !checkFields(r, path, selector, SELECTOR_FIELDS, "selector")) return untranslated;
  const { sources, resolved } = selectorSources(r, context.macros, path, selector);

  let filtersTranslate = resolved;
  for (const source of sources) {
    for (const [filter, reason] of Object.entries(UNSUPPORTED_FILTERS)) {
      if (!isEffective(field(source.selector, filter))) continue;
      r.refuse([...source.path, filter], reason);
      filtersTranslate = false;
    }
  }
  /** A filter list with the entries of the macros appended, as Tetragon does. */
  const entries = (name: string): Entry[] => {
    const collected: Entry[] = [];
    for (const source of sources) {
      const items = expectList(r, [...source.path, name], field(source.selector, name));
      if (!items) filtersTranslate = false;
      items?.forEach((item, i) => collected.push({ path: [...source.path, name, String(i)], value: item }));
    }
    return collected;
  };
  const conditions = [
    ...entries("matchBinaries").map((entry) => binariesFilter(r, entry, target, "matchBinaries")),
    ...entries("matchParentBinaries").map((entry) => binariesFilter(r, entry, target, "matchParentBinaries")),
    ...entries("matchArgs").map((entry) => argumentFilter(r, entry, target, args)),
  ];
  const outcome = selectorOutcome(r, entries("matchActions"));
  const label = field(selector, "label");
  const translated = conditions.filter((c) => c !== undefined);
  return {
    path,
    warnings,
    label: typeof label === "string" && label !== "" ? label : undefined,
    condition: filtersTranslate && translated.length === conditions.length ? all(translated) : undefined,
    outcome,
  };
}

/**
 * The selector and the macros it names, whose filter lists Tetragon appends to the selector's;
 * `resolved` is false when a macro could not be used (the others are still checked).
 */
function selectorSources(
  r: Reporter, macros: YamlObject, path: Path, selector: YamlObject,
): { sources: { path: Path; selector: YamlObject }[]; resolved: boolean } {
  const names = expectList(r, [...path, "macros"], field(selector, "macros"));
  const sources = [{ path, selector }];
  let resolved = names !== undefined;
  names?.forEach((name, i) => {
    const namePath = [...path, "macros", String(i)];
    const macroName = expectString(r, namePath, name);
    if (macroName === undefined) {
      resolved = false;
      return;
    }
    const macroPath = ["spec", "selectorsMacros", macroName];
    const macro = field(macros, macroName);
    if (!isSet(macro)) {
      r.invalid(namePath, `macro ${JSON.stringify(macroName)} is not defined in spec.selectorsMacros`, hintFor(macroName, Object.keys(macros)));
      resolved = false;
      return;
    }
    const macroSelector = expectObject(r, macroPath, macro);
    if (!macroSelector || !checkFields(r, macroPath, macroSelector, SELECTOR_FIELDS, "selector macro")) {
      resolved = false;
    } else if (isEffective(field(macroSelector, "macros"))) {
      r.invalid([...macroPath, "macros"], "a macro cannot use other macros");
      resolved = false;
    } else {
      sources.push({ path: macroPath, selector: macroSelector });
    }
  });
  return { sources, resolved };
}

// ---------------------------------------------------------------------------------------------
// Filters

const STRING_OPERATORS = ["Equal", "NotEqual", "Prefix", "NotPrefix", "Postfix", "NotPostfix"] as const;
type StringOperator = (typeof STRING_OPERATORS)[number];

/** What matchBinaries operators mean as string operators. */
const BINARY_OPERATORS = new Map<string, StringOperator>([
  ["In", "Equal"], ["NotIn", "NotEqual"],
  ["Prefix", "Prefix"], ["NotPrefix", "NotPrefix"], ["Postfix", "Postfix"], ["NotPostfix", "NotPostfix"],
]);

/** A string field against the values of one filter: any of them, or none for a negated operator. */
function stringTest(field: string, operator: StringOperator, values: string[]): Cel {
  const literals = values.map(celString);
  const method = operator.endsWith("Prefix") ? "startsWith" : "endsWith";
  const positive = operator.endsWith("Equal") ? oneOf(field, literals) : any(literals.map((l) => call(`${field}.${method}(${l})`)));
  return operator.startsWith("Not") ? not(positive) : positive;
}

function binariesFilter(r: Reporter, entry: Entry, target: Target, kind: "matchBinaries" | "matchParentBinaries"): Cel | undefined {
  const filter = expectObject(r, entry.path, entry.value);
  if (!filter || !checkFields(r, entry.path, filter, ["operator", "values", "followChildren"], "binaries filter")) return undefined;
  const operator = operatorOf(r, [...entry.path, "operator"], field(filter, "operator"));
  const values = expectValues(r, [...entry.path, "values"], field(filter, "values"));
  const stringOperator = operator === undefined ? undefined : BINARY_OPERATORS.get(operator);
  let translates = stringOperator !== undefined && values !== undefined;
  if (operator !== undefined && !stringOperator) {
    r.invalid([...entry.path, "operator"], `${kind} takes ${[...BINARY_OPERATORS.keys()].join(", ")}, not ${operator}`);
  }
  if (field(filter, "followChildren") === true) {
    r.refuse([...entry.path, "followChildren"], "Palisade matches the process itself, not its descendants");
    translates = false;
  }
  // At an exec, Tetragon's binary is the program calling execve. Palisade's process.binary is
  // the program being executed; the nearest to the caller is process.parent.binary.
  let binaryField = kind === "matchBinaries" ? "process.binary" : "process.parent.binary";
  if (target.hook === "process.exec") {
    if (kind === "matchParentBinaries") {
      r.refuse(entry.path, "at an exec this is the parent of the program calling execve, which Palisade does not see");
      translates = false;
    } else {
      r.warn(entry.path, APPROXIMATED,
        "at an exec, Tetragon matches the program calling execve; translated as process.parent.binary, " +
        "which differs when a process execs without forking (e.g. `exec` in a shell)");
      binaryField = "process.parent.binary";
    }
  }
  if (!translates) return undefined;
  // Tetragon ignores a binaries filter without values.
  return values!.length === 0 ? TRUE : stringTest(binaryField, stringOperator!, values!);
}

function argumentFilter(r: Reporter, entry: Entry, target: Target, args: ProbeArgs): Cel | undefined {
  const filter = expectObject(r, entry.path, entry.value);
  if (!filter || !checkFields(r, entry.path, filter, ["index", "args", "operator", "values"], "argument filter")) return undefined;
  const operatorPath = [...entry.path, "operator"];
  const valuesPath = [...entry.path, "values"];
  const operator = operatorOf(r, operatorPath, field(filter, "operator"));
  const values = expectValues(r, valuesPath, field(filter, "values"));
  const argumentTranslates = filtersTargetArgument(r, entry.path, filter, target, args);
  if (operator === undefined || values === undefined || !argumentTranslates) return undefined;
  if (values.length === 0 && !VALUELESS_OPERATORS.includes(operator)) {
    r.invalid(valuesPath, `${operator} needs at least one value`);
    return undefined;
  }
  if (!target.pathField) return socketTest(r, operatorPath, valuesPath, operator, values);
  const stringOperator = STRING_OPERATORS.find((o) => o === operator);
  if (stringOperator) return stringTest(target.pathField, stringOperator, values);
  r.refuse(operatorPath, `${operator} on a ${target.argumentType} argument has no Palisade equivalent`, { hint: `Palisade translates ${STRING_OPERATORS.join(", ")}` });
  return undefined;
}

/** Operators that test a property rather than compare with values. */
const VALUELESS_OPERATORS = ["DPortPriv", "NotDPortPriv", "SPortPriv", "NotSPortPriv", "CelExpr"];

/**
 * Whether a filter reads the call's argument 0 as Tetragon's file, linux_binprm or sock: the
 * only argument a Palisade hook sees, and the type whose operators translate.
 */
function filtersTargetArgument(r: Reporter, path: Path, filter: YamlObject, target: Target, args: ProbeArgs): boolean {
  const refuse = (at: Path, message: string): false => {
    r.refuse(at, message);
    return false;
  };
  // `args` names a position in the probe's args list; without it, `index` is the call's argument.
  const positions = expectList(r, [...path, "args"], field(filter, "args"));
  if (!positions) return false;
  let argPosition: number;
  if (positions.length > 0) {
    if (positions.length > 1) return refuse([...path, "args"], "a filter over several arguments has no Palisade equivalent");
    const position = expectIndex(r, [...path, "args", "0"], positions[0]);
    if (position === undefined) return false;
    if (position >= args.list.length) {
      r.invalid([...path, "args", "0"], `the probe's args list has no entry ${position}`);
      return false;
    }
    argPosition = position;
  } else {
    const index = isSet(field(filter, "index")) ? expectIndex(r, [...path, "index"], field(filter, "index")) : 0;
    if (index === undefined) return false;
    argPosition = args.list.findIndex((a) => isObject(a) && (field(a, "index") ?? 0) === index);
    // Without an args entry, Tetragon reads the argument with the type the kernel declares.
    if (argPosition < 0) return index === 0 || refuse([...path, "index"], `Palisade sees argument 0 of this call only, not argument ${index}`);
  }
  const argPath = [...args.path, String(argPosition)];
  const arg = expectObject(r, argPath, args.list[argPosition]);
  if (!arg || !checkFields(r, argPath, arg, ARG_FIELDS, "probe argument")) return false;
  const index = isSet(field(arg, "index")) ? expectIndex(r, [...argPath, "index"], field(arg, "index")) : 0;
  const type = isSet(field(arg, "type")) ? expectString(r, [...argPath, "type"], field(arg, "type")) : "auto";
  if (index === undefined || type === undefined) return false;
  if (index !== 0) return refuse(path, `Palisade sees argument 0 of this call only, not argument ${index}`);
  if (type !== "auto" && type !== target.argumentType) return refuse([...argPath, "type"], `Palisade sees argument 0 as Tetragon's ${target.argumentType}, not as ${type}`);
  const reader = ["resolve", "btfType", "source"].find((key) => isEffective(field(arg, key)));
  return !reader || refuse([...argPath, reader], `${reader} reads other kernel data than the ${target.argumentType} itself, which Palisade does not see`);
}

const PRIVILEGED_PORTS_END = 1024;
const PROTOCOLS = new Map([["IPPROTO_TCP", "tcp"], ["6", "tcp"], ["IPPROTO_UDP", "udp"], ["17", "udp"]]);
const FAMILIES = new Map([["AF_INET", "ipv4"], ["2", "ipv4"], ["AF_INET6", "ipv6"], ["10", "ipv6"]]);

function socketTest(r: Reporter, operatorPath: Path, valuesPath: Path, operator: string, values: string[]): Cel | undefined {
  const negated = (test: Cel | undefined) => test && (operator.startsWith("Not") ? not(test) : test);
  switch (operator) {
    case "DAddr":
    case "NotDAddr":
      return negated(addressTest(r, valuesPath, values));
    case "DPort":
    case "NotDPort":
      return negated(portTest(r, valuesPath, values));
    case "DPortPriv":
      return relation(`net.dport < ${PRIVILEGED_PORTS_END}`);
    case "NotDPortPriv":
      return relation(`net.dport >= ${PRIVILEGED_PORTS_END}`);
    case "Protocol":
      return namedValuesTest(r, valuesPath, values, "net.protocol", PROTOCOLS, "IPPROTO_TCP (6) and IPPROTO_UDP (17)");
    case "Family":
      return namedValuesTest(r, valuesPath, values, "net.family", FAMILIES, "AF_INET (2) and AF_INET6 (10)");
    case "SAddr": case "NotSAddr": case "SPort": case "NotSPort": case "SPortPriv": case "NotSPortPriv":
      r.refuse(operatorPath, `${operator}: Palisade rules do not see a connection's source address or port`);
      return undefined;
    default:
      r.refuse(operatorPath, `${operator} on a sock argument has no Palisade equivalent`, { hint: "Palisade translates DAddr, NotDAddr, DPort, NotDPort, DPortPriv, NotDPortPriv, Protocol and Family" });
      return undefined;
  }
}

/** Bare addresses compare as text, in canonical form; CIDRs go through cidr().containsIP(). */
function addressTest(r: Reporter, path: Path, values: string[]): Cel | undefined {
  const exact: string[] = [];
  const networks: Cel[] = [];
  values.forEach((value, i) => {
    const [address = "", prefixText, ...extra] = value.split("/");
    const ip = parseIp(address);
    const prefixLength = prefixText === undefined ? undefined : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (!ip || extra.length > 0 || (prefixLength !== undefined && !(prefixLength <= ip.bytes.length * 8))) {
      r.invalid([...path, String(i)], `${JSON.stringify(value)} is not an IP address or CIDR`);
    } else if (prefixLength === undefined) {
      exact.push(celString(formatIp(ip)));
    } else {
      // Tetragon ignores host bits ("127.0.0.1/8" is 127.0.0.0/8); Palisade wants them clear.
      const cidr = `${formatIp(networkOf(ip, prefixLength))}/${prefixLength}`;
      networks.push(call(`cidr(${celString(cidr)}).containsIP(net.daddr)`));
    }
  });
  if (exact.length + networks.length < values.length) return undefined;
  return any([...(exact.length > 0 ? [oneOf("net.daddr", exact)] : []), ...networks]);
}


/** Single ports, and inclusive "min:max" ranges in either order, as Tetragon takes them. */
function portTest(r: Reporter, path: Path, values: string[]): Cel | undefined {
  const singles: string[] = [];
  const ranges: Cel[] = [];
  values.forEach((value, i) => {
    const bounds = value.split(":").map((p) => (/^\d{1,5}$/.test(p) ? Number(p) : NaN));
    if (bounds.length > 2 || !bounds.every((b) => b <= 65535)) {
      r.invalid([...path, String(i)], `${JSON.stringify(value)} is not a port (0 to 65535) or a "min:max" port range`);
      return;
    }
    const [low, high] = [Math.min(...bounds), Math.max(...bounds)];
    if (low === high) singles.push(String(low));
    else ranges.push(all([relation(`net.dport >= ${low}`), relation(`net.dport <= ${high}`)]));
  });
  if (singles.length + ranges.length < values.length) return undefined;
  return any([...(singles.length > 0 ? [oneOf("net.dport", singles)] : []), ...ranges]);
}

function namedValuesTest(r: Reporter, path: Path, values: string[], celField: string, names: Map<string, string>, known: string): Cel | undefined {
  const translated = new Set<string>();
  values.forEach((value, i) => {
    const name = names.get(value);
    if (name) translated.add(celString(name));
    else r.refuse([...path, String(i)], `${JSON.stringify(value)} has no Palisade equivalent; Palisade knows ${known}`);
  });
  return translated.size > 0 && values.every((v) => names.has(v)) ? oneOf(celField, [...translated]) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Actions

const ACTION_FIELDS = [
  "action", "argUrl", "argFqdn", "argError", "argSig", "argSock", "argIndex", "argValue", "argRegs", "argNewSymbol",
  "argNewAddr", "argNewOffset", "rateLimit", "rateLimitScope", "kernelStackTrace", "userStackTrace", "imaHash",
];

/** Post's options that only shape Tetragon's event output. */
const POST_OUTPUT_OPTIONS = ["rateLimit", "rateLimitScope", "kernelStackTrace", "userStackTrace", "imaHash"];

/** Tetragon actions with no Palisade counterpart, by lower-case name (Tetragon ignores case). */
const UNSUPPORTED_ACTIONS: Record<string, string> = {
  geturl: "GetUrl makes an HTTP request, which Palisade does not do",
  dnslookup: "DnsLookup makes a DNS query, which Palisade does not do",
  tracksock: "TrackSock tracks sockets across probes, which Palisade does not do",
  untracksock: "UntrackSock tracks sockets across probes, which Palisade does not do",
  notifyenforcer: "NotifyEnforcer delegates to an enforcer at syscall exit, which Palisade does not have",
  cleanupenforcernotification: "CleanupEnforcerNotification belongs to enforcers, which Palisade does not have",
  set: "Set writes a value into the traced program, which Palisade does not do",
  followfd: "FollowFD was removed from Tetragon and has no Palisade equivalent",
  unfollowfd: "UnfollowFD was removed from Tetragon and has no Palisade equivalent",
  copyfd: "CopyFD was removed from Tetragon and has no Palisade equivalent",
};
const KNOWN_ACTIONS = ["Post", "NoPost", "Sigkill", "Signal", "Override", "GetUrl", "DnsLookup", "TrackSock", "UntrackSock", "NotifyEnforcer", "CleanupEnforcerNotification", "Set"];
const SIGKILL = 9;
const EPERM = 1;

/** What a selector's actions amount to in Palisade; undefined when one has no equivalent. */
function selectorOutcome(r: Reporter, actions: Entry[]): Outcome | undefined {
  // Where each effect was asked for, to anchor warnings about it.
  let killAt: Path | undefined;
  let denyAt: Path | undefined;
  let noPostAt: Path | undefined;
  let translates = true;
  for (const entry of actions) {
    const action = expectObject(r, entry.path, entry.value);
    const name = action && checkFields(r, entry.path, action, ACTION_FIELDS, "action")
      ? expectString(r, [...entry.path, "action"], field(action, "action"))
      : undefined;
    if (!action || name === undefined) {
      translates = false;
      continue;
    }
    const lowerName = name.toLowerCase();
    const path = [...entry.path, "action"];
    if (lowerName === "post") {
      for (const option of POST_OUTPUT_OPTIONS.filter((o) => isEffective(field(action, o)))) {
        r.warn([...entry.path, option], DROPPED, `${option} only shapes Tetragon's event output; Palisade records every decision as one event`);
      }
    } else if (lowerName === "nopost") noPostAt = entry.path;
    else if (lowerName === "sigkill") killAt = entry.path;
    else if (lowerName === "signal") {
      if (field(action, "argSig") === SIGKILL) killAt = entry.path;
      else {
        r.refuse([...entry.path, "argSig"], `Palisade can send SIGKILL (9) only, not signal ${JSON.stringify(field(action, "argSig")) ?? "0"}`);
        translates = false;
      }
    } else if (lowerName === "override") {
      if (overrideDenies(r, entry.path, action)) denyAt = entry.path;
      else translates = false;
    } else if (Object.hasOwn(UNSUPPORTED_ACTIONS, lowerName)) {
      r.refuse(path, UNSUPPORTED_ACTIONS[lowerName]!);
      translates = false;
    } else {
      r.invalid(path, `unknown Tetragon action ${JSON.stringify(name)}`, hintFor(name, KNOWN_ACTIONS));
      translates = false;
    }
  }
  if (!translates) return undefined;
  if (killAt && denyAt) r.warn(denyAt, APPROXIMATED, "a Palisade rule takes one action: the process is killed, and the call is not also failed with an error");
  if (noPostAt && (killAt || denyAt)) r.warn(noPostAt, DROPPED, "NoPost is left out: Palisade records every kill and denial as an event");
  return killAt ? "kill" : denyAt ? "deny" : noPostAt ? "silent" : "audit";
}

/** Override with a negative argError fails the call: Palisade's deny, which fails it with EPERM. */
function overrideDenies(r: Reporter, path: Path, action: YamlObject): boolean {
  for (const key of ["argRegs", "argNewSymbol", "argNewAddr", "argNewOffset"]) {
    if (isEffective(field(action, key))) {
      r.refuse([...path, key], `Override with ${key} rewrites a user-space program, which Palisade does not do`);
      return false;
    }
  }
  const argError = field(action, "argError");
  if (isSet(argError) && !Number.isInteger(argError)) {
    r.invalid([...path, "argError"], `expected an integer, got ${JSON.stringify(argError) ?? typeName(argError)}`);
    return false;
  }
  if (typeof argError !== "number" || argError >= 0) {
    r.refuse(isSet(argError) ? [...path, "argError"] : [...path, "action"],
      "Override without a negative argError does not fail the call, and Palisade has no other override",
      { hint: "argError: -1 (EPERM) translates to action deny" });
    return false;
  }
  if (argError !== -EPERM) r.warn([...path, "argError"], APPROXIMATED, `Palisade denies with EPERM (-1), not ${argError}`);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Output

function renderPolicy(policy: ImportedPolicy, file: string): string {
  const doc = new Document({
    apiVersion: "palisade.dev/v1alpha1",
    kind: policy.kind,
    metadata: { name: policy.name, ...(policy.namespace !== undefined && { namespace: policy.namespace }) },
    spec: {
      mode: policy.mode,
      ...(policy.podSelector && { selector: { podSelector: policy.podSelector } }),
      rules: policy.rules,
    },
  });
  // On the contents rather than the document, so that no blank line follows the comment.
  if (isNode(doc.contents)) doc.contents.commentBefore = ` Generated by \`palisade import tetragon\` from ${file}`;
  return doc.toString({ lineWidth: 0 });
}
