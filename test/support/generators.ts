// fast-check generators of policies and events that collide often: small value pools
// shared by rules and events, so prefixes, suffixes, ranges and CIDRs really overlap.

import fc from "fast-check";
import type { RuntimeEvent } from "../../src/events/event.ts";
import type { Hook, LabelSelector, Policy } from "../../src/policy/model.ts";
import { makePolicy, type RuleSpec } from "./policies.ts";

const LONG = "/long/" + "d".repeat(243) + "/";
const PATHS = ["/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/lib/x/sh", "/usr/libexec/y", "/tmp/a.key", "/etc/shadow", "/etc/passwd",
  "/", "/bin", "/opt/a/b.key", "/home/é/ü.key", LONG + "x", LONG + "xy", LONG + "xyz.key", LONG.slice(0, -1), LONG + "x".repeat(10) + ".key"];
/** Rule constants must fit the kernel's 255-byte compare; events may carry longer paths. */
const LITERAL_PATHS = PATHS.filter((p) => Buffer.byteLength(p) <= 255);
const PREFIXES = ["/bin/", "/usr/", "/usr/lib/", "/", "/e", "", "/etc/sha", LONG, LONG + "x", "/home/é"];
const SUFFIXES = [".key", "sh", "/sh", "h", "", "ü.key", "dxyz.key"];
const NAMES = ["sh", "bash", "x", "", "b.key", "shadow"];
const INTS = [0, 1, 22, 443, 999, 1000, 1001, 65535, 4294967295];
const ADDRS = ["10.0.0.1", "10.1.2.3", "192.168.1.1", "8.8.8.8", "::1", "fd00::5", "2001:db8::1"];
const CIDRS = ["10.0.0.0/8", "10.1.0.0/16", "0.0.0.0/0", "fd00::/8", "10.0.0.1/32", "192.168.0.0/17", "::/0"];

const q = (s: string) => JSON.stringify(s);
const stringFields: Record<Hook, string[]> = {
  "process.exec": ["process.binary", "process.name", "process.parent.binary", "process.parent.name"],
  "file.open": ["process.binary", "file.path", "file.name", "file.dir"],
  "net.connect": ["process.binary", "process.parent.name"],
};
const intFields: Record<Hook, string[]> = { "process.exec": ["process.uid", "process.pid"], "file.open": ["process.uid", "process.gid"], "net.connect": ["net.dport", "process.uid"] };

function kernelAtom(hook: Hook): fc.Arbitrary<string> {
  const str = fc.constantFrom(...stringFields[hook]);
  const value = (field: string) => fc.constantFrom(...(field.endsWith("name") ? NAMES : LITERAL_PATHS));
  const atoms: fc.Arbitrary<string>[] = [
    str.chain((f) => value(f).map((v) => `${f} == ${q(v)}`)),
    str.chain((f) => value(f).map((v) => `${f} != ${q(v)}`)),
    str.chain((f) => fc.array(value(f), { minLength: 1, maxLength: 3 }).map((vs) => `${f} in [${vs.map(q).join(", ")}]`)),
    str.chain((f) => fc.constantFrom(...PREFIXES).map((p) => `${f}.startsWith(${q(p)})`)),
    str.chain((f) => fc.constantFrom(...SUFFIXES).map((s) => `${f}.endsWith(${q(s)})`)),
    // Nested prefixes of one field, the case LPM closure and entry pruning must get right.
    fc.tuple(str, fc.constantFrom(...PREFIXES), fc.constantFrom(...PREFIXES), fc.constantFrom("&&", "||"), fc.boolean())
      .map(([f, a, b, op, negate]) => `${f}.startsWith(${q(a)}) ${op} ${negate ? "!" : ""}${f}.startsWith(${q(b)})`),
    fc.tuple(fc.constantFrom(...intFields[hook]), fc.constantFrom("==", "!=", "<", "<=", ">", ">="), fc.constantFrom(...INTS), fc.boolean())
      .map(([f, op, v, flip]) => (flip ? `${v} ${op} ${f}` : `${f} ${op} ${v}`)),
    fc.tuple(fc.constantFrom(...intFields[hook]), fc.array(fc.constantFrom(...INTS), { minLength: 1, maxLength: 3 })).map(([f, vs]) => `${f} in [${vs.join(", ")}]`),
  ];
  if (hook === "net.connect") {
    atoms.push(
      fc.constantFrom(...CIDRS).map((c) => `cidr(${q(c)}).containsIP(net.daddr)`),
      fc.constantFrom(...ADDRS).map((a) => `net.daddr == ${q(a)}`),
      fc.constantFrom("ipv4", "ipv6").map((f) => `net.family == ${q(f)}`),
      fc.constantFrom("tcp", "udp").map((p) => `net.protocol != ${q(p)}`),
    );
  }
  return fc.oneof(...atoms);
}

const scopeAtom = fc.constantFrom('k8s.namespace == "prod"', 'k8s.pod.startsWith("api-")', '"app" in k8s.labels', 'k8s.image.matches("^nginx")', 'k8s.namespace != ""');
const residualAtom = (hook: Hook) =>
  fc.constantFrom('process.binary.contains("bin")', '"-c" in process.args', 'process.binary.matches("^/usr/.*sh$")',
    ...(hook === "file.open" ? ["file.path == process.binary"] : []));

