import { describe, expect, it } from "vitest";
import type { Diagnostic } from "../../src/diagnostics.ts";
import { validateSource } from "../../src/validate/index.ts";

const FILE = "policies/shells.yaml";

/** The diagnostics of a file, without the file name (always FILE) nor undefined fields. */
function diagnosticsOf(text: string): Omit<Diagnostic, "file">[] {
  const { policies, diagnostics } = validateSource(FILE, text);
  expect(policies).toEqual([]);
  return diagnostics.map(({ file, ...rest }) => {
    expect(file).toBe(FILE);
    return rest;
  });
}

/** A TracingPolicy whose single rule has the given lines (each indented under `- `). */
function withRule(...ruleLines: string[]): string {
  return [
    "apiVersion: palisade.dev/v1alpha1",
    "kind: TracingPolicy",
    "metadata:",
    "  name: no-shells",
    "spec:",
    "  rules:",
    ...ruleLines.map((line, i) => (i === 0 ? `    - ${line}` : `      ${line}`)),
    "",
  ].join("\n");
}

const SHELL_RULE = ["name: no-shells", "hook: process.exec", "match: process.binary == '/bin/sh'", "action: kill"];

describe("valid policies", () => {
  it("builds the model of a single policy, with schema defaults applied", () => {
    const { policies, diagnostics } = validateSource(FILE, withRule(...SHELL_RULE));
    expect(diagnostics).toEqual([]);
    expect(policies).toEqual([
      {
        kind: "TracingPolicy",
        name: "no-shells",
        mode: "enforce",
        rules: [
          {
            name: "no-shells",
            hook: "process.exec",
            match: "process.binary == '/bin/sh'",
            action: "kill",
            severity: "medium",
            position: { file: FILE, line: 7, column: 7 },
            path: "spec.rules[0]",
            locateMatch: expect.any(Function),
          },
        ],
        position: { file: FILE, line: 2, column: 1 },
      },
    ]);
  });

  it("reads every document of a file, skipping empty ones", () => {
    const text = `# Policies for production.
---
apiVersion: palisade.dev/v1alpha1
kind: TracingPolicyNamespaced
metadata:
  name: shells
  labels: {team: security}
  annotations: {owner: sec@example.com}
  generation: 3
spec:
  mode: monitor
  selector:
    podSelector:
      matchLabels: {app: api}
      matchExpressions:
        - {key: tier, operator: In, values: [web]}
  rules:
    - name: no-shells
      hook: process.exec
      match: process.binary == "/bin/sh"
      action: kill
      severity: high
      message: shell started
---
---
apiVersion: palisade.dev/v1alpha1
kind: TracingPolicyNamespaced
metadata:
  name: secrets
  namespace: payments
spec:
  rules:
    - name: no-shadow
      hook: file.open
      match: file.path == "/etc/shadow"
      action: deny
`;
    const { policies, diagnostics } = validateSource(FILE, text);
    expect(diagnostics).toEqual([]);
    expect(policies).toMatchObject([
      {
        kind: "TracingPolicyNamespaced",
        name: "shells",
        namespace: "default",
        generation: 3,
        mode: "monitor",
        selector: {
          podSelector: { matchLabels: { app: "api" }, matchExpressions: [{ key: "tier", operator: "In", values: ["web"] }] },
        },
        rules: [{ name: "no-shells", severity: "high", message: "shell started", position: { line: 18, column: 7 } }],
        position: { line: 4, column: 1 },
      },
      {
        name: "secrets",
        namespace: "payments",
        mode: "enforce",
        rules: [{ name: "no-shadow", hook: "file.open", action: "deny", severity: "medium" }],
        position: { line: 27, column: 1 },
      },
    ]);
  });

  it("accepts anchors, aliases and << merge keys", () => {
    const text = `apiVersion: palisade.dev/v1alpha1
kind: TracingPolicy
metadata: {name: shells}
spec:
  rules:
    - &kill-shells
      name: no-sh
      hook: process.exec
      match: process.binary == "/bin/sh"
      action: kill
    - <<: *kill-shells
      name: no-bash
      match: process.binary == "/bin/bash"
`;
    const { policies, diagnostics } = validateSource(FILE, text);
    expect(diagnostics).toEqual([]);
    expect(policies[0]!.rules.map((r) => [r.name, r.hook, r.match, r.action])).toEqual([
      ["no-sh", "process.exec", 'process.binary == "/bin/sh"', "kill"],
      ["no-bash", "process.exec", 'process.binary == "/bin/bash"', "kill"],
    ]);
    expect(policies[0]!.rules[1]!.locateMatch(0)).toEqual({ file: FILE, line: 13, column: 14 });
  });

  it("returns nothing for an empty file", () => {
    expect(validateSource(FILE, "")).toEqual({ policies: [], diagnostics: [], salvaged: [] });
    expect(validateSource(FILE, "# nothing yet\n---\n")).toEqual({ policies: [], diagnostics: [], salvaged: [] });
  });

  it("keeps the well-formed rules of an invalid document for CEL checking, never as a policy", () => {
    const text = [
      "apiVersion: palisade.dev/v1alpha1",
      "kind: TracingPolicy",
      "metadata: {name: p}",
      "spec:",
      "  rules:",
      "    - {name: good, hook: file.open, match: 'file.path == \"/x\"', action: deny}",
      "    - {name: bad, hook: file.open, match: 'true', acton: deny}",
    ].join("\n");
    const result = validateSource(FILE, text);
    expect(result.policies).toEqual([]);
    expect(result.diagnostics.map((d) => d.code)).toEqual(["SchemaUnknownField"]);
    expect(result.salvaged.map((p) => p.rules.map((r) => [r.name, r.path, r.locateMatch(0).line]))).toEqual([[["good", "spec.rules[0]", 6]]]);
  });
});

