import type { DnsMessage } from './codec.js';
import type { DnsClientInfo } from './handler.js';

/** A reply a `ReplyCache` gives, with what the server counts of it. */
export interface CachedReply {
  /** The reply as it goes on the wire, the query's ID in it. */
  wire: Buffer;
  /** Question type and rcode (metrics), and whether TC is set (a UDP reply cut to the client's size). */
  type: string;
  rcode: number;
  truncated: boolean;
}

/**
 * Encoded replies in front of a `DnsServer`'s chain (the stub's wire cache,
 * docs/architecture.md §4.1): asked with the raw query before anything is
 * decoded, told every reply the chain gave. A hit skips decoding, the chain
 * and encoding; what it answers must be what the chain would have answered.
 */
export interface ReplyCache {
  /** The reply to `query` from `client`, or undefined: the chain answers it. */
  lookup(query: Buffer, client: DnsClientInfo): CachedReply | undefined;
  /** The chain answered `query` from `client` with `reply`, encoded as `wire` (the cache keeps a copy if it wants). */
  store(query: Buffer, client: DnsClientInfo, reply: DnsMessage, wire: Buffer): void;
}

/** A network given as an address and prefix length (`Cidr` of core/). */
export interface ReplyNetwork {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/**
 * A table of replies outside JavaScript (the native UDP path,
 * `src/dns/native-udp.ts`) that answers a UDP query whose bytes after the ID
 * are exactly a key, until the entry's expiry, without asking anyone: the
 * cache that fills it must delete an entry as soon as its reply is no longer
 * the one the chain would give.
 */
export interface NativeReplyTable {
  /**
   * Answer `key` (a query's bytes after the ID) with `reply` until `expiresAt`
   * (ms since the epoch); when `storedAt` is given, the TTLs at `ttlOffsets` are
   * `ttls` less the whole seconds since then. Whether the table kept it (it is bounded).
   */
  put(id: number, key: Buffer, reply: Buffer, ttlOffsets: readonly number[], ttls: readonly number[], storedAt: number | undefined, expiresAt: number): boolean;
  delete(key: Buffer): void;
  clear(): void;
  /** Who the table may answer: these networks, or everyone (undefined). */
  allow(networks: readonly ReplyNetwork[] | undefined): void;
}

/** What the server counts of `count` hits of one native entry. */
export interface NativeHits {
  type: string;
  rcode: number;
  truncated: boolean;
  count: number;
}

/** A `ReplyCache` that can mirror its UDP replies into a `NativeReplyTable`. */
export interface NativeReplyCache extends ReplyCache {
  /** Mirror into `table` from now on (undefined: stop); false when this cache cannot (its clock is not the system's). */
  attachNative(table: NativeReplyTable | undefined): boolean;
  /** Count hits the table reported as (id, count) pairs, as its own hits; what the server counts of them. */
  nativeHits(pairs: readonly number[]): NativeHits[];
}
