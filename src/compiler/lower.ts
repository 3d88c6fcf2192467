// From a type-checked CEL AST to a Formula: boolean structure stays, every leaf becomes a
// dimension predicate, a workload scope test, or a residual the kernel cannot decide.

import type { ASTNode } from "@marcbachmann/cel-js";
import { serialize } from "@marcbachmann/cel-js";
import { dimensionsOfField, MAX_STRING_BYTES, type Dimension } from "../plan/dimensions.ts";
import { addrKey, stringBytes } from "../plan/keys.ts";
import { formatIp, parseCidr, parseIp } from "../policy/ip.ts";
import { FIELDS } from "../policy/fields.ts";
import { suggest } from "../diagnostics.ts";
import { atom, type Formula } from "./formula.ts";
import { combine, not, FALSE, TRUE, type Pred } from "./predicate.ts";

export interface LoweringProblem {
  node: ASTNode;
  message: string;
  hint?: string;
}

type Constant = string | bigint;

const U32_MAX = 0xffffffff;
const KERNEL_FIELDS = new Set(FIELDS.filter((f) => f.path !== "process.args" && !f.path.startsWith("k8s.")).map((f) => f.path));

/** The field a member-access chain names ("process.parent.binary"), if it is one. */
export function fieldPath(node: ASTNode): string | undefined {
  if (node.op === "id") return node.args;
  if (node.op === ".") {
    const base = fieldPath(node.args[0]);
    return base === undefined ? undefined : `${base}.${node.args[1]}`;
  }
  return undefined;
}

/** Every variable-rooted path a subtree reads (comprehension variables excluded by the caller's filter). */
export function referencedPaths(node: ASTNode, out: Set<string> = new Set()): Set<string> {
  const path = fieldPath(node);
  if (path !== undefined) {
    out.add(path);
    return out;
  }
  const visit = (x: unknown): void => {
    if (Array.isArray(x)) x.forEach(visit);
    else if (x && typeof x === "object" && "op" in x) referencedPaths(x as ASTNode, out);
  };
  visit(node.args);
  return out;
}

function constant(node: ASTNode): Constant | undefined {
  if (node.op === "value" && (typeof node.args === "string" || typeof node.args === "bigint")) return node.args;
  if (node.op === "-_" && node.args.op === "value" && typeof node.args.args === "bigint") return -node.args.args;
  return undefined;
}

function listOfConstants(node: ASTNode): Constant[] | undefined {
  if (node.op !== "list") return undefined;
  const values = node.args.map(constant);
  return values.every((v) => v !== undefined) ? (values as Constant[]) : undefined;
}

export class Lowering {
  readonly problems: LoweringProblem[] = [];
  private readonly evaluateConstant: (node: ASTNode) => unknown;

  constructor(evaluateConstant: (node: ASTNode) => unknown) {
    this.evaluateConstant = evaluateConstant;
  }

  lower(node: ASTNode): Formula {
    switch (node.op) {
      case "&&":
      case "||":
        return { t: node.op === "&&" ? "and" : "or", xs: node.args.map((x) => this.lower(x)) };
      case "!_":
        return { t: "not", x: this.lower(node.args) };
      case "?:": {
        const [c, a, b] = node.args.map((x) => this.lower(x)) as [Formula, Formula, Formula];
        return { t: "or", xs: [{ t: "and", xs: [c, a] }, { t: "and", xs: [{ t: "not", x: c }, b] }] };
      }
    }
    return this.leaf(node);
  }

