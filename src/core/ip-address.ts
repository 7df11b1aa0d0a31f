import { isIP } from 'node:net';

/**
 * IPv6 addresses as bytes and in one spelling (RFC 4291 §2.2 in, RFC 5952
 * out), so that `::1`, `0:0::1` and `0000::0001` compare equal everywhere
 * an address is a key (duplicate records, access lists, upstream names).
 */

/** The 16 bytes of an IPv6 address (every RFC 4291 §2.2 text form, embedded IPv4 included); undefined when it is not one. A zone (`%eth0`) is not an address. */
export function ipv6Bytes(address: string): Uint8Array | undefined {
  if (isIP(address) !== 6 || address.includes('%')) return undefined;
  let text = address.toLowerCase();
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    // RFC 4291 §2.2 form 3: the low 32 bits written as an IPv4 address; rewrite them as two groups.
    const [a = 0, b = 0, c = 0, d = 0] = last.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const left = parse(head);
  const right = parse(rest ?? '');
  const missing = 8 - left.length - right.length;
  if (missing < 0 || (rest === undefined && missing !== 0)) return undefined;
  const groups = [...left, ...new Array<number>(missing).fill(0), ...right];
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    bytes[i * 2] = group >> 8;
    bytes[i * 2 + 1] = group & 0xff;
  });
  return bytes;
}

/**
 * The RFC 5952 text of 16 bytes: lower-case hex groups without leading
 * zeros, the first longest run of two or more zero groups written `::`
 * (§4.2). An IPv4-mapped address stays in hex (`::ffff:a00:1`), as the
 * WHATWG URL parser writes it.
 */
export function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length++;
    if (length > bestLength) {
      bestStart = start;
      bestLength = length;
    }
  }
  const hex = (part: number[]): string => part.map((group) => group.toString(16)).join(':');
  if (bestStart === -1) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2), or undefined. */
export function mappedIpv4(address: string): string | undefined {
  const bytes = ipv6Bytes(address);
  if (bytes === undefined) return undefined;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return undefined;
  if (bytes[10] !== 0xff || bytes[11] !== 0xff) return undefined;
  return bytes.subarray(12).join('.');
}

/** One spelling per address: IPv6 in RFC 5952 form, anything else (IPv4, a name, a zoned address) lower-cased as it is. */
export function canonicalAddress(address: string): string {
  const bytes = ipv6Bytes(address);
  return bytes === undefined ? address.toLowerCase() : formatIpv6(bytes);
}
