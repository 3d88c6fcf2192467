// One parsed YAML document seen two ways at once: as the plain data the schema validates, and
// as nodes with source positions, joined by paths (ajv's JSON Pointers, split into segments).

import { isAlias, isMap, isScalar, isSeq, type Document, type Node, type Pair, type Scalar } from "yaml";
import type { SourcePosition } from "../diagnostics.ts";

export type PathSegments = readonly string[];

export interface DocumentView {
  /** The document as plain data, as validated. */
  readonly data: unknown;
  /** Where the value at a path is; for an empty value, where its key is. */
  valueAt(path: PathSegments): SourcePosition;
  /** Where the key of the property at a path is. */
  keyAt(path: PathSegments): SourcePosition;
  /** The scalar at a path (through aliases), if there is one. */
  scalarAt(path: PathSegments): Scalar | undefined;
  /** A path as people write it: spec.rules[0].action, matchLabels["app.kubernetes.io/name"]. */
  display(path: PathSegments): string;
}

/** Splits a JSON Pointer (RFC 6901) into its unescaped segments. */
export function pointerSegments(pointer: string): string[] {
  return pointer === "" ? [] : pointer.slice(1).split("/").map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

export function documentView(doc: Document, data: unknown, positionOf: (offset: number) => SourcePosition): DocumentView {
  // Resolving an alias searches the whole document: once per alias is enough.
  const aliasTargets = new Map<unknown, unknown>();
  const resolve = (node: unknown): unknown => {
    if (!isAlias(node)) return node;
    if (!aliasTargets.has(node)) aliasTargets.set(node, node.resolve(doc));
    return aliasTargets.get(node);
  };

  /** The pair a key names in a mapping, looking into `<<` merges after the mapping's own keys. */
  function findPair(map: unknown, key: string): Pair | undefined {
    if (!isMap(map)) return undefined;
    const own = map.items.find((pair) => isScalar(pair.key) && String(pair.key.value) === key);
    if (own) return own;
    for (const merge of map.items.filter((pair) => isScalar(pair.key) && pair.key.value === "<<")) {
      const sources = isSeq(merge.value) ? merge.value.items : [merge.value];
      for (const source of sources) {
        const found = findPair(resolve(source), key);
        if (found) return found;
      }
    }
    return undefined;
  }

  /**
   * The node at the path, or the deepest one on it that exists (`complete` tells which), with
   * the pair that holds it when it is a mapping value.
   */
  function walk(path: PathSegments): { node: unknown; pair?: Pair; complete: boolean } {
    let node: unknown = doc.contents;
    let pair: Pair | undefined;
    for (const segment of path) {
      const parent = resolve(node);
      if (isSeq(parent) && parent.items[Number(segment)] !== undefined) {
        node = parent.items[Number(segment)];
        pair = undefined;
      } else {
        const found = findPair(parent, segment);
        if (!found) return { node, pair, complete: false };
        node = found.value;
        pair = found;
      }
    }
    return { node, pair, complete: true };
  }

  const start = (node: unknown): number | undefined => (node as Node | null)?.range?.[0];
  const isEmpty = (node: unknown) => node == null || (isScalar(node) && node.range?.[0] === node.range?.[1]);

  return {
    data,
    valueAt(path) {
      const { node, pair } = walk(path);
      return positionOf((isEmpty(node) && pair ? start(pair.key) : start(node)) ?? 0);
    },
    keyAt(path) {
      const { node, pair } = walk(path);
      return positionOf(start(pair?.key) ?? start(node) ?? 0);
    },
    scalarAt(path) {
      const { node, complete } = walk(path);
      const target = resolve(node);
      return complete && isScalar(target) ? target : undefined;
    },
    display(path) {
      let shown = "";
      let value = data;
      for (const segment of path) {
        if (Array.isArray(value)) shown += `[${segment}]`;
        else if (/^[A-Za-z_][\w-]*$/.test(segment)) shown += shown ? `.${segment}` : segment;
        else shown += `[${JSON.stringify(segment)}]`;
        value = (value as Record<string, unknown> | undefined)?.[segment];
      }
      return shown;
    },
  };
}
