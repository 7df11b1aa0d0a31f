import type { DnsMessage } from '../dns/codec.js';
import type { ReplyNetwork } from '../dns/reply-cache.js';
import { WireReplyCache, type ReplyOrigin } from '../dns/wire-reply-cache.js';
import type { CacheHandler } from './cache-handler.js';
import type { StubStats } from './stub-stats.js';

export interface WireCacheOptions {
  /** The cache handler whose replies from fresh entries are kept encoded; an entry lives only as long as its source entry. */
  source: Pick<CacheHandler, 'origin'>;
  /** Alias answers that are the same for every client (`onFixedAnswer`): kept until `clear()` (the alias table changed). */
  aliasReplies?: { has(reply: DnsMessage): boolean };
  /** Entries at most (one per query shape: spelling, EDNS, size, transport); the least recently used go first. */
  maxEntries: number;
  /** Bytes of encoded replies at most. */
  maxBytes: number;
  /** Clock in ms since the epoch: the source's. */
  now?: () => number;
  /** Whether a client may be answered (the stub's allow-from); default everyone. */
  allows?: (address: string) => boolean;
  /** The networks `allows` lets in (for the native UDP path: without them it answers nobody from the cache). */
  allowNetworks?: readonly ReplyNetwork[];
  /** A hit counts as a query and a cache hit, as the chain would have counted it. */
  stats?: StubStats;
}

/**
 * The stub's wire cache (docs/architecture.md §4.1): the encoded replies the
 * cache handler made from fresh entries, keyed by the raw query (`queryKey`), so a
 * repeated question is answered without decoding, running the chain or
 * encoding: the template is copied, the client's ID written in, and the
 * TTLs aged by the whole seconds since the source entry was stored, exactly
 * as the cache handler ages them. Kept: the replies the cache handler made
 * from the cache, each served only while its source entry is the cache's
 * fresh answer (a replaced, evicted or cleared source takes it along), and
 * the alias answers that are the same for every client, whose TTLs stand
 * still, until the alias table changes; never refusals, stale or
 * upstream-fresh replies, nor an alias answer of a wildcard listener (each
 * client gets the address it reached). Bounded by entries and bytes;
 * `clear()` drops all (the alias table changed).
 */
export class WireCache extends WireReplyCache {
  constructor(options: WireCacheOptions) {
    const { source, stats, aliasReplies } = options;
    super({
      origin: (reply) => {
        if (aliasReplies?.has(reply) === true) return ALIAS_ORIGIN;
        const origin = source.origin(reply);
        if (origin === undefined) return undefined;
        return { fresh: (now) => origin.live() && now < origin.expiresAt, aging: origin, until: { at: origin.expiresAt, onEnd: origin.onEnd } };
      },
      maxEntries: options.maxEntries,
      maxBytes: options.maxBytes,
      ...(options.now === undefined ? {} : { now: options.now }),
      ...(options.allows === undefined ? {} : { allows: options.allows }),
      ...(options.allowNetworks === undefined ? {} : { allowNetworks: options.allowNetworks }),
      ...(stats === undefined
        ? {}
        : {
            // As the chain would have counted them: an alias answer, or a cache hit.
            onHit: (count, origin) => {
              stats.queries += count;
              if (origin === ALIAS_ORIGIN) stats.aliasAnswers += count;
              else stats.cacheHits += count;
            },
          }),
    });
  }
}

/**
 * Where a kept alias answer comes from: fresh for as long as the alias table
 * stands (a new table clears the whole cache, JavaScript's and the native
 * table's), its TTLs never aging. `until.at`: the largest time the native
 * table takes (a whole number of ms), as good as never.
 */
const ALIAS_ORIGIN: ReplyOrigin = {
  fresh: () => true,
  until: { at: Number.MAX_SAFE_INTEGER, onEnd: () => () => undefined },
};
