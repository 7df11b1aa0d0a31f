import { InvalidArgumentError } from '../core/errors.js';
import { canonicalName } from '../core/dns-name.js';
import { Rcode, encodeMessage, type DnsMessage, type DnsRecord } from '../dns/codec.js';

export interface DnsCacheOptions {
  /** Entries kept at most; the least recently used go first. Default 10 000. */
  maxEntries?: number;
  /**
   * Wire size (bytes) of all kept responses together, at most. With
   * `maxEntries` this bounds memory whatever clients ask: one name can carry
   * a 64 KiB answer over TCP. Default 8 MiB.
   */
  maxBytes?: number;
  /** Longest a positive answer is kept, in seconds. Default 86 400 (1 day). */
  maxTtl?: number;
  /** Longest a negative answer is kept, in seconds. Default 10 800 (3 h, RFC 2308 §5). */
  maxNegativeTtl?: number;
  /**
   * How long an entry is kept after it expired, in ms, for `getStale`
   * (RFC 8767). 0 disables stale answers. Default 1 day, the low end of the
   * 1 to 3 days RFC 8767 suggests for its "maximum stale timer".
   */
  staleMax?: number;
  /** Clock in ms since the epoch. Default `Date.now`. */
  now?: () => number;
}

export const DEFAULT_CACHE_ENTRIES = 10_000;
export const DEFAULT_CACHE_BYTES = 8 * 1024 * 1024;
export const DEFAULT_MAX_TTL = 86_400;
export const DEFAULT_MAX_NEGATIVE_TTL = 10_800;
export const DEFAULT_STALE_MAX = 86_400_000;
/** RFC 8767 §4: stale data is served with a TTL of 30 seconds. */
export const STALE_TTL = 30;

interface Entry {
  /** The response as stored: TTLs capped, owner names as the first asker spelled them. */
  response: DnsMessage;
  /** Encoded size, counted against `maxBytes`. */
  size: number;
  storedAt: number;
  expiresAt: number;
  staleUntil: number;
  /** Cleared when the entry leaves the cache (replaced, evicted, expired past stale, cleared). */
  live: boolean;
  /** Told once when `live` is cleared (copies kept where nothing asks `live`). */
  ends: Set<() => void> | undefined;
}

/** Where a fresh answer came from: what a cache of encoded replies needs to age it and to drop it with its entry. */
export interface CacheOrigin {
  /** When the entry was stored and when it stops being fresh, ms since the epoch. */
  readonly storedAt: number;
  readonly expiresAt: number;
  /** The whole seconds in the cache already taken off the reply's TTLs. */
  readonly elapsed: number;
  /** Whether the entry is still the cache's answer to its question. */
  live(): boolean;
  /** Call `listener` once when the entry stops being the cache's answer (at once if it has); returns how to stop listening. */
  onEnd(listener: () => void): () => void;
}

/**
 * An entry `get` or `getStale` found: the response as stored, and what a
 * reply made of it must say (the cache handler makes the reply, in one place).
 */
export interface CachedAnswer {
  /** The response as stored (TTLs capped, TC clear, no EDNS); shared with the cache: never change it. */
  readonly response: DnsMessage;
  /** The TTL a reply gives each record, from the one it has in `response`: aged by the whole seconds in the cache, or `STALE_TTL`. */
  readonly ttl: (ttl: number) => number;
  /** For a fresh entry: where it came from. Undefined for a stale one. */
  readonly origin?: CacheOrigin;
}

