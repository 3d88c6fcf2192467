// Where each character of a YAML string scalar's value comes from in the source text, so an
// error found inside a value (a CEL mistake in a rule's `match`) can point at its exact line
// and column. Decodes the scalar again following the rules of the `yaml` package's resolver
// (resolve-flow-scalar.js, resolve-block-scalar.js), recording offsets as it goes.

import { Scalar } from "yaml";

export interface DecodedScalar {
  /** The scalar's value, as the `yaml` package resolves it. */
  value: string;
  /**
   * For each UTF-16 index of `value`, the source offset of the character it came from; one
   * more entry, for the end of the value. Characters made by escapes point at the backslash;
   * spaces and line breaks made by line folding point at the line break they replace.
   */
  offsets: number[];
}

/**
 * Decodes a string scalar of a document parsed with `keepSourceTokens: true` (block scalars need
 * the indentation of their parent) and without errors.
 */
export function decodeScalar(source: string, node: Scalar): DecodedScalar {
  const [start, end] = node.range ?? [];
  if (start === undefined || end === undefined) throw new Error("decodeScalar needs a parsed scalar");
  switch (node.type) {
    case Scalar.PLAIN:
      return decodeFlow(source, start, end, "plain");
    case Scalar.QUOTE_SINGLE:
      return decodeFlow(source, start + 1, end - 1, "single");
    case Scalar.QUOTE_DOUBLE:
      return decodeFlow(source, start + 1, end - 1, "double");
    case Scalar.BLOCK_LITERAL:
    case Scalar.BLOCK_FOLDED:
      return decodeBlock(source, start, end, node.srcToken?.type === "block-scalar" ? node.srcToken.indent : 0);
    default:
      throw new Error(`decodeScalar: unexpected scalar type ${node.type}`);
  }
}

/** Accumulates the decoded value and the offset of each of its UTF-16 units. */
function valueBuilder(source: string) {
  const parts: string[] = [];
  const offsets: number[] = [];
  return {
    /** Characters that appear in the value exactly as in the source. */
    copy(from: number, to: number): void {
      if (from >= to) return;
      parts.push(source.slice(from, to));
      for (let offset = from; offset < to; offset++) offsets.push(offset);
    },
    /** Characters the source spells differently (escapes, folds), all placed at `at`. */
    insert(text: string, at: number): void {
      if (text === "") return;
      parts.push(text);
      for (let i = 0; i < text.length; i++) offsets.push(at);
    },
    endsWithLineBreak: () => parts.at(-1)?.endsWith("\n") ?? false,
    finish(end: number): DecodedScalar {
      offsets.push(end);
      return { value: parts.join(""), offsets };
    },
  };
}

type ValueBuilder = ReturnType<typeof valueBuilder>;

type FlowStyle = "plain" | "single" | "double";

const isBlank = (ch: string | undefined) => ch === " " || ch === "\t";

function isLineBreak(source: string, i: number): boolean {
  return source[i] === "\n" || (source[i] === "\r" && source[i + 1] === "\n");
}

// The single-character escapes of double-quoted scalars (YAML 1.2, 5.7).
const ESCAPES: Record<string, string> = {
  "0": "\0",
  a: "\x07",
  b: "\b",
  e: "\x1b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
  v: "\v",
  N: "\u0085",
  _: "\u00a0",
  L: "\u2028",
  P: "\u2029",
  " ": " ",
  '"': '"',
  "/": "/",
  "\\": "\\",
  "\t": "\t",
};
const HEX_ESCAPE_LENGTH: Record<string, number> = { x: 2, u: 4, U: 8 };

/** Plain and quoted scalars between `from` and `to` (quotes excluded). */
function decodeFlow(source: string, from: number, to: number, style: FlowStyle): DecodedScalar {
  const out = valueBuilder(source);
  for (let i = from; i < to; i++) {
    const ch = source[i]!;
    if (ch === "\r" && source[i + 1] === "\n") continue;
    if (ch === "\n") {
      i = foldLineBreak(source, i, out);
    } else if (style === "single" && ch === "'") {
      // Inside single quotes a quote only appears doubled: '' is one '.
      out.insert("'", i);
      i++;
    } else if (style === "double" && ch === "\\") {
      i = decodeEscape(source, i, out);
    } else if (isBlank(ch)) {
      // Blanks before a line break are trimmed; others are kept.
      let runEnd = i + 1;
      while (isBlank(source[runEnd])) runEnd++;
      if (!isLineBreak(source, runEnd)) out.copy(i, runEnd);
      i = runEnd - 1;
    } else {
      out.copy(i, i + 1);
    }
  }
  return out.finish(to);
}

/**
 * A line break inside a flow scalar, with the blank lines and indentation after it: one break
 * folds into a space, n+1 breaks into n newlines. Returns the last index consumed.
 */
function foldLineBreak(source: string, at: number, out: ValueBuilder): number {
  let folded = "";
  let i = at;
  for (let next = source[i + 1]; isBlank(next) || isLineBreak(source, i + 1); next = source[i + 1]) {
    if (next === "\n") folded += "\n";
    i++;
  }
  out.insert(folded || " ", at);
  return i;
}

