import { BlockList, isIP } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { formatCidr, parseCidr, type Cidr } from '../core/cidr.js';
import { formatIpv6, ipv6Bytes, mappedIpv4 } from '../core/ip-address.js';
import { Rcode, createReply, type DnsMessage } from '../dns/codec.js';
import type { DnsHandler, DnsRequest, NextHandler } from '../dns/handler.js';
import type { Refusals } from '../dns/refusals.js';

/** The setting named in errors about networks given as strings. */
const WHAT = '--allow-from';

/**
 * The container itself (RFC 1122 §3.2.1.3 loopback, RFC 4291 §2.5.3 ::1):
 * only processes of the same network namespace can send from there (the
 * kernel drops loopback sources arriving on other interfaces), so a stub
 * always answers them, whatever else `--allow-from` names.
 */
export const LOOPBACK_NETWORKS: readonly Cidr[] = [
  { address: '127.0.0.0', prefix: 8, family: 'ipv4' },
  { address: '::1', prefix: 128, family: 'ipv6' },
];

/**
 * Networks that never route on the public Internet: an interface inside one
 * of them can only be reached by neighbours on a private network.
 */
const PRIVATE: readonly Cidr[] = [
  // RFC 1918 §3: private IPv4 address space.
  { address: '10.0.0.0', prefix: 8, family: 'ipv4' },
  { address: '172.16.0.0', prefix: 12, family: 'ipv4' },
  { address: '192.168.0.0', prefix: 16, family: 'ipv4' },
  // RFC 3927: IPv4 link-local.
  { address: '169.254.0.0', prefix: 16, family: 'ipv4' },
  // RFC 4193 §3.1: unique local IPv6 unicast addresses.
  { address: 'fc00::', prefix: 7, family: 'ipv6' },
  // RFC 4291 §2.5.6: IPv6 link-local.
  { address: 'fe80::', prefix: 10, family: 'ipv6' },
];

/**
 * A handler that REFUSES (RFC 1035 §4.1.1: "refuses to perform the specified
 * operation for policy reasons") every client whose address is outside
 * `cidrs`, so that a stub bound beyond loopback is never an open resolver
 * (docs/architecture.md §4.1). Networks are `Cidr` values or strings parsed by
 * `parseCidr` (`10.0.0.0/8`, `fd00::/8`, a bare address); a string that is
 * not one throws a `ConfigError` naming `--allow-from`. An empty list refuses
 * everyone.
 *
 * IPv4 clients seen through a dual-stack socket (`::ffff:10.0.0.2`, RFC 4291
 * §2.5.5.2) are checked as the IPv4 address they are; a zone index
 * (`fe80::2%eth0`) is ignored. Refusals are counted in `refusals`
 * (reason `notAllowed`) when given.
 */
export function createAllowFromHandler(cidrs: readonly (string | Cidr)[], options: { refusals?: Refusals } = {}): DnsHandler {
  const allows = allowFrom(cidrs);
  return {
    name: 'allow-from',
    handle(request: DnsRequest, next: NextHandler): Promise<DnsMessage> {
      if (allows(request.client.address)) return next();
      if (options.refusals) return Promise.resolve(options.refusals.refuse(request, 'notAllowed'));
      return Promise.resolve(createReply(request.message, { rcode: Rcode.REFUSED }));
    },
  };
}

/** Whether a client address is in `cidrs` (as `createAllowFromHandler` decides; a bad string throws a `ConfigError`). */
export function allowFrom(cidrs: readonly (string | Cidr)[]): (address: string) => boolean {
  const allowed = new BlockList();
  for (const entry of cidrs) {
    const cidr = typeof entry === 'string' ? parseCidr(entry, WHAT) : entry;
    allowed.addSubnet(stripZone(cidr.address), cidr.prefix, cidr.family);
  }
  return (address) => isAllowed(allowed, address);
}

/**
 * The networks a stub bound beyond loopback answers by default: loopback,
 * plus the network of each of the container's own non-internal interfaces
 * whose address is private (RFC 1918, RFC 4193, link-local). An interface
 * `10.99.0.1` with netmask `255.255.255.0` gives `10.99.0.0/24`. Public
 * addresses give nothing: their neighbours may be anyone. Pure but for
 * reading the interfaces, which `interfaces` replaces in tests.
 */
export function defaultAllowFrom(
  interfaces: NodeJS.Dict<readonly NetworkInterfaceInfo[]> = networkInterfaces(),
): Cidr[] {
  const result: Cidr[] = [...LOOPBACK_NETWORKS];
  const seen = new Set(result.map(formatCidr));
  for (const addresses of Object.values(interfaces)) {
    for (const info of addresses ?? []) {
      if (info.internal) continue;
      const network = interfaceNetwork(info);
      if (network === undefined || !PRIVATE.some((range) => contains(range, network))) continue;
      const key = formatCidr(network);
      if (seen.has(key)) continue;
      seen.add(key);
      result.push(network);
    }
  }
  return result;
}

function isAllowed(allowed: BlockList, clientAddress: string): boolean {
  const address = stripZone(clientAddress);
  const version = isIP(address);
  if (version === 4) return allowed.check(address, 'ipv4');
  if (version !== 6) return false;
  if (allowed.check(address, 'ipv6')) return true;
  const mapped = mappedIpv4(address);
  return mapped !== undefined && allowed.check(mapped, 'ipv4');
}

/** The network an interface is on: its address masked by its netmask. */
function interfaceNetwork(info: NetworkInterfaceInfo): Cidr | undefined {
  const family = info.family === 'IPv4' ? 'ipv4' : 'ipv6';
  const address = addressBytes(stripZone(info.address), family);
  const mask = addressBytes(info.netmask, family);
  if (address === undefined || mask === undefined) return undefined;
  const prefix = prefixLength(mask);
  if (prefix === undefined) return undefined;
  return { address: formatBytes(applyPrefix(address, prefix), family), prefix, family };
}

/** Whether `inner` lies entirely inside `outer`. */
function contains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.prefix < outer.prefix) return false;
  const a = addressBytes(outer.address, outer.family);
  const b = addressBytes(inner.address, inner.family);
  if (a === undefined || b === undefined) return false;
  return Buffer.compare(applyPrefix(a, outer.prefix), applyPrefix(b, outer.prefix)) === 0;
}

/** Keep the first `prefix` bits of `bytes`, zero the rest. */
function applyPrefix(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = (bytes[i] ?? 0) & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

/** The number of leading one bits of a netmask; undefined when the ones are not contiguous. */
function prefixLength(mask: Uint8Array): number | undefined {
  let prefix = 0;
  let ended = false;
  for (const byte of mask) {
    for (let bit = 7; bit >= 0; bit--) {
      const one = (byte >> bit) & 1;
      if (one && ended) return undefined;
      if (one) prefix++;
      else ended = true;
    }
  }
  return prefix;
}

function addressBytes(address: string, family: 'ipv4' | 'ipv6'): Uint8Array | undefined {
  if (family === 'ipv4') {
    if (isIP(address) !== 4) return undefined;
    return Uint8Array.from(address.split('.').map(Number));
  }
  return ipv6Bytes(address);
}

/** Text form of an address's bytes; IPv6 in RFC 5952 form. */
function formatBytes(bytes: Uint8Array, family: 'ipv4' | 'ipv6'): string {
  return family === 'ipv4' ? Array.from(bytes).join('.') : formatIpv6(bytes);
}

function stripZone(address: string): string {
  const percent = address.indexOf('%');
  return percent === -1 ? address : address.slice(0, percent);
}