describe("documents that are not policies", () => {
  it("names what it found and what it expects, with a did-you-mean", () => {
    const text = `apiVersion: v1
kind: TracingPolicyNamespace
metadata: {name: x}
`;
    expect(diagnosticsOf(text)).toEqual([
      {
        line: 1,
        column: 13,
        code: "NotAPolicy",
        message: 'expected apiVersion palisade.dev/v1alpha1, got "v1"',
        path: "apiVersion",
      },
      {
        line: 2,
        column: 7,
        code: "NotAPolicy",
        message: 'expected kind TracingPolicy or TracingPolicyNamespaced, got "TracingPolicyNamespace"',
        hint: 'did you mean "TracingPolicyNamespaced"?',
        path: "kind",
      },
    ]);
  });

  it("points a Tetragon policy at the importer", () => {
    const text = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\n";
    expect(diagnosticsOf(text)).toEqual([
      {
        line: 1,
        column: 13,
        code: "NotAPolicy",
        message: 'expected apiVersion palisade.dev/v1alpha1, got "cilium.io/v1alpha1"',
        hint: 'this looks like a Tetragon policy: convert it with "palisade import tetragon"',
        path: "apiVersion",
      },
    ]);
  });

  it("reports missing apiVersion and kind at the document", () => {
    expect(diagnosticsOf("metadata: {name: x}\n")).toEqual([
      { line: 1, column: 1, code: "NotAPolicy", message: "missing apiVersion, expected palisade.dev/v1alpha1", path: "apiVersion" },
      {
        line: 1,
        column: 1,
        code: "NotAPolicy",
        message: "missing kind, expected TracingPolicy or TracingPolicyNamespaced",
        path: "kind",
      },
    ]);
  });

  it("rejects a document that is not a mapping", () => {
    expect(diagnosticsOf("- apiVersion: palisade.dev/v1alpha1\n")).toEqual([
      {
        line: 1,
        column: 1,
        code: "NotAPolicy",
        message: "expected a policy (a mapping with apiVersion, kind, metadata and spec), got array",
      },
    ]);
  });
});

