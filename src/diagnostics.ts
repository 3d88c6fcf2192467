// A problem found in user input, always tied to the place a person must edit.

export interface SourcePosition {
  file: string;
  /** 1-based */
  line: number;
  /** 1-based, in characters */
  column: number;
}

export interface Diagnostic extends SourcePosition {
  /** Stable machine-readable code, e.g. "SchemaUnknownField", "CelUnknownField". */
  code: string;
  message: string;
  /** What was probably meant, e.g. "did you mean `process.binary`?" */
  hint?: string;
  /** YAML path of the offending node, e.g. "spec.rules[0].match". */
  path?: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = `${d.file}:${d.line}:${d.column}`;
  const path = d.path ? ` (${d.path})` : "";
  const hint = d.hint ? `; ${d.hint}` : "";
  return `${where}: error${path}: ${d.message}${hint}`;
}

/** Order diagnostics the way a person reads a file: by file, then position. */
export function sortDiagnostics(ds: readonly Diagnostic[]): Diagnostic[] {
  return [...ds].sort(
    (a, b) => cmp(a.file, b.file) || a.line - b.line || a.column - b.column || cmp(a.message, b.message),
  );
}

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Edit distance, for "did you mean" suggestions. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = levenshtein(word, c);
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  if (best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3))) return best;
  // An abbreviation ("proc" for "process") is far in edit distance but obvious to a person.
  return word.length >= 3 ? candidates.find((c) => c.startsWith(word)) : undefined;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
