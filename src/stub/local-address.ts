import { createSocket } from 'node:dgram';
import { isIP } from 'node:net';
import { mappedIpv4 } from '../core/ip-address.js';
import type { DnsClientInfo } from '../dns/handler.js';

/** Clients remembered at most, and for how long (routes change: a container's network can be re-plugged). */
const MAX_CLIENTS = 1024;
const REMEMBER_MS = 10_000;

/**
 * The local address a DNS client reaches this process at: what a stub
 * bound to 0.0.0.0 answers for a mapping listening on 0.0.0.0 (a sidecar),
 * since 127.0.0.1 would be the client's own loopback in another container
 * (docs/architecture.md §4.1).
 *
 * The transport's own knowledge first (a TCP connection's local address, a
 * UDP socket bound to one address). A datagram on a wildcard socket carries
 * none that Node shows (no IP_PKTINFO), so then it is the source address the
 * kernel picks to reach the client, which is where the stub's reply comes
 * from and so the address the client already talks to: the local address of
 * a UDP socket connected to the client (a route lookup; no packet is sent).
 * Remembered per client address, bounded in count and time; one lookup at a
 * time per client.
 */
export class LocalAddresses {
  readonly #known = new Map<string, { address: Promise<string | undefined>; until: number }>();
  readonly #now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** The local address `client` reached, without an IPv4-mapped prefix; undefined when there is no route to it. */
  of(client: DnsClientInfo): Promise<string | undefined> {
    if (client.localAddress !== undefined) return Promise.resolve(unmapped(client.localAddress));
    const remote = unmapped(client.address);
    const now = this.#now();
    const known = this.#known.get(remote);
    if (known && known.until > now) return known.address;
    this.#known.delete(remote);
    if (this.#known.size >= MAX_CLIENTS) {
      // The oldest entry goes (a Map iterates in insertion order).
      const oldest = this.#known.keys().next().value;
      if (oldest !== undefined) this.#known.delete(oldest);
    }
    const address = routeSource(remote);
    this.#known.set(remote, { address, until: now + REMEMBER_MS });
    return address;
  }
}

/** The source address of a route to `address`; undefined when there is none (or it is no IP address). */
function routeSource(address: string): Promise<string | undefined> {
  const family = isIP(address);
  if (family === 0) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
    let settled = false;
    const done = (local: string | undefined): void => {
      if (settled) return;
      settled = true;
      socket.close();
      resolve(local);
    };
    socket.on('error', () => done(undefined));
    // Any port: connect() on UDP only looks up the route and sends nothing.
    socket.connect(9, address, (err?: Error) => {
      let local: string | undefined;
      try {
        local = err ? undefined : socket.address().address;
      } catch {
        local = undefined;
      }
      done(local);
    });
  });
}

/** `::ffff:10.0.0.2` → `10.0.0.2` (an IPv4 client of a dual-stack socket). */
function unmapped(address: string): string {
  return mappedIpv4(address) ?? address;
}
