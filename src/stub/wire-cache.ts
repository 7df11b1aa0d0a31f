import { InvalidArgumentError } from '../core/errors.js';
import type { DnsMessage } from '../dns/codec.js';
import type { DnsClientInfo } from '../dns/handler.js';
import { queryKey } from '../dns/query-key.js';
import { recordTtlOffsets } from '../dns/record-ttls.js';
import type { CachedReply, ReplyCache } from '../dns/reply-cache.js';
import { TC_BIT } from '../dns/wire.js';
import type { CacheHandler } from './cache-handler.js';
import type { CacheOrigin } from './dns-cache.js';
import type { StubStats } from './stub-stats.js';

export interface WireCacheOptions {
  /** The cache handler whose replies from fresh entries are kept encoded; an entry lives only as long as its source entry. */
  source: Pick<CacheHandler, 'origin'>;
  /** Entries at most (one per query shape: spelling, EDNS, size, transport); the least recently used go first. */
  maxEntries: number;
  /** Bytes of encoded replies at most. */
  maxBytes: number;
  /** Clock in ms since the epoch: the source's. */
  now?: () => number;
  /** Whether a client may be answered (the stub's allow-from); default everyone. */
  allows?: (address: string) => boolean;
  /** A hit counts as a query and a cache hit, as the chain would have counted it. */
  stats?: StubStats;
}

interface Entry {
  /** The encoded reply, TTLs as of `shown` seconds in the source; ID rewritten per hit. */
  template: Buffer;
  ttlOffsets: readonly number[];
  /** Each record's TTL with no time in the cache taken off. */
  ttls: readonly number[];
  shown: number;
  origin: CacheOrigin;
  type: string;
  rcode: number;
  truncated: boolean;
}

/**
 * The stub's wire cache (docs/architecture.md §4.1): the encoded replies the
 * cache handler made from fresh entries, keyed by the raw query (`queryKey`), so a
 * repeated question is answered without decoding, running the chain or
 * encoding: the template is copied, the client's ID written in, and the
 * TTLs aged by the whole seconds since the source entry was stored, exactly
 * as the cache handler ages them. Only replies the cache handler made from the cache are kept
 * (never alias answers, refusals, stale or upstream-fresh replies), and one
 * is served only while its source entry is the cache's fresh answer: a
 * replaced, evicted or cleared source takes it along. Bounded by entries and
 * bytes; `clear()` drops all (the alias table changed).
 */
export class WireCache implements ReplyCache {
  readonly #entries = new Map<string, Entry>();
  readonly #source: Pick<CacheHandler, 'origin'>;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #now: () => number;
  readonly #allows: ((address: string) => boolean) | undefined;
  readonly #stats: StubStats | undefined;
  #bytes = 0;
  /** Queries answered from here. */
  hits = 0;

  constructor(options: WireCacheOptions) {
    for (const [name, value] of [['maxEntries', options.maxEntries], ['maxBytes', options.maxBytes]] as const) {
      if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError(`invalid wire cache option "${name}": ${value}, expected an integer of at least 1`);
    }
    this.#source = options.source;
    this.#maxEntries = options.maxEntries;
    this.#maxBytes = options.maxBytes;
    this.#now = options.now ?? Date.now;
    this.#allows = options.allows;
    this.#stats = options.stats;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  lookup(query: Buffer, client: DnsClientInfo): CachedReply | undefined {
    if (this.#entries.size === 0) return undefined;
    const key = queryKey(query, client.transport);
    if (key === undefined) return undefined;
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    const now = this.#now();
    if (!entry.origin.live() || now >= entry.origin.expiresAt) {
      this.#delete(key, entry);
      return undefined;
    }
    if (this.#allows !== undefined && !this.#allows(client.address)) return undefined;
    const elapsed = Math.max(0, Math.floor((now - entry.origin.storedAt) / 1000));
    if (elapsed !== entry.shown) {
      for (let i = 0; i < entry.ttlOffsets.length; i++) entry.template.writeUInt32BE(Math.max(0, (entry.ttls[i] as number) - elapsed), entry.ttlOffsets[i] as number);
      entry.shown = elapsed;
    }
    const wire = Buffer.allocUnsafe(entry.template.length);
    entry.template.copy(wire);
    wire[0] = query[0] as number;
    wire[1] = query[1] as number;
    // Most recently used last: the front of the map goes first.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    this.hits += 1;
    if (this.#stats) {
      this.#stats.queries += 1;
      this.#stats.cacheHits += 1;
    }
    return { wire, type: entry.type, rcode: entry.rcode, truncated: entry.truncated };
  }

  store(query: Buffer, client: DnsClientInfo, reply: DnsMessage, wire: Buffer): void {
    const origin = this.#source.origin(reply);
    if (origin === undefined || wire.length > this.#maxBytes) return;
    const key = queryKey(query, client.transport);
    const ttlOffsets = recordTtlOffsets(wire);
    if (key === undefined || ttlOffsets === undefined) return;
    const previous = this.#entries.get(key);
    if (previous !== undefined) this.#delete(key, previous);
    this.#entries.set(key, {
      template: Buffer.from(wire),
      ttlOffsets,
      ttls: ttlOffsets.map((offset) => wire.readUInt32BE(offset) + origin.elapsed),
      shown: origin.elapsed,
      origin,
      type: reply.questions[0]?.type ?? '',
      rcode: reply.rcode,
      truncated: (wire.readUInt16BE(2) & TC_BIT) !== 0,
    });
    this.#bytes += wire.length;
    for (const [oldest, entry] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries && this.#bytes <= this.#maxBytes) break;
      this.#delete(oldest, entry);
    }
  }

  /** Drop every entry. */
  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  #delete(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#bytes -= entry.template.length;
  }
}