describe("metadata", () => {
  it("requires metadata and a name", () => {
    const text = `apiVersion: palisade.dev/v1alpha1
kind: TracingPolicy
spec: {rules: [{name: a, hook: file.open, match: "true", action: audit}]}
---
apiVersion: palisade.dev/v1alpha1
kind: TracingPolicy
metadata:
  labels: {team: security}
spec: {rules: [{name: a, hook: file.open, match: "true", action: audit}]}
`;
    expect(diagnosticsOf(text)).toEqual([
      { line: 1, column: 1, code: "SchemaRequired", message: 'missing required field "metadata"' },
      { line: 8, column: 3, code: "SchemaRequired", message: 'missing required field "name"', path: "metadata" },
    ]);
  });

  it("checks names and namespaces as the apiserver does, suggesting a valid name", () => {
    const text = `apiVersion: palisade.dev/v1alpha1
kind: TracingPolicyNamespaced
metadata:
  name: No_Shells
  namespace: Payments.EU
  labels: {team: 7}
spec: {rules: [{name: a, hook: file.open, match: "true", action: audit}]}
`;
    expect(diagnosticsOf(text)).toEqual([
      {
        line: 4,
        column: 9,
        code: "SchemaPattern",
        message: 'invalid value "No_Shells", must be lowercase letters, digits, "-" and ".", starting and ending with a letter or digit',
        hint: 'did you mean "no-shells"?',
        path: "metadata.name",
      },
      {
        line: 5,
        column: 14,
        code: "SchemaPattern",
        message: 'invalid value "Payments.EU", must be lowercase letters, digits and "-", starting and ending with a letter or digit',
        hint: 'did you mean "payments-eu"?',
        path: "metadata.namespace",
      },
      { line: 6, column: 18, code: "SchemaType", message: "expected string, got number", path: "metadata.labels.team" },
    ]);
  });

  it("refuses a namespace on a cluster-scoped TracingPolicy", () => {
    const text = `apiVersion: palisade.dev/v1alpha1
kind: TracingPolicy
metadata:
  name: shells
  namespace: prod
spec: {rules: [{name: a, hook: file.open, match: "true", action: audit}]}
`;
    expect(diagnosticsOf(text)).toEqual([
      {
        line: 5,
        column: 3,
        code: "ClusterScopedNamespace",
        message: "TracingPolicy is cluster-scoped and cannot have a namespace",
        hint: "remove metadata.namespace, or use kind TracingPolicyNamespaced for a policy that applies to one namespace",
        path: "metadata.namespace",
      },
    ]);
  });
});