  private leaf(node: ASTNode): Formula {
    const paths = [...referencedPaths(node)].filter((p) => /^(process|file|net|k8s)(\.|$)/.test(p));
    if (paths.length === 0) return { t: "const", value: this.evaluateConstant(node) === true };
    if (paths.every((p) => p.startsWith("k8s"))) return atom({ t: "dim", dimension: "workload", pred: { t: "lit", literal: { t: "cel", cel: serialize(node) } } });
    if (paths.some((p) => p.startsWith("process.args"))) {
      return this.residual(node, "process.args is read in user space only; the kernel decision does not see arguments");
    }
    if (paths.length > 1 || !KERNEL_FIELDS.has(paths[0]!)) {
      return this.residual(node, `\`${serialize(node)}\` combines several fields; the kernel compares one field with constants`);
    }
    return this.fieldTest(node, paths[0]!) ?? this.residual(node, unsupportedReason(node));
  }

  private residual(node: ASTNode, reason: string): Formula {
    return atom({ t: "residual", node, reason });
  }

  /** A comparison of one kernel field with constants, or undefined if its shape is not one the kernel answers. */
  private fieldTest(node: ASTNode, field: string): Formula | undefined {
    const dims = dimensionsOfField(field);
    const main = dims[0]!;
    const isField = (x: ASTNode) => fieldPath(x) === field;
    const test = (dimension: Dimension, pred: Pred | undefined): Formula | undefined =>
      pred && (pred.t === "const" ? { t: "const", value: pred.value } : atom({ t: "dim", dimension: dimension.name, pred }));

    switch (node.op) {
      case "==":
      case "!=": {
        const [l, r] = node.args;
        const value = isField(l) ? constant(r) : isField(r) ? constant(l) : undefined;
        if (value === undefined) return undefined;
        const eq = this.equals(main, value, isField(l) ? r : l);
        return test(main, eq && (node.op === "==" ? eq : not(eq)));
      }
      case "in": {
        const [l, r] = node.args;
        const values = isField(l) ? listOfConstants(r) : undefined;
        if (!values) return undefined;
        const items = r.op === "list" ? r.args : [];
        const preds = values.map((v, i) => this.equals(main, v, items[i]!));
        return preds.every((p) => p) ? test(main, combine("or", preds as Pred[])) : test(main, FALSE);
      }
      case "<":
      case "<=":
      case ">":
      case ">=": {
        if (main.kind !== "int" || main.values) return undefined;
        const [l, r] = node.args;
        const flipped = !isField(l);
        const c = constant(flipped ? l : r);
        if (typeof c !== "bigint" || !(flipped ? isField(r) : true)) return undefined;
        const op = flipped ? ({ "<": ">", "<=": ">=", ">": "<", ">=": "<=" } as const)[node.op] : node.op;
        const [lo, hi] = op === "<" ? [0n, c - 1n] : op === "<=" ? [0n, c] : op === ">" ? [c + 1n, BigInt(U32_MAX)] : [c, BigInt(U32_MAX)];
        return test(main, range(lo, hi));
      }
      case "rcall": {
        const [name, receiver, args] = node.args;
        if ((name === "startsWith" || name === "endsWith") && isField(receiver) && main.kind === "prefix") {
          const text = constant(args[0]!);
          if (typeof text !== "string" || !this.checkString(text, args[0]!)) return test(main, typeof text === "string" ? FALSE : undefined);
          if (name === "startsWith") return test(main, { t: "lit", literal: { t: "prefix", prefix: { bytes: stringBytes(text), bits: 8 * stringBytes(text).length }, display: { text, exact: false } } });
          const suffixDim = dims[1]!;
          const reversed = stringBytes(text).reverse();
          return test(suffixDim, { t: "lit", literal: { t: "prefix", prefix: { bytes: reversed, bits: 8 * reversed.length }, display: { suffix: text } } });
        }
        if (name === "containsIP" && main.kind === "addr" && isField(args[0]!) && receiver.op === "call" && receiver.args[0] === "cidr") {
          const text = constant(receiver.args[1][0]!);
          if (typeof text !== "string") return undefined;
          const cidr = parseCidr(text);
          if (typeof cidr === "string") {
            this.problems.push({ node: receiver.args[1][0]!, message: cidr });
            return test(main, FALSE);
          }
          const bytes = addrKey(cidr);
          return test(main, { t: "lit", literal: { t: "prefix", prefix: { bytes, bits: 8 + cidr.prefixLength }, display: { cidr: `${formatIp(cidr)}/${cidr.prefixLength}` } } });
        }
        return undefined;
      }
    }
    return undefined;
  }

