import { backoffDelay } from '../core/backoff.js';

/**
 * Ask etcd how much time a lease has left, in whole seconds (etcd's
 * `LeaseTimeToLive`: the lease ends in under TTL + 1 s); negative when etcd
 * knows no such lease (expired or revoked). Rejects when etcd cannot be asked.
 */
export type LeaseQuery = (lease: string) => Promise<number>;

export interface LeaseTrackerOptions {
  query: LeaseQuery;
  /** The current time, ms since the epoch. */
  now: () => number;
  /**
   * A refresh moved the end of `lease`: the keys attached to it (key → the
   * value last put) must be re-stored with `expiresAt`. Not called after `close()`.
   */
  onRefresh: (lease: string, expiresAt: number, keys: ReadonlyMap<string, string>) => void;
  /** At most this many lease lookups at once; default 16. */
  concurrency?: number;
  /** Never re-ask about a lease sooner than this, ms; default 500. */
  minRefreshMs?: number;
  /** After a failed lookup, ask again after about this long, doubling up to `maxRetryMs` (jittered, `backoffDelay`); default 1000. */
  minRetryMs?: number;
  /** Default 30 000. */
  maxRetryMs?: number;
  /** Jitter of the retries, [0, 1); default `Math.random`. */
  random?: () => number;
}

interface LeaseState {
  /** When the lease ends at the earliest, as far as we know; ms since the epoch. */
  expiresAt: number;
  /** Keys attached to the lease and the values last put under them. */
  readonly keys: Map<string, string>;
  timer: NodeJS.Timeout | undefined;
  failures: number;
  /** etcd said the lease no longer exists: nothing left to refresh. */
  gone: boolean;
}

const DEFAULT_CONCURRENCY = 16;
const DEFAULT_MIN_REFRESH_MS = 500;
const DEFAULT_MIN_RETRY_MS = 1000;
const DEFAULT_MAX_RETRY_MS = 30_000;
/** Ask again while this much of the estimate is still left, so the answered TTL (whole seconds) stays at 1 or more. */
const REFRESH_MARGIN_MS = 1500;

/**
 * When the leases of the keys in an etcd-backed zone end, so answers never
 * promise a TTL beyond them (docs/architecture.md §4.5). etcd is asked once per lease,
 * not per key or per query, and asked again when half of the time it gave is
 * over: keepalives extend a lease without any key event, and only asking
 * tells. A lease's end is a lower bound: the time is taken before the
 * question is sent and etcd rounds down, so an answer's TTL never outlives
 * the lease; a revoked or expired lease deletes its keys, which the watch
 * reports.
 */
export class LeaseTracker {
  readonly #options: LeaseTrackerOptions;
  readonly #leases = new Map<string, LeaseState>();
  /** key → its lease. */
  readonly #keyLeases = new Map<string, string>();
  readonly #inFlight = new Map<string, Promise<void>>();
  #queries = 0;
  #closed = false;

  constructor(options: LeaseTrackerOptions) {
    this.#options = options;
  }

  /** How many times etcd has been asked about a lease (first lookups, refreshes and retries). */
  get queries(): number {
    return this.#queries;
  }

  /** How many leases are tracked. */
  get size(): number {
    return this.#leases.size;
  }

  /** Whether the end of `lease` is known (or being asked for). */
  has(lease: string): boolean {
    return this.#leases.has(lease) || this.#inFlight.has(lease);
  }

