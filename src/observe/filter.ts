// `palisade observe --filter`: a CEL expression over an event, in the dialect of policies'
// `match` (src/policy/cel.ts) with every variable at once (process, file, net, k8s: those a
// hook lacks are empty) plus the decision: action, policy, rule, severity, hook, node.

import type { RuntimeEvent } from "../events/event.ts";
import { activation, VARIABLES } from "../policy/fields.ts";
import { celEnvironmentWith } from "../policy/cel.ts";

const DECISION_FIELDS = ["action", "policy", "rule", "severity", "hook", "node"] as const;

export class FilterError extends Error {
  override name = "FilterError";
}

export type EventFilter = (event: RuntimeEvent) => boolean;

/** Parses and type-checks `source`; a mistake is a FilterError naming its column. */
export function compileFilter(source: string): EventFilter {
  const env = celEnvironmentWith(VARIABLES);
  for (const name of DECISION_FIELDS) env.registerVariable(name, "string");
  let parsed: ReturnType<typeof env.parse>;
  try {
    parsed = env.parse(source);
  } catch (e) {
    throw filterError(source, e);
  }
  const checked = parsed.check();
  if (!checked.valid) throw filterError(source, checked.error);
  if (checked.type !== "bool") throw new FilterError(`--filter: must be a boolean expression; this one is of type ${checked.type}`);
  return (event) => {
    const values: Record<string, unknown> = activation(event);
    for (const name of DECISION_FIELDS) values[name] = event[name] ?? "";
    try {
      return parsed(values) === true;
    } catch {
      // Like a policy's match: an evaluation error (a missing map key) is no match.
      return false;
    }
  };
}

/** "--filter, column 9: No such key: binnary", then the expression with a caret under the column. */
function filterError(source: string, e: unknown): FilterError {
  const err = e as { summary?: string; message?: string; node?: { pos?: number } } | undefined;
  const message = err?.summary ?? String(err?.message ?? e).split("\n")[0]!;
  const offset = err?.node?.pos ?? 0;
  const column = offset + 1;
  return new FilterError(`--filter, column ${column}: ${message}\n  ${source}\n  ${" ".repeat(offset)}^`);
}