  /** `field == value` on a dimension; undefined (after reporting) when the constant is unusable. */
  private equals(dim: Dimension, value: Constant, node: ASTNode): Pred | undefined {
    if (dim.kind === "prefix") {
      if (typeof value !== "string" || !this.checkString(value, node)) return FALSE;
      const bytes = new Uint8Array([...stringBytes(value), 0]);
      return { t: "lit", literal: { t: "prefix", prefix: { bytes, bits: 8 * bytes.length }, display: { text: value, exact: true } } };
    }
    if (dim.kind === "int" && dim.values) {
      const known = Object.keys(dim.values);
      const number = typeof value === "string" ? dim.values[value] : undefined;
      if (number === undefined) {
        const guess = typeof value === "string" ? suggest(value, known) : undefined;
        this.problems.push({ node, message: `${dim.field} is never ${JSON.stringify(String(value))}; its values are ${known.map((k) => `"${k}"`).join(", ")}`, ...(guess && { hint: `did you mean "${guess}"?` }) });
        return FALSE;
      }
      return range(BigInt(number), BigInt(number));
    }
    if (dim.kind === "int") return typeof value === "bigint" ? range(value, value) : FALSE;
    if (dim.kind === "addr" && typeof value === "string") {
      const ip = parseIp(value);
      if (!ip) {
        this.problems.push({ node, message: `"${value}" is not an IP address` });
        return FALSE;
      }
      const canonical = formatIp(ip);
      if (canonical !== value) {
        this.problems.push({ node, message: `write the address in canonical form: "${canonical}" (events carry canonical addresses, so "${value}" would never be equal)` });
        return FALSE;
      }
      const bytes = addrKey(ip);
      const bits = 8 + 8 * ip.bytes.length;
      return { t: "lit", literal: { t: "prefix", prefix: { bytes, bits }, display: { cidr: `${canonical}/${bits - 8}` } } };
    }
    return undefined;
  }

  private checkString(text: string, node: ASTNode): boolean {
    if (text.includes("\u0000")) {
      this.problems.push({ node, message: "strings compared in the kernel cannot contain NUL" });
      return false;
    }
    const length = stringBytes(text).length;
    if (length > MAX_STRING_BYTES) {
      this.problems.push({ node, message: `string is ${length} bytes; the kernel compares at most ${MAX_STRING_BYTES}` });
      return false;
    }
    return true;
  }
}

function range(lo: bigint, hi: bigint): Pred {
  const clampedLo = lo < 0n ? 0n : lo;
  const clampedHi = hi > BigInt(U32_MAX) ? BigInt(U32_MAX) : hi;
  if (clampedLo > clampedHi) return FALSE;
  if (clampedLo === 0n && clampedHi === BigInt(U32_MAX)) return TRUE;
  return { t: "lit", literal: { t: "range", lo: Number(clampedLo), hi: Number(clampedHi) } };
}

function unsupportedReason(node: ASTNode): string {
  if (node.op === "rcall" && node.args[0] === "matches") return "`matches` (a regular expression) cannot be decided in the kernel";
  if (node.op === "rcall" && node.args[0] === "contains") return "`contains` (a substring search) cannot be decided in the kernel";
  return `\`${serialize(node)}\` is not a comparison the kernel can make`;
}

export const KERNEL_FORMS_HINT =
  "in the kernel a field is compared with constants using ==, !=, in [...], startsWith, endsWith, <, <=, >, >= or cidr(\"...\").containsIP(net.daddr); " +
  "rules with action audit (or policies in monitor mode) may use any CEL, checked in user space";