describe("schema errors", () => {
  it("unknown field: at its key, with a did-you-mean; the misspelt field is not also reported missing", () => {
    const text = withRule("name: a", "hook: process.exec", "match: 'true'", "acton: kill");
    expect(diagnosticsOf(text)).toEqual([
      {
        line: 10,
        column: 7,
        code: "SchemaUnknownField",
        message: 'unknown field "acton" in spec.rules[0]',
        hint: 'did you mean "action"?',
        path: "spec.rules[0].acton",
      },
    ]);
  });

  it("unknown field without a close match lists the allowed fields, at any depth", () => {
    const text = `apiVersion: palisade.dev/v1alpha1
kind: TracingPolicy
metadata: {name: shells}
status2: {}
spec:
  workloads: all
  rules: [{name: a, hook: file.open, match: "true", action: audit}]
`;
    expect(diagnosticsOf(text)).toEqual([
      {
        line: 4,
        column: 1,
        code: "SchemaUnknownField",
        message: 'unknown field "status2"',
        hint: 'did you mean "status"?',
        path: "status2",
      },
      {
        line: 6,
        column: 3,
        code: "SchemaUnknownField",
        message: 'unknown field "workloads" in spec',
        hint: "expected one of: mode, selector, rules",
        path: "spec.workloads",
      },
    ]);
  });

  it("enum: names the allowed values and suggests the closest", () => {
    const text = withRule("name: a", "hook: process.exe", "match: 'true'", "action: kil");
    expect(diagnosticsOf(text)).toEqual([
      {
        line: 8,
        column: 13,
        code: "SchemaEnum",
        message: 'invalid value "process.exe", expected one of: process.exec, file.open, net.connect',
        hint: 'did you mean "process.exec"?',
        path: "spec.rules[0].hook",
      },
      {
        line: 10,
        column: 15,
        code: "SchemaEnum",
        message: 'invalid value "kil", expected one of: deny, kill, audit',
        hint: 'did you mean "kill"?',
        path: "spec.rules[0].action",
      },
    ]);
  });

  it("type: expected and actual type, and nothing more about that value", () => {
    const text = withRule("name: a", "hook: 42", "match: 'true'", "action: kill", "severity:");
    expect(diagnosticsOf(text)).toEqual([
      { line: 8, column: 13, code: "SchemaType", message: "expected string, got number", path: "spec.rules[0].hook" },
      // An empty value is reported at its key.
      { line: 11, column: 7, code: "SchemaType", message: "expected string, got null", path: "spec.rules[0].severity" },
    ]);
  });

  it("missing required field: at the mapping that lacks it", () => {
    const text = withRule("name: a", "match: 'true'", "action: kill");
    expect(diagnosticsOf(text)).toEqual([
      { line: 7, column: 7, code: "SchemaRequired", message: 'missing required field "hook"', path: "spec.rules[0]" },
    ]);
  });

  it("pattern: a rule name that is not a DNS label", () => {
    const text = withRule("name: No Shells!", "hook: process.exec", "match: 'true'", "action: kill");
    expect(diagnosticsOf(text)).toEqual([
      {
        line: 7,
        column: 13,
        code: "SchemaPattern",
        message: 'invalid value "No Shells!", must be lowercase letters, digits and "-", starting and ending with a letter or digit',
        hint: 'did you mean "no-shells"?',
        path: "spec.rules[0].name",
      },
    ]);
  });

  it("lengths and item counts", () => {
    const longMessage = "x".repeat(1025);
    const text = `apiVersion: palisade.dev/v1alpha1
kind: TracingPolicy
metadata: {name: shells}
spec:
  rules: []
---
${withRule("name: a", "hook: process.exec", 'match: ""', "action: kill", `message: ${longMessage}`)}`;
    expect(diagnosticsOf(text)).toEqual([
      { line: 5, column: 10, code: "SchemaItemCount", message: "must have at least 1 item", path: "spec.rules" },
      { line: 15, column: 14, code: "SchemaLength", message: "must not be empty", path: "spec.rules[0].match" },
      {
        line: 17,
        column: 16,
        code: "SchemaLength",
        message: "must have at most 1024 characters, got 1025",
        path: "spec.rules[0].message",
      },
    ]);
  });

  it("duplicate rule names: at the second name, pointing back at the first", () => {
    const text = `apiVersion: palisade.dev/v1alpha1
kind: TracingPolicy
metadata: {name: shells}
spec:
  rules:
    - name: no-shells
      hook: process.exec
      match: process.binary == "/bin/sh"
      action: kill
    - name: no-shells
      hook: process.exec
      match: process.binary == "/bin/bash"
      action: kill
`;
    expect(diagnosticsOf(text)).toEqual([
      {
        line: 10,
        column: 13,
        code: "DuplicateRuleName",
        message: 'duplicate rule name "no-shells" (first at line 6)',
        path: "spec.rules[1].name",
      },
    ]);
  });

  it("selector: label selectors are checked like any other field", () => {
    const text = `apiVersion: palisade.dev/v1alpha1
kind: TracingPolicy
metadata: {name: shells}
spec:
  selector:
    podSelector:
      matchLabels: {app.kubernetes.io/name: [api]}
      matchExpressions: [{key: tier, operator: in}]
  rules: [{name: a, hook: file.open, match: "true", action: audit}]
`;
    expect(diagnosticsOf(text)).toEqual([
      {
        line: 7,
        column: 45,
        code: "SchemaType",
        message: "expected string, got array",
        path: 'spec.selector.podSelector.matchLabels["app.kubernetes.io/name"]',
      },
      {
        line: 8,
        column: 48,
        code: "SchemaEnum",
        message: 'invalid value "in", expected one of: In, NotIn, Exists, DoesNotExist',
        hint: 'did you mean "In"?',
        path: "spec.selector.podSelector.matchExpressions[0].operator",
      },
    ]);
  });
});

