import { InvalidArgumentError } from '../core/errors.js';
import type { DnsMessage } from './codec.js';
import type { DnsClientInfo } from './handler.js';
import { emptyQueryKey, readQueryKey, sameQuestion, type QueryKey } from './query-key.js';
import { recordTtlOffsets } from './record-ttls.js';
import type { CachedReply, NativeHits, NativeReplyCache, NativeReplyTable, ReplyNetwork } from './reply-cache.js';
import { HEADER_LENGTH, TC_BIT } from './wire.js';

/**
 * What the part that made a reply says about it, so that a copy of its bytes
 * can stand in for it: how long the chain would still give the same reply.
 */
export interface ReplyOrigin {
  /** Whether the chain, asked at `now` (ms since the epoch), would give this very reply (its TTLs aged as `aging` says). */
  fresh(now: number): boolean;
  /**
   * For a reply made from a cache whose TTLs count down: when the TTLs start
   * counting (ms since the epoch) and the whole seconds already taken off the
   * reply's TTLs. Absent: the TTLs stand still (an authoritative answer).
   */
  readonly aging?: { readonly storedAt: number; readonly elapsed: number };
  /**
   * For a copy served where nothing asks `fresh` (a `NativeReplyTable`): the
   * moment (ms since the epoch) from which `fresh` is false at the latest,
   * and a way to hear at once when it turns false before then (its source
   * replaced, the zone changed); `onEnd` returns how to stop listening.
   * Absent: the reply is served from JavaScript only.
   */
  readonly until?: { readonly at: number; onEnd(listener: () => void): () => void };
}

export interface WireReplyCacheOptions {
  /** Where a reply came from, when it may be kept (undefined: never kept). Asked once per reply the chain gives. */
  origin: (reply: DnsMessage) => ReplyOrigin | undefined;
  /** Entries at most (one per query shape: spelling, EDNS, size, transport); the least recently used go first. */
  maxEntries: number;
  /** Bytes of encoded replies at most. */
  maxBytes: number;
  /** Clock in ms since the epoch: the one the origins are judged by. */
  now?: () => number;
  /** Whether a client may be answered (the stub's allow-from); default everyone. */
  allows?: (address: string) => boolean;
  /** The networks `allows` lets in, for a native table; without them a cache with `allows` is not mirrored. */
  allowNetworks?: readonly ReplyNetwork[];
  /** Told of the queries answered from here, `count` at a time, with the origin of the reply they got (the owner's counters). */
  onHit?: (count: number, origin: ReplyOrigin) => void;
}

interface Entry {
  /** Its key (`readQueryKey`): the head, the question's bytes and their hash. */
  head: number;
  question: Buffer;
  hash: number;
  /** The next entry of the same hash (they are rare: 32 bits of hash, at most tens of thousands of entries). */
  next: Entry | undefined;
  /** The encoded reply, TTLs as of `shown` seconds of age; ID rewritten per hit. */
  template: Buffer;
  origin: ReplyOrigin;
  /** Where each record's TTL is, and its value with no age taken off (only for an origin whose TTLs age). */
  ttlOffsets: readonly number[];
  ttls: readonly number[];
  shown: number;
  type: string;
  rcode: number;
  truncated: boolean;
  /** Its copies in the native table: the query shapes (bytes after the ID) put there, under one id. */
  native: { id: number; keys: Buffer[]; off: () => void } | undefined;
}

/** Query shapes of one entry put in a native table at most (RD, Z and payload size spelled differently, one reply). */
const NATIVE_KEYS_MAX = 8;

/**
 * Encoded replies keyed by the raw query (`queryKey`: the question's bytes,
 * the flags, EDNS and size that change a reply, the transport), in front of
 * a `DnsServer`'s chain (docs/architecture.md §4.1, §4.5): a repeated query
 * is answered without decoding, running the chain or encoding. The template
 * is copied, the client's ID written in and, for replies made from a cache,
 * the TTLs aged by the whole seconds since the source entry was stored, as
 * that cache ages them. Only replies their origin vouches for are kept, and
 * one is served only while the origin says the chain would still give it.
 * Bounded by entries and bytes; `clear()` drops all.
 */
export class WireReplyCache implements NativeReplyCache {
  /** By the hash of their key, least recently used first; entries of one hash chained. */
  readonly #entries = new Map<number, Entry>();
  #count = 0;
  /** Where `lookup` and `store` read a query's key: no object per query. */
  readonly #key: QueryKey = emptyQueryKey();
  readonly #origin: (reply: DnsMessage) => ReplyOrigin | undefined;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #now: () => number;
  readonly #allows: ((address: string) => boolean) | undefined;
  readonly #onHit: ((count: number, origin: ReplyOrigin) => void) | undefined;
  readonly #allowNetworks: readonly ReplyNetwork[] | undefined;
  readonly #ownClock: boolean;
  #native: NativeReplyTable | undefined;
  #nativeIds = 0;
  /** What each id put in the native table counts as, until its hits are taken after its entry went. */
  readonly #nativeMeta = new Map<number, { type: string; rcode: number; truncated: boolean; origin: ReplyOrigin; gone: boolean }>();
  /** Ids whose entry went since the last take: their meta goes at the next one (not a scan of every id each time). */
  readonly #goneIds: number[] = [];
  #bytes = 0;
  /** Queries answered from here. */
  hits = 0;