/**
 * A bounded cache of upstream responses (docs/architecture.md §4.1), a pure data
 * structure: no I/O, no timers, the clock injected.
 *
 * - Key: the question's name (canonical, RFC 4343), type and class, and the
 *   query's DO (RFC 3225: signatures only when asked) and CD (RFC 4035 §3.2.2:
 *   unvalidated data only when asked) bits.
 * - Positive answers (NOERROR with records in the answer section) are kept
 *   for the smallest TTL of all their records (RFC 2181 §5.2: an RRset shares
 *   one TTL; the response lives as long as its shortest-lived part), at most
 *   `maxTtl`. Every record is stored with at most that lifetime as its TTL
 *   (CoreDNS does the same), so no client that caches a reply keeps it
 *   longer than the stub would.
 * - Negative answers, NXDOMAIN and NODATA (NOERROR, empty answer), are kept
 *   for min(SOA TTL, SOA MINIMUM) of the SOA in the authority section
 *   (RFC 2308 §3, §5), at most `maxNegativeTtl`; without an SOA they are not
 *   kept (RFC 2308 §5: SHOULD NOT be cached).
 * - SERVFAIL, REFUSED and every other rcode, truncated responses and TTL 0
 *   (RFC 1035 §3.2.1: "should not be cached") are never kept.
 * - At most `maxEntries` entries and `maxBytes` bytes: past either, the least
 *   recently used entries are dropped (Map order is the recency order).
 * - Expired entries stay `staleMax` ms more for `getStale` (RFC 8767).
 */
export class DnsCache {
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #maxTtl: number;
  readonly #maxNegativeTtl: number;
  readonly #staleMax: number;
  readonly #now: () => number;
  #bytes = 0;
  #evictions = 0;

  constructor(options: DnsCacheOptions = {}) {
    this.#maxEntries = checkInteger('maxEntries', options.maxEntries ?? DEFAULT_CACHE_ENTRIES, 1);
    this.#maxBytes = checkInteger('maxBytes', options.maxBytes ?? DEFAULT_CACHE_BYTES, 1);
    this.#maxTtl = checkInteger('maxTtl', options.maxTtl ?? DEFAULT_MAX_TTL, 0);
    this.#maxNegativeTtl = checkInteger('maxNegativeTtl', options.maxNegativeTtl ?? DEFAULT_MAX_NEGATIVE_TTL, 0);
    this.#staleMax = checkInteger('staleMax', options.staleMax ?? DEFAULT_STALE_MAX, 0);
    this.#now = options.now ?? Date.now;
  }

  /**
   * The cache key of `query`'s question, or undefined when it has not exactly
   * one (such a query is neither answered from nor stored in the cache).
   */
  static keyOf(query: DnsMessage): string | undefined {
    const question = query.questions[0];
    if (question === undefined || query.questions.length !== 1) return undefined;
    const dnssecOk = query.edns?.dnssecOk === true ? 'do' : '-';
    const checkingDisabled = query.flags.cd ? 'cd' : '-';
    return `${canonicalName(question.name)} ${question.type} ${question.class ?? 'IN'} ${dnssecOk} ${checkingDisabled}`;
  }

  /** Entries kept, fresh and stale. */
  get size(): number {
    return this.#entries.size;
  }

  /** Wire bytes of the entries kept. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Entries dropped to stay within `maxEntries` and `maxBytes` since creation. */
  get evictions(): number {
    return this.#evictions;
  }

  /**
   * A fresh answer to `query`, or undefined: its TTLs lowered by the whole
   * seconds spent in the cache (RFC 1035 §3.2.1: a TTL is the time left to
   * keep the record).
   */
  get(query: DnsMessage): CachedAnswer | undefined {
    const found = this.#lookup(query);
    if (found === undefined) return undefined;
    const { entry, now } = found;
    if (now >= entry.expiresAt) return undefined;
    return fresh(entry, now);
  }

  /**
   * An answer to `query` for when every upstream failed: a fresh entry as
   * `get` gives it, else an expired one less than `staleMax` ms past its
   * expiry with every TTL set to 30 s (RFC 8767 §4), else undefined.
   */
  getStale(query: DnsMessage): CachedAnswer | undefined {
    const found = this.#lookup(query);
    if (found === undefined) return undefined;
    const { entry, now } = found;
    if (now < entry.expiresAt) return fresh(entry, now);
    return { response: entry.response, ttl: () => STALE_TTL };
  }