function expression(leaf: fc.Arbitrary<string>): fc.Arbitrary<string> {
  const tree = fc.letrec<{ e: string }>((tie) => ({
    e: fc.oneof(
      { depthSize: "small", maxDepth: 4, withCrossShrink: true },
      leaf,
      tie("e").map((x) => `!(${x})`),
      fc.tuple(tie("e"), tie("e")).map(([a, b]) => `(${a}) && (${b})`),
      fc.tuple(tie("e"), tie("e")).map(([a, b]) => `(${a}) || (${b})`),
      fc.tuple(tie("e"), tie("e"), tie("e")).map(([c, a, b]) => `(${c}) ? (${a}) : (${b})`),
    ),
  }));
  return tree.e;
}

function rule(index: number): fc.Arbitrary<RuleSpec> {
  return fc.constantFrom<Hook>("process.exec", "file.open", "net.connect").chain((hook) =>
    fc.record({
      withResidual: fc.boolean(),
      withScope: fc.boolean(),
      action: fc.constantFrom("deny", "kill", "audit") as fc.Arbitrary<"deny" | "kill" | "audit">,
      severity: fc.constantFrom("critical", "high", "medium", "low", "info") as fc.Arbitrary<"critical" | "high" | "medium" | "low" | "info">,
    }).chain(({ withResidual, withScope, action, severity }) => {
      const leaves = [kernelAtom(hook), ...(withScope ? [scopeAtom] : []), ...(withResidual ? [residualAtom(hook)] : [])];
      return expression(fc.oneof(...leaves)).map((match) => ({
        name: `r${index}`, hook, match, severity,
        // The kernel cannot act on what it cannot decide: such rules are audits.
        action: withResidual ? "audit" : action,
      }));
    }),
  );
}

const selectorArb = fc.option(
  fc.record({
    podSelector: fc.option(fc.constantFrom<LabelSelector>({ matchLabels: { app: "api" } }, { matchExpressions: [{ key: "tier", operator: "NotIn", values: ["db"] }] }), { nil: undefined }),
    namespaceSelector: fc.option(fc.constant<LabelSelector>({ matchLabels: { env: "prod" } }), { nil: undefined }),
  }),
  { nil: undefined },
);

export const policiesArb: fc.Arbitrary<Policy[]> = fc
  .array(
    fc.record({
      kind: fc.constantFrom("TracingPolicy", "TracingPolicyNamespaced") as fc.Arbitrary<"TracingPolicy" | "TracingPolicyNamespaced">,
      namespace: fc.constantFrom("prod", "dev"),
      mode: fc.constantFrom("enforce", "monitor") as fc.Arbitrary<"enforce" | "monitor">,
      selector: selectorArb,
      rules: fc.integer({ min: 1, max: 4 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => rule(i)))),
    }),
    { minLength: 1, maxLength: 4 },
  )
  .map((specs) => specs.map((s, i) => makePolicy({ name: `p${i}`, ...s, selector: s.selector && clean(s.selector) })));

function clean<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const workload = fc.option(
  fc.record({
    namespace: fc.constantFrom("prod", "dev"),
    pod: fc.constantFrom("api-1", "db-0"),
    container: fc.constant("main"),
    image: fc.constantFrom("nginx:1.27", "redis:7"),
    labels: fc.constantFrom({ app: "api" }, { app: "api", tier: "db" }, {}),
    namespaceLabels: fc.constantFrom({ env: "prod" }, {}),
  }),
  { nil: undefined },
);

export const eventArb: fc.Arbitrary<RuntimeEvent> = fc
  .record({
    hook: fc.constantFrom<Hook>("process.exec", "file.open", "net.connect"),
    binary: fc.constantFrom(...PATHS),
    parent: fc.constantFrom(...PATHS),
    uid: fc.constantFrom(...INTS),
    pid: fc.constantFrom(...INTS),
    args: fc.constantFrom<string[]>(["sh"], ["sh", "-c", "id"]),
    path: fc.constantFrom(...PATHS),
    daddr: fc.constantFrom(...ADDRS),
    dport: fc.constantFrom(...INTS.filter((i) => i <= 65535)),
    protocol: fc.constantFrom("tcp", "udp") as fc.Arbitrary<"tcp" | "udp">,
    k8s: workload,
  })
  .map((e) => ({
    hook: e.hook,
    process: { pid: e.pid, uid: e.uid, gid: e.uid, binary: e.binary, args: e.args },
    parent: { pid: 1, binary: e.parent },
    ...(e.k8s && { k8s: e.k8s }),
    ...(e.hook === "file.open" && { file: { path: e.path } }),
    ...(e.hook === "net.connect" && { net: { family: e.daddr.includes(":") ? "ipv6" : "ipv4", protocol: e.protocol, daddr: e.daddr, dport: e.dport } }),
  }) as RuntimeEvent);
