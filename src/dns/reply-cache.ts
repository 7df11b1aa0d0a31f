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
