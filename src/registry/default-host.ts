import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';

/** What `os.networkInterfaces()` returns. */
export type NetworkInterfaces = NodeJS.Dict<NetworkInterfaceInfo[]>;

/**
 * The default host of a registration (docs/architecture.md §4.4): the first IPv4
 * address, in interface order, that other machines can reach: neither
 * loopback (`internal`, 127.0.0.0/8) nor link-local (169.254.0.0/16, RFC 3927
 * §2.6: never forwarded off the link). Undefined when there is none (the
 * user must then give a host).
 */
export function defaultHost(interfaces: NetworkInterfaces = networkInterfaces()): string | undefined {
  for (const addresses of Object.values(interfaces)) {
    for (const info of addresses ?? []) {
      // Node 18.0-18.3 reported the family as a number.
      const family: unknown = info.family;
      if (family !== 'IPv4' && family !== 4) continue;
      if (info.internal || info.address.startsWith('127.') || info.address.startsWith('169.254.')) continue;
      return info.address;
    }
  }
  return undefined;
}
