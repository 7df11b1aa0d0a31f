import { EventEmitter } from 'node:events';
import type { IKeyValue, IWatchResponse, Namespace, Watcher } from 'etcd3';
import { Backoff } from '../core/backoff.js';
import { InvalidArgumentError, SrvlinkError, errorMessage } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { DEFAULT_SKYDNS_PREFIX } from '../skydns-model/key-path.js';
import { readEtcdEntry } from './etcd-entry-text.js';
import { readRange } from './etcd-range-read.js';
import { LeaseTracker } from './lease-tracker.js';
import { MemoryZoneStore } from './memory-zone-store.js';
import { FollowedChanges, type ZoneEntry, type ZoneStore } from './zone-store.js';

/**
 * What the store needs of an etcd client: an `Etcd3`, or a namespace of one.
 * Created, configured (endpoints, TLS, auth) and closed by the caller.
 */
export type EtcdZoneClient = Pick<Namespace, 'getAll' | 'watch' | 'leaseClient'>;

export interface EtcdZoneStoreOptions {
  client: EtcdZoneClient;
  /** etcd key prefix of the SkyDNS tree; default `/skydns`. Everything under `prefix + '/'` is read. */
  prefix?: string;
  /** Where loads, resyncs, skipped values and the loss of etcd are reported; default: nowhere. */
  logger?: Logger;
  /** The current time, ms since the epoch: lease ends are measured with it; default `Date.now`. */
  now?: () => number;
  /** Deadline of each etcd request (the range read, a lease lookup), ms; default 5000. */
  requestTimeoutMs?: number;
  /** First delay before reading again after etcd was lost (after one immediate try), ms; doubles up to `retryMaxMs`, jittered (`Backoff`); default 100. */
  retryMinMs?: number;
  /** Default 5000. */
  retryMaxMs?: number;
}

/** What changed; emitted after every applied watch batch and every resync. */
export type EtcdZoneChange =
  | {
      readonly cause: 'watch';
      /** The revision the index reflects now. */
      readonly revision: number;
      /** The keys put or deleted in this batch, in etcd's order (a key may appear twice). */
      readonly keys: readonly string[];
    }
  | {
      /** The whole index was replaced: anything may have changed. */
      readonly cause: 'resync';
      readonly revision: number;
    };

/** A fresh range read replaced the index. */
export interface EtcdZoneResync {
  /** Why: the watch broke, was cancelled (compaction), or etcd was unreachable. */
  readonly reason: string;
  readonly revision: number;
  readonly records: number;
  readonly malformed: number;
  /** How long the index was not kept current, ms. */
  readonly outageMs: number;
}

/** Events of an `EtcdZoneStore`: callers and tests await these instead of polling. */
export interface EtcdZoneStoreEvents {
  change: [EtcdZoneChange];
  resync: [EtcdZoneResync];
  /** etcd was lost (watch broken or cancelled); the last loaded index is still served. */
  disconnected: [Error];
}

const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
const DEFAULT_RETRY_MIN_MS = 100;
const DEFAULT_RETRY_MAX_MS = 5000;
/** How long `close()` waits for etcd to confirm a watch cancellation. */
const CANCEL_TIMEOUT_MS = 2000;
/** A key without a lease (etcd's `NoLease`). */
const NO_LEASE = '0';

/**
 * A `ZoneStore` that mirrors the SkyDNS tree in etcd (docs/architecture.md §4.2, §4.5):
 * one read of the prefix (in pages at one revision, `readRange`) builds an
 * in-memory index (records parsed once, malformed values skipped and
 * counted), then a watch from the next revision keeps it current; queries
 * never touch etcd.
 *
 * - Leases: a key with a lease carries when the lease ends (`expiresAt`), so
 *   answers never promise a TTL beyond it. etcd is asked once per lease and
 *   again when half of the time it gave is over (keepalives extend a lease
 *   without a key event); see `LeaseTracker`.
 * - Resilience: when the watch breaks (etcd restarted, member lost) or is
 *   cancelled (its revision was compacted), a fresh range read builds a new
 *   index that replaces the old one at once (never a mix), and a new watch
 *   starts after it. Until then, and while etcd is out of reach, the last
 *   loaded index is served (the "last good set").
 * - Events: `change` after every applied watch batch and every resync (push,
 *   for discovery), `resync`, `disconnected`.
 *
 * `start()` resolves once the first read is loaded and rejects (`ERR_ETCD`)
 * when it cannot be; `close()` stops the watch and timers, is safe twice, and
 * leaves the client open.
 */
