import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LineCounter, parseDocument, Scalar, stringify, visit } from "yaml";
import { decodeScalar } from "../../src/validate/scalar-offsets.ts";

/** Every string scalar of a document (keys included), decoded. */
function decodeAll(text: string) {
  const doc = parseDocument(text, { keepSourceTokens: true });
  expect(doc.errors).toEqual([]);
  const decoded: { node: Scalar; value: string; offsets: number[] }[] = [];
  visit(doc, {
    Scalar(_, node) {
      if (typeof node.value === "string") decoded.push({ node, ...decodeScalar(text, node) });
    },
  });
  return decoded;
}

/** Where the `index`th character of `needle` is in the file, `needle` being part of a scalar's value. */
function locate(text: string, needle: string, index = 0) {
  const scalar = decodeAll(text).find((d) => d.value.includes(needle))!;
  const lineCounter = new LineCounter();
  parseDocument(text, { lineCounter });
  const { line, col } = lineCounter.linePos(scalar.offsets[scalar.value.indexOf(needle) + index]!);
  return { line, column: col };
}

describe("decodeScalar", () => {
  it("plain: every character at its own place", () => {
    expect(locate("m: process.binary == '/bin/sh'\n", "binary")).toEqual({ line: 1, column: 12 });
  });

  it("plain folded over lines: continuation lines keep their own line and column", () => {
    const text = ["m: process.name == 'sh' &&", "  process.binary == '/bin/sh'", ""].join("\n");
    expect(locate(text, "binary")).toEqual({ line: 2, column: 11 });
  });

  it("single-quoted: '' counts as one character", () => {
    const text = "m: 'process.args == ''x'' && process.binary == ''/bin/sh'''\n";
    expect(locate(text, "binary")).toEqual({ line: 1, column: 38 });
    // The second quote of the closing '' (the value's last character) is at column 57.
    expect(locate(text, "sh'", 2)).toEqual({ line: 1, column: 57 });
  });

  it("single-quoted over lines", () => {
    const text = ["m: 'process.name == ''sh''", "   && process.binary.startsWith(''/bin'')'", ""].join("\n");
    expect(locate(text, "binary")).toEqual({ line: 2, column: 15 });
  });

  it("double-quoted: escapes map to their backslash, later characters stay exact", () => {
    const text = 'm: "\\u0070rocess.args == \\"a\\tb\\" && process.binary == \\"/bin/sh\\""\n';
    const [m] = decodeAll(text).filter((d) => d.node.type === Scalar.QUOTE_DOUBLE);
    expect(m!.value).toBe('process.args == "a\tb" && process.binary == "/bin/sh"');
    expect(locate(text, "process.args")).toEqual({ line: 1, column: 5 }); // the \u0070 escape
    expect(locate(text, "\t")).toEqual({ line: 1, column: 29 });
    expect(locate(text, "binary")).toEqual({ line: 1, column: 46 });
  });

  it("double-quoted over lines, with an escaped line break", () => {
    const text = ['m: "process.name == \\"sh\\" && pro\\', '    cess.binary == \\"/bin/sh\\""', ""].join("\n");
    const [m] = decodeAll(text).filter((d) => d.node.type === Scalar.QUOTE_DOUBLE);
    expect(m!.value).toBe('process.name == "sh" && process.binary == "/bin/sh"');
    expect(locate(text, "binary")).toEqual({ line: 2, column: 10 });
  });

  it("double-quoted: an astral escape makes two UTF-16 units, both at the backslash", () => {
    const text = 'm: "\\U0001F600 process.binary"\n';
    expect(locate(text, "\u{1F600}", 1)).toEqual({ line: 1, column: 5 });
    expect(locate(text, "binary")).toEqual({ line: 1, column: 24 });
  });

  it("literal block in a nested sequence, with a more-indented line", () => {
    const text = [
      "spec:",
      "  rules:",
      "    - m: |",
      "        process.name == 'sh' &&",
      "          process.binary == '/bin/sh'",
      "",
    ].join("\n");
    expect(locate(text, "process.name")).toEqual({ line: 4, column: 9 });
    expect(locate(text, "binary")).toEqual({ line: 5, column: 19 });
  });

  it("literal block with an explicit indentation indicator keeps the extra spaces", () => {
    const text = ["m: |2-", "    process.binary", ""].join("\n");
    const [m] = decodeAll(text).filter((d) => d.node.type === Scalar.BLOCK_LITERAL);
    expect(m!.value).toBe("  process.binary");
    expect(locate(text, "  process")).toEqual({ line: 2, column: 3 });
    expect(locate(text, "binary")).toEqual({ line: 2, column: 13 });
  });

  it("folded block: lines joined by spaces still map to their own line", () => {
    const text = ["m: >-", "  process.name == 'sh' &&", "  process.binary == '/bin/sh'", ""].join("\n");
    expect(locate(text, "binary")).toEqual({ line: 3, column: 11 });
    // The space that replaced the line break points at the end of the first line.
    expect(locate(text, "&& ", 2)).toEqual({ line: 2, column: 26 });
  });

  it("CRLF line endings", () => {
    const text = ["m: |", "  process.name == 'sh' &&", "  process.binary == '/bin/sh'", ""].join("\r\n");
    expect(locate(text, "binary")).toEqual({ line: 3, column: 11 });
  });

  it("has one more offset than characters, for the end of the value", () => {
    const [m] = decodeAll("m: 'ab'\n").filter((d) => d.value === "ab");
    expect(m!.offsets).toEqual([4, 5, 6]); // a, b, the closing quote
  });

  it("agrees with the yaml package on any string, in every style", () => {
    const styles = [Scalar.PLAIN, Scalar.QUOTE_SINGLE, Scalar.QUOTE_DOUBLE, Scalar.BLOCK_LITERAL, Scalar.BLOCK_FOLDED] as const;
    const characters = fc.constantFrom("a", "b", " ", "  ", "\n", "\t", "'", '"', "\\", "#", ":", "-", "é", "\u{1F600}", "\r");
    fc.assert(
      fc.property(
        fc.string({ unit: characters, maxLength: 60 }),
        fc.constantFrom(...styles),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 8, max: 40 }),
        (value, style, depth, lineWidth) => {
          // Nest the value so block scalars get a parent indentation; narrow lines force folding.
          let nested: unknown = value;
          for (let level = 0; level < depth; level++) nested = level % 2 ? [nested] : { k: nested };
          const text = stringify(nested, { defaultStringType: style, lineWidth, minContentWidth: 0 });
          // yaml 2.9 writes a few odd strings it cannot read back (a top-level "|1-" block, say).
          fc.pre(parseDocument(text).errors.length === 0);
          for (const { node, value: decoded, offsets } of decodeAll(text)) {
            expect(decoded).toBe(node.value);
            expect(offsets).toHaveLength(decoded.length + 1);
            // Characters written as themselves point at themselves; the others are folds and escapes.
            for (let i = 0; i < decoded.length; i++) {
              const at = text[offsets[i]!];
              if (decoded[i] !== " " && decoded[i] !== "\n" && at !== "\\") expect(at).toBe(decoded[i]);
            }
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("agrees with the yaml package on hand-written scalars (block headers, escapes, CRLF, blank lines)", () => {
    const openings = ["k: ", "k: '", 'k: "', "k: |\n  ", "k: >\n  ", "k: |2\n   ", "k: >-\n   ", "- k: |+\n    ", "a:\n  k: >1\n    "];
    const pieces = ["a", "b", " ", "\n", "\n  ", "\n    ", "\t", "''", "\\n", "\\\n", "\\u00e9", "\r\n", "#", ":", "-"];
    fc.assert(
      fc.property(fc.constantFrom(...openings), fc.string({ unit: fc.constantFrom(...pieces), maxLength: 30 }), (opening, body) => {
        const closing = opening.endsWith("'") ? "'" : opening.endsWith('"') ? '"' : "";
        const text = `${opening}${body}${closing}\n`;
        fc.pre(parseDocument(text).errors.length === 0);
        for (const { node, value } of decodeAll(text)) expect(value).toBe(node.value);
      }),
      { numRuns: 5000 },
    );
  });
});
