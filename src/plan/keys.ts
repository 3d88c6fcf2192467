// How values become LPM keys. The enforcer encodes map keys with these functions and the
// BPF code builds the same bytes from kernel data, so the reference evaluator and the
// kernel look up identical keys. (The kernel also prefixes [hook id, dimension id].)

import type { DimensionKind } from "./dimensions.ts";
import { MAX_STRING_BYTES } from "./dimensions.ts";
import type { IpAddress } from "../policy/ip.ts";

/** Size of a string key buffer; exact values end in NUL, so they are at most MAX_STRING_BYTES long. */
export const STRING_KEY_BYTES = MAX_STRING_BYTES + 1;
export const ADDR_KEY_BYTES = 17;

const utf8 = new TextEncoder();

export function stringBytes(text: string): Uint8Array {
  return utf8.encode(text);
}

/** Key of a string value for a prefix dimension: its first 256 bytes, NUL padded. */
export function prefixKey(value: string): Uint8Array {
  const key = new Uint8Array(STRING_KEY_BYTES);
  key.set(stringBytes(value).subarray(0, STRING_KEY_BYTES));
  return key;
}

/** Key of a string value for a suffix dimension: its last 256 bytes reversed, NUL padded. */
export function suffixKey(value: string): Uint8Array {
  const bytes = stringBytes(value);
  const key = new Uint8Array(STRING_KEY_BYTES);
  key.set(bytes.subarray(Math.max(0, bytes.length - STRING_KEY_BYTES)).reverse());
  return key;
}

export function intKey(value: number): Uint8Array {
  const key = new Uint8Array(4);
  new DataView(key.buffer).setUint32(0, value >>> 0);
  return key;
}

export function addrKey(ip: IpAddress): Uint8Array {
  const key = new Uint8Array(ADDR_KEY_BYTES);
  key[0] = ip.family;
  key.set(ip.bytes, 1);
  return key;
}

/** A bit-string prefix: the first `bits` bits of `bytes`. */
export interface Prefix {
  bytes: Uint8Array;
  bits: number;
}

/** Canonical text of a prefix (bytes beyond `bits` masked off), usable as a map key. */
export function prefixId(bytes: Uint8Array, bits: number): string {
  const whole = bits >> 3;
  const rest = bits & 7;
  let hex = Buffer.from(bytes.subarray(0, whole)).toString("hex");
  if (rest) hex += (bytes[whole]! & ((0xff << (8 - rest)) & 0xff)).toString(16).padStart(2, "0");
  return `${bits}:${hex}`;
}

export function isPrefixOf(p: Prefix, of: Prefix): boolean {
  if (p.bits > of.bits) return false;
  return prefixId(p.bytes, p.bits) === prefixId(of.bytes, p.bits);
}

export function keyBits(kind: DimensionKind): number {
  switch (kind) {
    case "prefix":
    case "suffix":
      return STRING_KEY_BYTES * 8;
    case "int":
      return 32;
    case "addr":
      return ADDR_KEY_BYTES * 8;
    case "workload":
      return 64;
  }
}