  /**
   * Keep `response`, the upstream's answer to `query`, when the rules above
   * allow; returns whether it was kept. A kept response replaces any entry of
   * the same key.
   */
  set(query: DnsMessage, response: DnsMessage): boolean {
    const key = DnsCache.keyOf(query);
    if (key === undefined) return false;
    const lifetime = this.#lifetime(response);
    if (lifetime === undefined || lifetime <= 0) return false;
    const stored: DnsMessage = {
      ...response,
      flags: { ...response.flags, tc: false },
      questions: response.questions.map((question) => ({ ...question })),
      // Every record at most the entry's lifetime: a negative answer's SOA
      // then says min(TTL, MINIMUM) (RFC 2308 §3), a capped answer the cap.
      answers: response.answers.map((record) => capTtl(record, lifetime)),
      authorities: response.authorities.map((record) => capTtl(record, lifetime)),
      additionals: response.additionals.map((record) => capTtl(record, lifetime)),
    };
    delete stored.edns;
    let size: number;
    try {
      size = encodeMessage(stored).length;
    } catch {
      return false;
    }
    if (size > this.#maxBytes) return false;
    this.#delete(key);
    const now = this.#now();
    const expiresAt = now + lifetime * 1000;
    this.#entries.set(key, { response: stored, size, storedAt: now, expiresAt, staleUntil: expiresAt + this.#staleMax, live: true, ends: undefined });
    this.#bytes += size;
    for (const [oldest] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries && this.#bytes <= this.#maxBytes) break;
      this.#delete(oldest);
      this.#evictions += 1;
    }
    return true;
  }

  /** Drop every entry. */
  clear(): void {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    for (const entry of entries) end(entry);
    this.#bytes = 0;
  }

  /** The entry for `query` if it is still within its stale window, marked most recently used. */
  #lookup(query: DnsMessage): { entry: Entry; now: number } | undefined {
    const key = DnsCache.keyOf(query);
    if (key === undefined) return undefined;
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    const now = this.#now();
    if (now >= entry.staleUntil) {
      this.#delete(key);
      return undefined;
    }
    // Re-insert: Map iteration order is insertion order, so the front is the least recently used.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return { entry, now };
  }

  #delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= entry.size;
    end(entry);
  }

  /** Seconds `response` may be kept, or undefined when it must not be. */
  #lifetime(response: DnsMessage): number | undefined {
    // A truncated response is incomplete by definition (RFC 2181 §9).
    if (response.flags.tc) return undefined;
    const records = [...response.answers, ...response.authorities, ...response.additionals];
    const smallest = (limit: number): number => records.reduce((min, record) => Math.min(min, record.ttl ?? 0), limit);
    if (response.rcode === Rcode.NOERROR && response.answers.length > 0) return smallest(this.#maxTtl);
    if (response.rcode === Rcode.NXDOMAIN || response.rcode === Rcode.NOERROR) {
      // RFC 2308 §5: the negative TTL is the lesser of the SOA's own TTL and its MINIMUM field.
      const soa = response.authorities.find((record) => record.type === 'SOA');
      if (soa === undefined || soa.type !== 'SOA') return undefined;
      const negative = Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0);
      return smallest(Math.min(negative, this.#maxNegativeTtl));
    }
    // RFC 2308 §7.1 allows keeping SERVFAIL for up to 5 minutes; the stub never does: it would hide recovery.
    return undefined;
  }
}

function fresh(entry: Entry, now: number): CachedAnswer {
  const elapsed = Math.max(0, Math.floor((now - entry.storedAt) / 1000));
  return {
    response: entry.response,
    ttl: (ttl) => Math.max(0, ttl - elapsed),
    origin: { storedAt: entry.storedAt, expiresAt: entry.expiresAt, elapsed, live: () => entry.live, onEnd: (listener) => onEnd(entry, listener) },
  };
}

function onEnd(entry: Entry, listener: () => void): () => void {
  if (!entry.live) {
    listener();
    return () => undefined;
  }
  const ends = (entry.ends ??= new Set());
  ends.add(listener);
  return () => ends.delete(listener);
}

/** The entry left the cache: whoever keeps a copy of its answer hears it. */
function end(entry: Entry): void {
  entry.live = false;
  const ends = entry.ends;
  entry.ends = undefined;
  if (ends !== undefined) for (const listener of ends) listener();
}

function capTtl(record: DnsRecord, cap: number): DnsRecord {
  return { ...record, ttl: Math.min(record.ttl ?? 0, cap) };
}

function checkInteger(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new InvalidArgumentError(`invalid dns cache option "${name}": ${value}, expected an integer of at least ${min}`);
  }
  return value;
}
