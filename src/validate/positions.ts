// Source offsets to the 1-based lines and columns a person sees in an editor.

import type { LineCounter } from "yaml";
import type { SourcePosition } from "../diagnostics.ts";

/** Columns count characters (code points), not UTF-16 units. */
export function positionFinder(file: string, text: string, lineCounter: LineCounter): (offset: number) => SourcePosition {
  return (offset) => {
    const { line } = lineCounter.linePos(offset);
    let column = 1;
    for (const _ of text.slice(lineCounter.lineStarts[line - 1], offset)) column++;
    return { file, line, column };
  };
}
