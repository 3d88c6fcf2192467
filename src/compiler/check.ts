// Parse and type-check a rule's `match`, reporting every problem at its CEL token.

import type { ASTNode } from "@marcbachmann/cel-js";
import type { Hook } from "../policy/model.ts";
import { FIELDS, HOOK_VARIABLES, VARIABLES, type Variable } from "../policy/fields.ts";
import { parseMatch, type ParsedMatch } from "../policy/cel.ts";
import { suggest } from "../diagnostics.ts";

export interface CelProblem {
  offset: number;
  message: string;
  hint?: string;
}

export type CheckedMatch = { ok: true; parsed: ParsedMatch } | { ok: false; problems: CelProblem[] };

export function checkMatch(hook: Hook, source: string): CheckedMatch {
  let parsed: ParsedMatch;
  try {
    parsed = parseMatch(hook, source);
  } catch (e) {
    return { ok: false, problems: [celError(e)] };
  }
  const fieldProblems = checkFields(parsed.ast, hook);
  if (fieldProblems.length) return { ok: false, problems: fieldProblems };
  const typed = parsed.check();
  if (!typed.valid) return { ok: false, problems: [celError(typed.error)] };
  if (typed.type !== "bool") return { ok: false, problems: [{ offset: 0, message: `match must be a boolean expression; this one is of type ${typed.type}` }] };
  return { ok: true, parsed };
}

function celError(e: unknown): CelProblem {
  const err = e as { message?: string; node?: { pos?: number } } | undefined;
  const first = String(err?.message ?? e).split("\n")[0]!;
  const unknown = /^Unknown variable: (\w+)/.exec(first)?.[1];
  const guess = unknown && suggest(unknown, VARIABLES);
  return { offset: err?.node?.pos ?? 0, message: `CEL: ${first}`, ...(guess && { hint: `did you mean \`${guess}\`?` }) };
}

const KNOWN_PATHS = new Set(FIELDS.flatMap((f) => f.path.split(".").map((_, i, parts) => parts.slice(0, i + 1).join("."))));

/** Fields that do not exist, or variables the hook does not provide: all of them, with suggestions. */
function checkFields(ast: ASTNode, hook: Hook): CelProblem[] {
  const problems: CelProblem[] = [];
  const visit = (node: ASTNode): void => {
    const chain = memberChain(node);
    if (chain) {
      const root = chain[0]!.name;
      if ((VARIABLES as readonly string[]).includes(root)) {
        if (!HOOK_VARIABLES[hook].includes(root as Variable)) {
          problems.push({ offset: chain[0]!.offset, message: `\`${root}\` is not available on hook ${hook}; it provides ${HOOK_VARIABLES[hook].join(", ")}` });
          return;
        }
        let path = root;
        for (const seg of chain.slice(1)) {
          if (path === "k8s.labels") break;
          const next = `${path}.${seg.name}`;
          if (!KNOWN_PATHS.has(next)) {
            const siblings = [...KNOWN_PATHS].filter((p) => p.startsWith(path + ".") && p.split(".").length === next.split(".").length);
            const guess = suggest(next, siblings);
            problems.push({ offset: seg.offset, message: `\`${next}\`: no such field`, ...(guess && { hint: `did you mean \`${guess}\`?` }) });
            return;
          }
          path = next;
        }
        return;
      }
    }
    for (const child of children(node)) visit(child);
  };
  visit(ast);
  return problems;
}

/** `a.b.c` as [{a}, {b}, {c}] with the offset of each name; undefined for anything else. */
function memberChain(node: ASTNode): { name: string; offset: number }[] | undefined {
  if (node.op === "id") return [{ name: node.args, offset: node.pos }];
  if (node.op === ".") {
    const base = memberChain(node.args[0]);
    return base && [...base, { name: node.args[1], offset: node.pos }];
  }
  return undefined;
}

function children(node: ASTNode): ASTNode[] {
  const out: ASTNode[] = [];
  const collect = (x: unknown): void => {
    if (Array.isArray(x)) x.forEach(collect);
    else if (x && typeof x === "object" && "op" in x) out.push(x as ASTNode);
  };
  collect(node.args);
  return out;
}