/** A backslash escape at `at` in a double-quoted scalar. Returns the last index consumed. */
function decodeEscape(source: string, at: number, out: ValueBuilder): number {
  const next = source[at + 1]!;
  if (isLineBreak(source, at + 1)) {
    // An escaped line break joins the lines without a space; the next line's indentation goes too.
    let i = next === "\r" ? at + 2 : at + 1;
    while (isBlank(source[i + 1])) i++;
    return i;
  }
  const simple = ESCAPES[next];
  if (simple !== undefined) {
    out.insert(simple, at);
    return at + 1;
  }
  const hexLength = HEX_ESCAPE_LENGTH[next];
  if (hexLength !== undefined) {
    const hex = source.slice(at + 2, at + 2 + hexLength);
    const codePoint = hex.length === hexLength && /^[0-9a-fA-F]+$/.test(hex) ? parseInt(hex, 16) : NaN;
    // Like the yaml package, keep an invalid escape as written (the document has an error anyway).
    out.insert(codePoint <= 0x10ffff ? String.fromCodePoint(codePoint) : source.slice(at, at + 2 + hexLength), at);
    return at + 1 + hexLength;
  }
  out.insert(source.slice(at, at + 2), at);
  return at + 1;
}

interface BlockLine {
  /** Offset of the line's first character. */
  start: number;
  indent: number;
  /** The text after the indentation, without the line break (nor a CR before it). */
  content: string;
}

/**
 * Literal (|) and folded (>) block scalars; `start` is the header's offset, `end` the end of the
 * content, `parentIndent` what an explicit indentation indicator counts from.
 */
function decodeBlock(source: string, start: number, end: number, parentIndent: number): DecodedScalar {
  const out = valueBuilder(source);
  const header = parseBlockHeader(source, start);
  const headerEnd = source.indexOf("\n", start);
  const lines = headerEnd === -1 ? [] : blockLines(source, headerEnd + 1, end);

  // Trailing empty lines are subject to chomping, not content.
  let chompStart = lines.length;
  while (chompStart > 0 && lines[chompStart - 1]!.content === "") chompStart--;
  if (chompStart === 0) {
    const keptBreaks = header.chomp === "+" && lines.length > 0 ? "\n".repeat(Math.max(1, lines.length - 1)) : "";
    out.insert(keptBreaks, lines[0]?.start ?? end);
    return out.finish(lines[0]?.start ?? end);
  }

  // The content's indentation: explicit, or that of the first non-empty line.
  let trimIndent = parentIndent + header.indent;
  let contentStart = 0;
  for (const [i, line] of lines.entries()) {
    if (line.content !== "") {
      if (header.indent === 0) trimIndent = line.indent;
      contentStart = i;
      break;
    }
    if (header.indent === 0) trimIndent = Math.max(trimIndent, line.indent);
  }
  // More-indented trailing "empty" lines are content.
  for (let i = lines.length - 1; i >= chompStart; i--) {
    if (lines[i]!.indent > trimIndent) chompStart = i + 1;
  }

  const copyIndentation = (line: BlockLine) => out.copy(line.start + trimIndent, line.start + Math.max(line.indent, trimIndent));
  const lineEnd = (line: BlockLine) => line.start + line.indent + line.content.length;

  for (const line of lines.slice(0, contentStart)) {
    copyIndentation(line);
    out.insert("\n", lineEnd(line));
  }
  // `separator` goes before the next content; it stands for the line break at `separatorAt`.
  let separator = "";
  let separatorAt = lines[contentStart]!.start;
  const emitLine = (line: BlockLine) => {
    out.insert(separator, separatorAt);
    copyIndentation(line);
    out.copy(line.start + line.indent, lineEnd(line));
    separatorAt = lineEnd(line);
  };
  let previousMoreIndented = false;
  for (const line of lines.slice(contentStart, chompStart)) {
    if (header.literal) {
      emitLine(line);
      separator = "\n";
    } else if (line.indent > trimIndent || line.content.startsWith("\t")) {
      // More-indented lines of a folded scalar keep their line breaks.
      if (separator === " ") separator = "\n";
      else if (!previousMoreIndented && separator === "\n") separator = "\n\n";
      emitLine(line);
      separator = "\n";
      previousMoreIndented = true;
    } else if (line.content === "") {
      if (separator === "\n") out.insert("\n", line.start);
      else separator = "\n";
    } else {
      emitLine(line);
      separator = " ";
      previousMoreIndented = false;
    }
  }

  const contentEnd = separatorAt;
  if (header.chomp === "+") {
    let breakAt = contentEnd;
    for (const line of lines.slice(chompStart)) {
      out.insert("\n", breakAt);
      copyIndentation(line);
      breakAt = lineEnd(line);
    }
    if (!out.endsWithLineBreak()) out.insert("\n", breakAt);
  } else if (header.chomp === "") {
    out.insert("\n", contentEnd);
  }
  return out.finish(contentEnd);
}

/** The block scalar header: `|` or `>`, then an indentation indicator and a chomping indicator in either order. */
function parseBlockHeader(source: string, start: number): { literal: boolean; indent: number; chomp: "" | "-" | "+" } {
  let indent = 0;
  let chomp: "" | "-" | "+" = "";
  for (let i = start + 1; source[i] !== undefined && !/[\s#]/.test(source[i]!); i++) {
    const ch = source[i]!;
    if (ch === "-" || ch === "+") chomp = ch;
    else indent = Number(ch);
  }
  return { literal: source[start] === "|", indent, chomp };
}

/** The lines between `from` and `to`; none when that is empty. */
function blockLines(source: string, from: number, to: number): BlockLine[] {
  if (from >= to) return [];
  const lines: BlockLine[] = [];
  for (let start = from; start <= to; ) {
    const breakAt = source.indexOf("\n", start);
    const lineStop = breakAt === -1 || breakAt > to ? to : breakAt;
    let indent = 0;
    while (source[start + indent] === " " && start + indent < lineStop) indent++;
    const contentStop = source[lineStop - 1] === "\r" && lineStop > start + indent ? lineStop - 1 : lineStop;
    lines.push({ start, indent, content: source.slice(start + indent, contentStop) });
    start = lineStop + 1;
  }
  return lines;
}