describe("status", () => {
  it("accepts an object exported from a cluster, and checks its status like the rest", () => {
    const text = `apiVersion: palisade.dev/v1alpha1
kind: TracingPolicy
metadata:
  name: shells
  uid: 0b7c6d2e-5c1f-4f4e-9d53-3c5f0c1b2a11
  resourceVersion: "42"
  creationTimestamp: "2025-01-01T00:00:00Z"
spec:
  rules: [{name: a, hook: file.open, match: "true", action: audit}]
status:
  observedGeneration: 1
  nodes: {enforcing: 3, failed: 0, total: 3}
  backends: {process.exec: lsm}
  conditions:
    - {type: Ready, status: "True", lastTransitionTime: "2025-01-01T00:00:00Z", reason: Enforcing, message: ""}
    - {type: Ready, status: "True", lastTransitionTime: yesterday, reason: Enforcing, message: ""}
`;
    expect(diagnosticsOf(text)).toEqual([
      {
        line: 16,
        column: 14,
        code: "DuplicateConditionType",
        message: 'duplicate condition type "Ready" (first at line 15)',
        path: "status.conditions[1].type",
      },
      {
        line: 16,
        column: 57,
        code: "SchemaFormat",
        message: 'invalid value "yesterday", expected a date-time',
        path: "status.conditions[1].lastTransitionTime",
      },
    ]);
  });
});

describe("a whole file", () => {
  it("reports every error of every document at once, in reading order", () => {
    const text = `apiVersion: palisade.dev/v1alpha1
kind: TracingPolicy
metadata: {name: first}
spec:
  mode: Enforce
  rules:
    - name: a
      hook: net.connect
      match: net.dport == 22
      action: deny
      severity: urgent
---
apiVersion: palisade.dev/v1alpha1
kind: TracingPolicy
metadata: {name: second}
spec:
  rules:
    - {name: b, hook: file.open, match: 7, action: audit, colour: red}
`;
    expect(diagnosticsOf(text).map((d) => [d.line, d.column, d.code])).toEqual([
      [5, 9, "SchemaEnum"],
      [11, 17, "SchemaEnum"],
      [18, 41, "SchemaType"],
      [18, 59, "SchemaUnknownField"],
    ]);
  });

  it("keeps the good documents next to a bad one, and nothing of the bad one", () => {
    const good = withRule(...SHELL_RULE);
    const bad = withRule("name: a", "hook: process.exec", "match: 'true'", "action: explode");
    const { policies, diagnostics } = validateSource(FILE, `${good}---\n${bad}---\n${good.replace("no-shells\n", "others\n")}`);
    expect(policies.map((p) => p.name)).toEqual(["no-shells", "others"]);
    expect(policies[1]!.position.line).toBe(24);
    expect(diagnostics.map((d) => [d.line, d.code])).toEqual([[21, "SchemaEnum"]]);
  });

  it("reports an alias to no anchor at the alias", () => {
    expect(diagnosticsOf(`${withRule(...SHELL_RULE)}      message: *shell-message\n`)).toEqual([
      {
        line: 11,
        column: 16,
        code: "YamlSyntax",
        message: "Unresolved alias (the anchor must be set before the alias): shell-message",
      },
    ]);
  });

  it("reports every YAML syntax error with its position, and no schema errors for those documents", () => {
    const text = `apiVersion: palisade.dev/v1alpha1
kind: TracingPolicy
kind: TracingPolicy
---
apiVersion: palisade.dev/v1alpha1
spec: {rules: [
---
${withRule(...SHELL_RULE)}`;
    const { policies, diagnostics } = validateSource(FILE, text);
    expect(policies.map((p) => p.name)).toEqual(["no-shells"]);
    expect(diagnostics).toEqual([
      { file: FILE, line: 3, column: 1, code: "YamlSyntax", message: "Map keys must be unique" },
      {
        file: FILE,
        line: 7,
        column: 1,
        code: "YamlSyntax",
        message: "Flow map in block collection must be sufficiently indented and end with a }",
      },
      {
        file: FILE,
        line: 7,
        column: 1,
        code: "YamlSyntax",
        message: "Flow sequence in block collection must be sufficiently indented and end with a ]",
      },
    ]);
  });
});