export class EtcdZoneStore extends EventEmitter<EtcdZoneStoreEvents> implements ZoneStore {
  /** The normalized key prefix, e.g. `/skydns`. */
  readonly prefix: string;
  readonly #client: EtcdZoneClient;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #requestTimeoutMs: number;
  /** What is read and watched: the subtree under the prefix. */
  readonly #range: string;

  #index = new MemoryZoneStore();
  readonly #changes = new FollowedChanges();
  /** Stops listening to the contents served now (they tell of their own changes). */
  /** What `version` adds to the index's own: past every version the indexes replaced had. */
  #versionBase = 0;
  #leases: LeaseTracker;
  /** Lease lookups of indexes replaced already. */
  #retiredLeaseQueries = 0;
  #watcher: Watcher | undefined;
  /** Watch batches are applied one after another, in order (a batch may wait on lease lookups). */
  #applying: Promise<void> = Promise.resolve();
  #revision = 0;
  #connected = false;
  #synced = false;
  #lastError: Error | undefined;
  /** When the index stopped being kept current (ms since the epoch), while it is not. */
  #lostAt: number | undefined;
  #lostReason = '';
  #retryTimer: NodeJS.Timeout | undefined;
  /** The waits before reading again: none right after a healthy watch, then growing. */
  readonly #retry: Backoff;
  /** Bumped by every load attempt; a read that finds it changed drops its result. */
  #generation = 0;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #closed = false;

  constructor(options: EtcdZoneStoreOptions) {
    super();
    this.#changes.follow(this.#index, false);
    this.#client = options.client;
    const prefix = options.prefix ?? DEFAULT_SKYDNS_PREFIX;
    const trimmed = prefix.replace(/^\/+|\/+$/g, '');
    this.prefix = trimmed === '' ? '' : `/${trimmed}`;
    this.#range = `${this.prefix}/`;
    this.#logger = (options.logger ?? silentLogger).child({ etcdPrefix: this.#range });
    this.#now = options.now ?? Date.now;
    this.#requestTimeoutMs = positive('requestTimeoutMs', options.requestTimeoutMs, DEFAULT_REQUEST_TIMEOUT_MS);
    const retryMinMs = positive('retryMinMs', options.retryMinMs, DEFAULT_RETRY_MIN_MS);
    const retryMaxMs = positive('retryMaxMs', options.retryMaxMs, DEFAULT_RETRY_MAX_MS);
    this.#retry = new Backoff({ min: retryMinMs, max: retryMaxMs, immediate: true });
    if (retryMinMs > retryMaxMs) {
      throw new InvalidArgumentError(`invalid etcd zone option "retryMinMs": ${retryMinMs}, expected at most "retryMaxMs" (${retryMaxMs})`);
    }
    this.#leases = this.#newLeaseTracker();
  }

  /** Read the prefix and start watching it. Rejects with a `SrvlinkError` (`ERR_ETCD`) when etcd cannot be read. */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  /** Stop watching and every timer; the last index stays readable. The client is not closed. Safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  get malformed(): number {
    return this.#index.malformed;
  }

  /** How many valid records are served. */
  get size(): number {
    return this.#index.size;
  }

  /** Grows with every change of the index: a watch event applied, a lease end moved, a resync. */
  get version(): number {
    return this.#versionBase + this.#index.version;
  }

  onChange(listener: () => void): () => void {
    return this.#changes.add(listener);
  }

  /** The etcd revision the index reflects (the range read's, then each watch batch's); 0 before the first load. */
  get revision(): number {
    return this.#revision;
  }

  /** Whether a watch is established and keeping the index current right now. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Whether the index is loaded and no loss of etcd happened since (false while a resync is due). */
  get synced(): boolean {
    return this.#synced;
  }

  /** The last failure talking to etcd (kept after recovery, for status pages). */
  get lastError(): Error | undefined {
    return this.#lastError;
  }

