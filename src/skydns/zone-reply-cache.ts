import { WireReplyCache } from '../dns/wire-reply-cache.js';
import type { ZoneHandler } from './zone-handler.js';

/** Bounds of `srvlink dns`'s wire cache: entries (query shapes) and bytes of encoded replies. */
export const ZONE_REPLY_CACHE_DEFAULTS = { maxEntries: 10_000, maxBytes: 8 * 1024 * 1024 } as const;

export interface ZoneReplyCacheOptions {
  /** Default `ZONE_REPLY_CACHE_DEFAULTS.maxEntries`. */
  maxEntries?: number;
  /** Default `ZONE_REPLY_CACHE_DEFAULTS.maxBytes`. */
  maxBytes?: number;
  /** Clock in ms since the epoch: the zone handler's. */
  now?: () => number;
}

/**
 * `srvlink dns`'s wire cache (docs/architecture.md §4.5): the encoded replies
 * `zone` made, answered again from their bytes (the ID written in) while the
 * zone handler says the same question would get the same reply: the store's
 * version unchanged (any put, delete, lease refresh or reload ends it), no
 * leased record's TTL moved on, and for a reply holding the SOA, whose serial
 * is the time in seconds, within the same second. Refusals, FORMERR and
 * other replies the zone did not make are never kept.
 */
export function createZoneReplyCache(zone: Pick<ZoneHandler, 'origin'>, options: ZoneReplyCacheOptions = {}): WireReplyCache {
  return new WireReplyCache({
    origin: zone.origin,
    maxEntries: options.maxEntries ?? ZONE_REPLY_CACHE_DEFAULTS.maxEntries,
    maxBytes: options.maxBytes ?? ZONE_REPLY_CACHE_DEFAULTS.maxBytes,
    ...(options.now === undefined ? {} : { now: options.now }),
  });
}