  constructor(options: WireReplyCacheOptions) {
    for (const [name, value] of [['maxEntries', options.maxEntries], ['maxBytes', options.maxBytes]] as const) {
      if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError(`invalid wire cache option "${name}": ${value}, expected an integer of at least 1`);
    }
    this.#origin = options.origin;
    this.#maxEntries = options.maxEntries;
    this.#maxBytes = options.maxBytes;
    this.#now = options.now ?? Date.now;
    this.#allows = options.allows;
    this.#onHit = options.onHit;
    this.#allowNetworks = options.allowNetworks;
    this.#ownClock = options.now !== undefined;
  }

  attachNative(table: NativeReplyTable | undefined): boolean {
    if (table !== undefined && (this.#ownClock || (this.#allows !== undefined && this.#allowNetworks === undefined))) return false;
    for (const entry of this.#entries.values()) this.#unmirror(entry);
    this.#native?.clear();
    this.#native = table;
    table?.allow(this.#allows === undefined ? undefined : this.#allowNetworks);
    return true;
  }

  nativeHits(pairs: readonly number[]): NativeHits[] {
    const counted: NativeHits[] = [];
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      const meta = this.#nativeMeta.get(pairs[i] as number);
      const count = pairs[i + 1] as number;
      if (meta === undefined || count <= 0) continue;
      this.hits += count;
      this.#onHit?.(count, meta.origin);
      counted.push({ type: meta.type, rcode: meta.rcode, truncated: meta.truncated, count });
    }
    // The table reports an entry's last hits with the first take after it went.
    for (const id of this.#goneIds) this.#nativeMeta.delete(id);
    this.#goneIds.length = 0;
    return counted;
  }

  get size(): number {
    return this.#count;
  }

  get bytes(): number {
    return this.#bytes;
  }

  lookup(query: Buffer, client: DnsClientInfo): CachedReply | undefined {
    if (this.#count === 0) return undefined;
    const key = this.#key;
    if (!readQueryKey(query, client.transport, key)) return undefined;
    const entry = this.#find(query, key);
    if (entry === undefined) return undefined;
    const now = this.#now();
    if (!entry.origin.fresh(now)) {
      this.#delete(entry);
      return undefined;
    }
    if (this.#allows !== undefined && !this.#allows(client.address)) return undefined;
    const aging = entry.origin.aging;
    if (aging !== undefined) {
      const elapsed = Math.max(0, Math.floor((now - aging.storedAt) / 1000));
      if (elapsed !== entry.shown) {
        for (let i = 0; i < entry.ttlOffsets.length; i++) entry.template.writeUInt32BE(Math.max(0, (entry.ttls[i] as number) - elapsed), entry.ttlOffsets[i] as number);
        entry.shown = elapsed;
      }
    }
    const wire = Buffer.allocUnsafe(entry.template.length);
    // TypedArray set: Buffer's copy() checks its arguments at a cost that shows per query.
    wire.set(entry.template);
    wire[0] = query[0] as number;
    wire[1] = query[1] as number;
    this.#touch(entry);
    this.hits += 1;
    this.#onHit?.(1, entry.origin);
    if (client.transport === 'udp') this.#mirror(entry, query);
    return { wire, type: entry.type, rcode: entry.rcode, truncated: entry.truncated };
  }

  store(query: Buffer, client: DnsClientInfo, reply: DnsMessage, wire: Buffer): void {
    const origin = this.#origin(reply);
    if (origin === undefined || wire.length > this.#maxBytes) return;
    const key = this.#key;
    if (!readQueryKey(query, client.transport, key)) return;
    const aging = origin.aging;
    let ttlOffsets: readonly number[] = [];
    if (aging !== undefined) {
      const offsets = recordTtlOffsets(wire);
      if (offsets === undefined) return;
      ttlOffsets = offsets;
    }
    const previous = this.#find(query, key);
    if (previous !== undefined) this.#delete(previous);
    const elapsed = aging?.elapsed ?? 0;
    const entry: Entry = {
      head: key.head,
      question: Buffer.from(query.subarray(HEADER_LENGTH, key.questionEnd)),
      hash: key.hash,
      next: undefined,
      template: Buffer.from(wire),
      origin,
      ttlOffsets,
      ttls: ttlOffsets.map((offset) => wire.readUInt32BE(offset) + elapsed),
      shown: elapsed,
      type: reply.questions[0]?.type ?? '',
      rcode: reply.rcode,
      truncated: (wire.readUInt16BE(2) & TC_BIT) !== 0,
      native: undefined,
    };
    // First of its chain, its chain last in the map: the most recently used.
    entry.next = this.#entries.get(entry.hash);
    this.#entries.delete(entry.hash);
    this.#entries.set(entry.hash, entry);
    this.#count++;
    this.#bytes += wire.length;
    if (client.transport === 'udp') this.#mirror(entry, query);
    while (this.#count > this.#maxEntries || this.#bytes > this.#maxBytes) {
      const oldest = this.#entries.values().next().value;
      if (oldest === undefined) break;
      // The oldest chain's least recently used (its last) first: the map orders chains, not entries.
      let last = oldest;
      while (last.next !== undefined) last = last.next;
      this.#delete(last);
    }
  }

  /** Drop every entry. */
  clear(): void {
    for (const entry of this.#entries.values()) this.#unmirror(entry, false);
    this.#native?.clear();
    this.#entries.clear();
    this.#count = 0;
    this.#bytes = 0;
  }

  /** The entry of `query`, whose key was read into `key`. */
  #find(query: Buffer, key: QueryKey): Entry | undefined {
    for (let entry = this.#entries.get(key.hash); entry !== undefined; entry = entry.next) {
      if (entry.head === key.head && sameQuestion(entry.question, query, key)) return entry;
    }
    return undefined;
  }

  /** Whether `entry` is in the cache (not taken out since it was found). */
  #has(entry: Entry): boolean {
    for (let known = this.#entries.get(entry.hash); known !== undefined; known = known.next) if (known === entry) return true;
    return false;
  }

  /** Make `entry` the most recently used: first of its chain, the chain last in the map. */
  #touch(entry: Entry): void {
    const first = this.#entries.get(entry.hash) as Entry;
    this.#entries.delete(entry.hash);
    if (first !== entry) {
      let before = first;
      while (before.next !== entry && before.next !== undefined) before = before.next;
      before.next = entry.next;
      entry.next = first;
    }
    this.#entries.set(entry.hash, entry);
  }

  #delete(entry: Entry): void {
    const first = this.#entries.get(entry.hash);
    if (first === entry) {
      if (entry.next === undefined) this.#entries.delete(entry.hash);
      else this.#entries.set(entry.hash, entry.next);
    } else {
      let before = first;
      while (before !== undefined && before.next !== entry) before = before.next;
      // Not in the cache (taken out already): nothing to count again.
      if (before === undefined) return;
      before.next = entry.next;
    }
    entry.next = undefined;
    this.#count--;
    this.#unmirror(entry);
    this.#bytes -= entry.template.length;
  }

  /**
   * Put the query shape of `query` (its bytes after the ID) for `entry` in the
   * native table, when there is one and the origin can say when the reply ends.
   */
  #mirror(entry: Entry, query: Buffer): void {
    const table = this.#native;
    const until = entry.origin.until;
    if (table === undefined || until === undefined) return;
    const shape = query.subarray(2);
    let native = entry.native;
    if (native === undefined) {
      const id = (this.#nativeIds = (this.#nativeIds + 1) >>> 0);
      native = { id, keys: [], off: () => undefined };
      entry.native = native;
      this.#nativeMeta.set(id, { type: entry.type, rcode: entry.rcode, truncated: entry.truncated, origin: entry.origin, gone: false });
      // The origin ends before its time (the source replaced, the zone changed): the entry goes, here and in the table.
      native.off = until.onEnd(() => {
        if (this.#has(entry)) this.#delete(entry);
        else this.#unmirror(entry);
      });
      // An origin that had ended already took the entry at once.
      if (!this.#has(entry)) return;
    }
    if (native.keys.length >= NATIVE_KEYS_MAX || native.keys.some((known) => known.equals(shape))) return;
    const copy = Buffer.from(shape);
    const storedAt = entry.origin.aging?.storedAt;
    if (table.put(native.id, copy, entry.template, entry.ttlOffsets, entry.ttls, storedAt, until.at)) native.keys.push(copy);
  }

  /** Take `entry`'s copies out of the native table (`each` false: the whole table is cleared anyway). */
  #unmirror(entry: Entry, each = true): void {
    const native = entry.native;
    if (native === undefined) return;
    entry.native = undefined;
    native.off();
    if (each) for (const key of native.keys) this.#native?.delete(key);
    const meta = this.#nativeMeta.get(native.id);
    if (meta !== undefined && !meta.gone) {
      meta.gone = true;
      this.#goneIds.push(native.id);
    }
  }
}