  /** Why the index may be out of date right now (etcd out of reach), or undefined when a watch keeps it current. */
  get unavailable(): string | undefined {
    if (this.#synced) return undefined;
    if (this.#revision === 0) return 'not loaded yet';
    return `etcd unreachable since ${new Date(this.#lostAt ?? this.#now()).toISOString()}: ${this.#lastError ? errorMessage(this.#lastError) : this.#lostReason}`;
  }

  /** How many times etcd was asked how long a lease has left, since the store was created. */
  get leaseQueries(): number {
    return this.#retiredLeaseQueries + this.#leases.queries;
  }

  /** The values skipped right now, in key order. */
  malformedValues(): ReturnType<MemoryZoneStore['malformedValues']> {
    return this.#index.malformedValues();
  }

  subtree(keyPrefix: string): readonly ZoneEntry[] {
    return this.#index.subtree(keyPrefix);
  }

  get(key: string): ZoneEntry | undefined {
    return this.#index.get(key);
  }

  async #start(): Promise<void> {
    try {
      await this.#load('start');
    } catch (err) {
      await this.close();
      throw new SrvlinkError('ERR_ETCD', `cannot load skydns records from etcd prefix "${this.#range}": ${errorMessage(err)}`, { cause: err });
    }
    if (this.#closed) throw new SrvlinkError('ERR_ETCD', `cannot load skydns records from etcd prefix "${this.#range}": the store was closed`);
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#generation++;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#leases.close();
    this.#connected = false;
    const watcher = this.#watcher;
    this.#watcher = undefined;
    if (watcher) await cancelWatcher(watcher, CANCEL_TIMEOUT_MS);
  }

  /**
   * One read of the whole subtree (paged, at one revision) → a new index, lease ends looked up,
   * swapped in at once; then a watch from the next revision. Rejects when
   * etcd cannot be read; resolves without effect when overtaken (closed, or
   * another load started).
   */
  async #load(reason: string): Promise<void> {
    const generation = ++this.#generation;
    const response = await readRange(this.#client, this.#range, () => this.#callOptions());
    if (generation !== this.#generation) return;
    const revision = response.revision;
    const leases = this.#newLeaseTracker();
    await leases.ensure(leasesOf(response.kvs));
    if (generation !== this.#generation) {
      leases.close();
      return;
    }
    const index = new MemoryZoneStore();
    for (const kv of response.kvs) {
      const { key, value, error } = readEtcdEntry(kv.key, kv.value);
      if (error) {
        index.reject(key, error);
        continue;
      }
      const expiresAt = kv.lease === NO_LEASE ? undefined : leases.attach(kv.lease, key, value);
      if (index.put(key, value, expiresAt) !== undefined) leases.detach(key);
    }
    for (const key of response.oversized) {
      const { key: text } = readEtcdEntry(key, Buffer.alloc(0));
      index.reject(text, new SrvlinkError('ERR_SKYDNS_RECORD', `cannot read skydns record at key "${text}": the value is larger than an etcd response may be`));
    }
    leases.prune();

    // The swap: the old index and its leases go together, in one step.
    const previous = this.#index;
    this.#retiredLeaseQueries += this.#leases.queries;
    this.#leases.close();
    this.#leases = leases;
    this.#versionBase = this.version + 1;
    this.#index = index;
    this.#changes.follow(index);
    this.#revision = revision;
    this.#synced = true;
    this.#logMalformed(index, reason === 'start' ? undefined : previous);

    // Watch before telling anyone: a listener that throws must not leave the index unwatched.
    this.#watch(revision + 1);
    const fields = { records: index.size, malformed: index.malformed, revision, leases: leases.size };
    if (reason === 'start') {
      this.#logger.info('etcd zone loaded', fields);
    } else {
      const outageMs = this.#lostAt === undefined ? 0 : Math.max(0, this.#now() - this.#lostAt);
      this.#lostAt = undefined;
      this.#logger.info('etcd zone resynced', { ...fields, reason, outageMs });
      this.emit('resync', { reason, revision, records: index.size, malformed: index.malformed, outageMs });
      this.emit('change', { cause: 'resync', revision });
    }
  }

  #watch(fromRevision: number): void {
    const watcher = this.#client.watch().prefix(this.#range).startRevision(String(fromRevision)).watcher();
    this.#watcher = watcher;
    watcher.on('connected', () => {
      if (watcher !== this.#watcher) return;
      this.#connected = true;
      // A watch that works ends the backoff: the next loss is answered at once.
      this.#retry.reset();
    });
    watcher.on('data', (response: IWatchResponse) => {
      if (watcher !== this.#watcher) return;
      this.#applying = this.#applying
        .then(() => this.#apply(watcher, response))
        .catch((err: unknown) => this.#logger.error('cannot apply etcd watch events', { error: errorMessage(err) }));
    });
    // Disconnected: the stream broke (etcd restarted, member lost). Error: etcd cancelled
    // the watch, e.g. its revision was compacted. End: cancelled without us asking.
    // Only a disconnected watcher is still registered with the client (which would resume it).
    watcher.on('disconnected', (err: Error) => this.#lost(watcher, 'watch disconnected', err, true));
    watcher.on('error', (err: Error) => this.#lost(watcher, 'watch cancelled', err, false));
    watcher.on('end', () => this.#lost(watcher, 'watch ended', new SrvlinkError('ERR_ETCD', 'etcd ended the watch'), false));
  }

  /** Apply one watch response as a unit: no reader sees half of it. */
  async #apply(watcher: Watcher, response: IWatchResponse): Promise<void> {
    const leases = this.#leases;
    const unknown = response.events.filter((event) => event.type === 'Put' && event.kv.lease !== NO_LEASE && !leases.has(event.kv.lease));
    if (unknown.length > 0) await leases.ensure(unknown.map((event) => event.kv.lease));
    // Overtaken by a resync: its range read already holds this batch.
    if (watcher !== this.#watcher || leases !== this.#leases) return;
    const keys: string[] = [];
    for (const { type, kv } of response.events) {
      // A delete carries no value: only its key is read.
      const { key, value, error: unreadable } = readEtcdEntry(kv.key, type === 'Delete' ? Buffer.alloc(0) : kv.value);
      keys.push(key);
      if (type === 'Delete') {
        this.#index.delete(key);
        leases.detach(key);
        continue;
      }
      if (unreadable) {
        this.#index.reject(key, unreadable);
        leases.detach(key);
        this.#logger.warn('skipping malformed skydns record', { key, error: unreadable.message });
        continue;
      }
      let expiresAt: number | undefined;
      if (kv.lease === NO_LEASE) leases.detach(key);
      else expiresAt = leases.attach(kv.lease, key, value);
      const error = this.#index.put(key, value, expiresAt);
      if (error) {
        leases.detach(key);
        this.#logger.warn('skipping malformed skydns record', { key, error: error.message });
      }
    }
    if (unknown.length > 0) leases.prune();
    this.#revision = Math.max(this.#revision, Number(response.header.revision));
    // Progress notifications carry no events: nothing changed.
    if (keys.length > 0) this.emit('change', { cause: 'watch', revision: this.#revision, keys });
  }

  /** The watch is gone: keep serving the index, drop the watch, read everything again (with backoff). */
  #lost(watcher: Watcher, reason: string, err: Error, registered: boolean): void {
    if (watcher !== this.#watcher || this.#closed) return;
    this.#watcher = undefined;
    // Ours, not the client's, to resume: a fresh read follows, then a watch from its revision.
    if (registered) void cancelWatcher(watcher, CANCEL_TIMEOUT_MS);
    this.#connected = false;
    this.#synced = false;
    this.#lastError = err;
    this.#lostReason = reason;
    if (this.#lostAt === undefined) {
      this.#lostAt = this.#now();
      this.#logger.warn('lost etcd, serving the last loaded records', { reason, error: errorMessage(err), revision: this.#revision });
      this.emit('disconnected', err);
    }
    // Right away the first time (a broken stream usually means etcd restarted, or
    // another member can serve); with growing delays while reads or watches keep failing.
    this.#scheduleResync(this.#retry.next());
  }

  #scheduleResync(delayMs: number): void {
    if (this.#closed) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#resync();
    }, delayMs);
  }

  async #resync(): Promise<void> {
    try {
      await this.#load(this.#lostReason);
    } catch (err) {
      if (this.#closed) return;
      this.#lastError = err as Error;
      const delay = this.#retry.next();
      this.#logger.debug('cannot read etcd yet, serving the last loaded records', { error: errorMessage(err), retryInMs: delay });
      this.#scheduleResync(delay);
    }
  }

  #newLeaseTracker(): LeaseTracker {
    const tracker: LeaseTracker = new LeaseTracker({
      now: this.#now,
      query: async (lease) => {
        const response = await this.#client.leaseClient.leaseTimeToLive({ ID: lease }, this.#callOptions());
        return Number(response.TTL);
      },
      onRefresh: (_lease, expiresAt, keys) => {
        // Only the tracker of the index being served moves lease ends.
        if (tracker !== this.#leases) return;
        for (const [key, value] of keys) this.#index.put(key, value, expiresAt);
      },
    });
    return tracker;
  }

  #callOptions(): { deadline: number } {
    return { deadline: Date.now() + this.#requestTimeoutMs };
  }

  /** Report each malformed value once: on load, and on resync only those the previous index did not have. */
  #logMalformed(index: MemoryZoneStore, previous: MemoryZoneStore | undefined): void {
    const known = new Set(previous?.malformedValues().map(({ key }) => key));
    for (const { key, error } of index.malformedValues()) {
      if (!known.has(key)) this.#logger.warn('skipping malformed skydns record', { key, error: error.message });
    }
  }
}

function leasesOf(kvs: readonly IKeyValue[]): string[] {
  return kvs.filter((kv) => kv.lease !== NO_LEASE).map((kv) => kv.lease);
}

/** Cancel a watch without waiting on an etcd that may not answer. */
async function cancelWatcher(watcher: Watcher, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  try {
    await Promise.race([watcher.cancel().catch(() => undefined), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function positive(option: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentError(`invalid etcd zone option "${option}": ${String(value)}, expected a positive number of ms`);
  }
  return value;
}