describe("Rule.locateMatch", () => {
  const ruleWithMatch = (...matchLines: string[]) =>
    [
      "apiVersion: palisade.dev/v1alpha1",
      "kind: TracingPolicy",
      "metadata: {name: shells}",
      "spec:",
      "  rules:",
      "    - name: no-shells",
      "      hook: process.exec",
      "      action: kill",
      ...matchLines.map((line) => `      ${line}`),
      "",
    ].join("\n");

  /** Where the `b` of `binary` in the rule's match is. */
  function locateBinary(text: string) {
    const { policies, diagnostics } = validateSource(FILE, text);
    expect(diagnostics).toEqual([]);
    const rule = policies[0]!.rules[0]!;
    const { line, column } = rule.locateMatch(rule.match.indexOf("binary"));
    return { line, column };
  }

  it("plain", () => {
    expect(locateBinary(ruleWithMatch('match: process.binary == "/bin/sh"'))).toEqual({ line: 9, column: 22 });
  });

  it("plain over two lines", () => {
    expect(locateBinary(ruleWithMatch('match: process.name == "sh" &&', '  process.binary == "/bin/sh"'))).toEqual({
      line: 10,
      column: 17,
    });
  });

  it("single-quoted with '' escapes", () => {
    expect(locateBinary(ruleWithMatch("match: 'process.name == ''sh'' || process.binary == ''/bin/sh'''"))).toEqual({
      line: 9,
      column: 49,
    });
  });

  it("double-quoted with escapes, over two lines", () => {
    const text = ruleWithMatch('match: "process.name == \\"s\\u0068\\" &&', '  process.binary == \\"/bin/sh\\""');
    expect(locateBinary(text)).toEqual({ line: 10, column: 17 });
  });

  it("literal block", () => {
    expect(locateBinary(ruleWithMatch("match: |", '  process.name == "sh" &&', '    process.binary == "/bin/sh"'))).toEqual({
      line: 11,
      column: 19,
    });
  });

  it("folded block", () => {
    expect(locateBinary(ruleWithMatch("match: >-", '  process.name == "sh" &&', '  process.binary == "/bin/sh"'))).toEqual({
      line: 11,
      column: 17,
    });
  });

  it("counts columns in characters, not UTF-16 units", () => {
    expect(locateBinary(ruleWithMatch('match: \'"\u{1F6AB}" != "" && process.binary == "/bin/sh"\''))).toEqual({
      line: 9,
      column: 36,
    });
  });

  it("maps offsets past the end to the end of the value", () => {
    const { policies } = validateSource(FILE, ruleWithMatch("match: 'process.binary'"));
    const rule = policies[0]!.rules[0]!;
    // The closing quote.
    expect(rule.locateMatch(rule.match.length)).toEqual({ file: FILE, line: 9, column: 29 });
    expect(rule.locateMatch(1000)).toEqual({ file: FILE, line: 9, column: 29 });
  });
});
