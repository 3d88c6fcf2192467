// IP addresses and CIDRs as the kernel compares them: bytes plus family.
// Text forms are canonical (dotted quad; RFC 5952 for IPv6, no embedded IPv4) so that
// the string equality CEL does and the byte equality the kernel does agree.

import { isIPv4, isIPv6 } from "node:net";

export interface IpAddress {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

export interface Cidr extends IpAddress {
  prefixLength: number;
}

export function parseIp(text: string): IpAddress | undefined {
  if (isIPv4(text)) return { family: 4, bytes: Uint8Array.from(text.split(".").map(Number)) };
  if (!isIPv6(text) || text.includes("%")) return undefined;
  return { family: 6, bytes: ipv6Bytes(text) };
}

function ipv6Bytes(text: string): Uint8Array {
  // Expand an embedded dotted quad into two hex groups first.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  let normalized = text;
  if (dotted) {
    const [a, b, c, d] = dotted[1]!.split(".").map(Number) as [number, number, number, number];
    normalized = text.slice(0, dotted.index) + ((a << 8) | b).toString(16) + ":" + ((c << 8) | d).toString(16);
  }
  const [head, tail] = normalized.includes("::") ? normalized.split("::") : [normalized, undefined];
  const headGroups = head ? head.split(":") : [];
  const tailGroups = tail ? tail.split(":") : [];
  const zeros = tail === undefined ? [] : Array(8 - headGroups.length - tailGroups.length).fill("0");
  const groups = [...headGroups, ...zeros, ...tailGroups];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    bytes[2 * i] = v >> 8;
    bytes[2 * i + 1] = v & 0xff;
  });
  return bytes;
}

export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) return Array.from(ip.bytes).join(".");
  const groups = Array.from({ length: 8 }, (_, i) => (ip.bytes[2 * i]! << 8) | ip.bytes[2 * i + 1]!);
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) { bestStart = i; bestLength = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return hex.slice(0, bestStart).join(":") + "::" + hex.slice(bestStart + bestLength).join(":");
}

/** Parses "a.b.c.d/n" or "x::/n"; returns an error message for anything else. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf("/");
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!ip) return `"${text}" is not a CIDR (expected e.g. "10.0.0.0/8" or "fd00::/8")`;
  const max = ip.family === 4 ? 32 : 128;
  const lengthText = slash < 0 ? String(max) : text.slice(slash + 1);
  const prefixLength = /^\d{1,3}$/.test(lengthText) ? Number(lengthText) : NaN;
  if (!(prefixLength <= max)) return `"${text}": prefix length must be 0 to ${max}`;
  const network = networkOf(ip, prefixLength);
  const canonical = `${formatIp(network)}/${prefixLength}`;
  if (!network.bytes.every((b, i) => b === ip.bytes[i])) {
    return `"${text}" has host bits set; did you mean "${canonical}"?`;
  }
  return { ...ip, prefixLength };
}

export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  if (cidr.family !== ip.family) return false;
  return networkOf(ip, cidr.prefixLength).bytes.every((b, i) => b === cidr.bytes[i]);
}

/** The address with all bits past the prefix cleared. */
export function networkOf(ip: IpAddress, prefixLength: number): IpAddress {
  const bytes = ip.bytes.map((b, i) => {
    const bits = Math.min(8, Math.max(0, prefixLength - 8 * i));
    return b & ((0xff << (8 - bits)) & 0xff);
  });
  return { family: ip.family, bytes };
}
