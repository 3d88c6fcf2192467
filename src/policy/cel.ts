// The CEL dialect of `match`: one environment per hook, declaring only the variables
// that hook provides, plus `cidr("10.0.0.0/8").containsIP(net.daddr)` after the
// Kubernetes CEL IP library.

import { Environment, type ASTNode, type TypeCheckResult } from "@marcbachmann/cel-js";
import type { Hook } from "./model.ts";
import { FIELDS, HOOK_VARIABLES, type FieldType, type Variable } from "./fields.ts";
import { cidrContains, parseCidr, parseIp, type Cidr } from "./ip.ts";

class CidrValue {
  readonly cidr: Cidr;
  constructor(text: string) {
    const parsed = parseCidr(text);
    if (typeof parsed === "string") throw new Error(parsed);
    this.cidr = parsed;
  }
}

type Schema = { [key: string]: FieldType | Schema };

function schemaOf(variable: Variable): Schema {
  const schema: Schema = {};
  for (const f of FIELDS) {
    const [root, ...rest] = f.path.split(".");
    if (root !== variable) continue;
    let node = schema;
    for (const part of rest.slice(0, -1)) node = (node[part] ??= {}) as Schema;
    node[rest.at(-1)!] = f.type;
  }
  return schema;
}

/** The project's CEL dialect with these variables declared (a hook's, or all of them for `observe --filter`). */
export function celEnvironmentWith(variables: readonly Variable[]): Environment {
  const env = new Environment({ limits: { maxAstNodes: 2000, maxDepth: 64, maxListElements: 10000 } })
    .registerType("net.CIDR", { ctor: CidrValue })
    .registerFunction("cidr(string): net.CIDR", (text: string) => new CidrValue(text))
    .registerFunction("net.CIDR.containsIP(string): bool", (c: CidrValue, ip: string) => {
      const addr = parseIp(ip);
      return addr !== undefined && cidrContains(c.cidr, addr);
    });
  for (const variable of variables) env.registerVariable({ name: variable, schema: schemaOf(variable) });
  return env;
}

const environments = new Map<Hook, Environment>();

export function celEnvironment(hook: Hook): Environment {
  let env = environments.get(hook);
  if (!env) environments.set(hook, (env = celEnvironmentWith(HOOK_VARIABLES[hook])));
  return env;
}

export interface ParsedMatch {
  ast: ASTNode;
  check(): TypeCheckResult;
  evaluate(activation: Record<string, unknown>): unknown;
}

export function parseMatch(hook: Hook, source: string): ParsedMatch {
  const parsed = celEnvironment(hook).parse(source);
  return { ast: parsed.ast, check: () => parsed.check(), evaluate: (a) => parsed(a) };
}

/** Compiled expressions, cached by hook and text: audits re-evaluate the same few often. */
const evaluators = new Map<string, ParsedMatch>();

/** Evaluates a match; a CEL evaluation error (say, a missing map key) counts as no match. */
export function evaluateMatch(hook: Hook, source: string, activation: Record<string, unknown>): boolean {
  const key = `${hook}\u0000${source}`;
  let parsed = evaluators.get(key);
  if (!parsed) evaluators.set(key, (parsed = parseMatch(hook, source)));
  try {
    return parsed.evaluate(activation) === true;
  } catch {
    return false;
  }
}