  /**
   * Look up every lease of `leases` not known yet, a few at a time. Never
   * rejects: a lease etcd could not be asked about gets an end of now (a TTL
   * of 0, the only safe promise) and is asked again a little later.
   */
  async ensure(leases: Iterable<string>): Promise<void> {
    const waiting: Promise<void>[] = [];
    const todo: string[] = [];
    for (const lease of new Set(leases)) {
      const pending = this.#inFlight.get(lease);
      if (pending) waiting.push(pending);
      else if (!this.#leases.has(lease)) todo.push(lease);
    }
    const worker = async (): Promise<void> => {
      for (let lease = todo.pop(); lease !== undefined; lease = todo.pop()) await this.#lookup(lease);
    };
    const workers = Math.min(todo.length, this.#options.concurrency ?? DEFAULT_CONCURRENCY);
    await Promise.all([...waiting, ...Array.from({ length: workers }, worker)]);
  }

  /**
   * Attach `key` (holding `value`) to `lease`, detaching it from any other
   * lease; returns when the lease ends. A lease not looked up yet counts as
   * ending now until it is.
   */
  attach(lease: string, key: string, value: string): number {
    const previous = this.#keyLeases.get(key);
    if (previous !== undefined && previous !== lease) this.detach(key);
    let state = this.#leases.get(lease);
    if (!state) {
      state = this.#newState(lease, this.#options.now());
      this.#schedule(lease, state, this.#options.minRetryMs ?? DEFAULT_MIN_RETRY_MS);
    }
    state.keys.set(key, value);
    this.#keyLeases.set(key, lease);
    return state.expiresAt;
  }

  /** `key` no longer has a lease (deleted, or put without one). A lease left without keys is forgotten. */
  detach(key: string): void {
    const lease = this.#keyLeases.get(key);
    if (lease === undefined) return;
    this.#keyLeases.delete(key);
    const state = this.#leases.get(lease);
    if (!state) return;
    state.keys.delete(key);
    if (state.keys.size === 0) this.#forget(lease, state);
  }

  /** Forget leases no key is attached to (looked up for a value that turned out malformed, or deleted meanwhile). */
  prune(): void {
    for (const [lease, state] of this.#leases) if (state.keys.size === 0) this.#forget(lease, state);
  }

  /** Stop every timer; results still on their way are dropped. Safe twice. */
  close(): void {
    this.#closed = true;
    for (const state of this.#leases.values()) clearTimeout(state.timer);
    this.#leases.clear();
    this.#keyLeases.clear();
  }

  #lookup(lease: string): Promise<void> {
    let pending = this.#inFlight.get(lease);
    if (!pending) {
      pending = this.#ask(lease).finally(() => this.#inFlight.delete(lease));
      this.#inFlight.set(lease, pending);
    }
    return pending;
  }

  async #ask(lease: string): Promise<void> {
    // Taken before asking: the time etcd reports is left at some later instant,
    // so measuring from here can only err on the short side.
    const sentAt = this.#options.now();
    this.#queries++;
    let ttl: number | undefined;
    try {
      ttl = await this.#options.query(lease);
    } catch {
      ttl = undefined;
    }
    if (this.#closed) return;
    let state = this.#leases.get(lease);
    const known = state !== undefined;
    state ??= this.#newState(lease, sentAt);
    if (ttl === undefined) {
      // Keep what we knew: a lease is never shortened, only revoked (and then the watch deletes its keys).
      state.failures++;
      const min = this.#options.minRetryMs ?? DEFAULT_MIN_RETRY_MS;
      this.#schedule(lease, state, backoffDelay(state.failures, { min, max: Math.max(min, this.#options.maxRetryMs ?? DEFAULT_MAX_RETRY_MS), random: this.#options.random }));
      return;
    }
    state.failures = 0;
    const before = state.expiresAt;
    if (ttl < 0) {
      // Expired or revoked: its keys are being deleted; until the watch says so, promise nothing.
      state.gone = true;
      state.expiresAt = Math.min(state.expiresAt, sentAt);
      // Nothing to refresh, but a lease no key is attached to (its key deleted while it was looked up) must not stay forever.
      this.#schedule(lease, state, this.#options.minRefreshMs ?? DEFAULT_MIN_REFRESH_MS);
    } else {
      state.expiresAt = Math.max(state.expiresAt, sentAt + ttl * 1000);
      this.#schedule(lease, state, refreshDelay(ttl * 1000, this.#options.minRefreshMs ?? DEFAULT_MIN_REFRESH_MS));
    }
    if (known && state.expiresAt !== before && state.keys.size > 0) {
      this.#options.onRefresh(lease, state.expiresAt, state.keys);
    }
  }

  #newState(lease: string, expiresAt: number): LeaseState {
    const state: LeaseState = { expiresAt, keys: new Map(), timer: undefined, failures: 0, gone: false };
    this.#leases.set(lease, state);
    return state;
  }

  #schedule(lease: string, state: LeaseState, delayMs: number): void {
    clearTimeout(state.timer);
    state.timer = setTimeout(() => {
      state.timer = undefined;
      if (this.#closed || this.#leases.get(lease) !== state) return;
      if (state.keys.size === 0) this.#forget(lease, state);
      else if (!state.gone) void this.#lookup(lease);
    }, delayMs);
    // The watch keeps the process alive while the store runs; a refresh alone should not.
    state.timer.unref();
  }

  #forget(lease: string, state: LeaseState): void {
    clearTimeout(state.timer);
    if (this.#leases.get(lease) === state) this.#leases.delete(lease);
  }
}

/**
 * When to ask again about a lease with `leftMs` left: once half of it is
 * over, and at the latest `REFRESH_MARGIN_MS` before the estimate runs out.
 * A lease kept alive (keepalives come every TTL/3 or so) then never looks
 * like it is ending, and a lease is asked about every TTL/2 or so: queries
 * grow with the number of leases, not keys or queries.
 */
function refreshDelay(leftMs: number, minMs: number = DEFAULT_MIN_REFRESH_MS): number {
  return Math.max(minMs, Math.min(leftMs / 2, leftMs - REFRESH_MARGIN_MS));
}
