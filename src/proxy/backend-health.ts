import { backoffDelay } from '../core/backoff.js';

/** How passive health judges backends; every field is required (the forwarder fills in defaults). */
export interface BackendHealthOptions {
  /** Consecutive connect failures that eject a backend (≥ 1). */
  ejectAfter: number;
  /** Length of the first ejection, ms; each further ejection doubles it. */
  ejectBase: number;
  /** Ejections never last longer than this, ms. */
  ejectMax: number;
  /** Current time in ms (any monotonic clock); injected so tests move time by hand. */
  now: () => number;
}

/** A change worth one log line, returned by `recordFailure` / `recordSuccess`. */
export type HealthChange =
  | {
      kind: 'ejected';
      key: string;
      /** Consecutive connect failures so far. */
      failures: number;
      /** How many times in a row this backend has been ejected, this time included. */
      ejections: number;
      /** How long this ejection lasts, ms. */
      duration: number;
    }
  | {
      kind: 'restored';
      key: string;
      /** How many times it had been ejected before this success. */
      ejections: number;
    };

/**
 * Whether a new connection may dial a backend: `open` (no ejection on
 * record), `ejected` (skip it), `probe` (its ejection ran out: one trial
 * connection may dial it, see `startProbe`), `probing` (that trial is under
 * way: skip it until it ends).
 */
export type Admission = 'open' | 'ejected' | 'probe' | 'probing';

/** What is known about one backend, for status pages and tests. */
export interface BackendHealthEntry {
  key: string;
  failures: number;
  ejections: number;
  /** Ms left in the current ejection; 0 when the backend is not ejected. */
  ejectedFor: number;
  /** A trial connection is dialing it (half-open). */
  probing: boolean;
}

interface Entry {
  failures: number;
  ejections: number;
  /** End of the latest ejection; kept after it expires so one more failure re-ejects at once. */
  until: number | undefined;
  /** A trial connection holds the backend's one half-open slot. */
  probing: boolean;
}

/**
 * Passive health of backends, keyed by `address:port` (docs/architecture.md §4.3): a
 * backend that fails `ejectAfter` connects in a row is ejected for
 * `ejectBase × 2^(ejections − 1)` ms, capped at `ejectMax`. When the
 * ejection has run out the backend is half-open: exactly one trial
 * connection may dial it (`startProbe`) while every other keeps skipping it;
 * the trial's failure ejects it again for twice as long (it has not proven
 * anything yet), its success forgets everything.
 *
 * No I/O and no timers: time comes from the injected `now`, so it is tested
 * with tables. Only backends with a failure on record take memory.
 */
export class BackendHealth {
  #options: BackendHealthOptions;
  readonly #entries = new Map<string, Entry>();
  /** Entries with an ejection on record (`until` set): while there are none, every backend is `open`. */
  #ejected = 0;

  constructor(options: BackendHealthOptions) {
    this.#options = options;
  }

  /** New thresholds (a config reload); backends on record keep their counts, the next ejection uses these. */
  configure(options: Omit<BackendHealthOptions, 'now'>): void {
    this.#options = { ...options, now: this.#options.now };
  }

  /** Whether every backend's admission is `open` (none ejected, none half-open): O(1), for the path of every new connection. */
  allOpen(): boolean {
    return this.#ejected === 0;
  }

  /** Whether `key` is ejected right now. */
  isEjected(key: string): boolean {
    const until = this.#entries.get(key)?.until;
    return until !== undefined && this.#options.now() < until;
  }

  /** Whether a new connection may dial `key` now, and how (see `Admission`). */
  admission(key: string): Admission {
    const entry = this.#entries.get(key);
    if (entry?.until === undefined) return 'open';
    if (this.#options.now() < entry.until) return 'ejected';
    return entry.probing ? 'probing' : 'probe';
  }

  /**
   * Take the half-open slot of `key`: true when its ejection has run out and
   * no other trial holds it. The caller dials, records the outcome
   * (`recordSuccess` / `recordFailure`), then calls `endProbe` whatever happened.
   */
  startProbe(key: string): boolean {
    const entry = this.#entries.get(key);
    if (entry === undefined || this.admission(key) !== 'probe') return false;
    entry.probing = true;
    return true;
  }

  /** Give the half-open slot of `key` back (after the trial's outcome, or when it was abandoned). */
  endProbe(key: string): void {
    const entry = this.#entries.get(key);
    if (entry) entry.probing = false;
  }

  /** Count a failed connect; returns the ejection it causes, if any. */
  recordFailure(key: string): HealthChange | undefined {
    const entry = this.#entries.get(key) ?? { failures: 0, ejections: 0, until: undefined, probing: false };
    this.#entries.set(key, entry);
    entry.failures++;
    const now = this.#options.now();
    // Failures while ejected come from last-resort attempts (every backend
    // ejected): they must not stack up backoffs once per client connection.
    if (entry.until !== undefined && now < entry.until) return undefined;
    if (entry.failures < this.#options.ejectAfter) return undefined;
    entry.ejections++;
    // No jitter: the length is reported and compared, and a half-open probe (not a herd) follows it.
    const duration = backoffDelay(entry.ejections, { min: this.#options.ejectBase, max: this.#options.ejectMax, jitter: 'none' });
    if (entry.until === undefined) this.#ejected++;
    entry.until = now + duration;
    return { kind: 'ejected', key, failures: entry.failures, ejections: entry.ejections, duration };
  }

  /** Count a successful connect: resets the backend; returns `restored` if it had been ejected. */
  recordSuccess(key: string): HealthChange | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#delete(key, entry);
    return entry.ejections > 0 ? { kind: 'restored', key, ejections: entry.ejections } : undefined;
  }

  /** Forget every backend not in `keys` (it left the backend set), so memory stays bounded by the set. */
  retain(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const [key, entry] of this.#entries) if (!keep.has(key)) this.#delete(key, entry);
  }

  #delete(key: string, entry: Entry): void {
    this.#entries.delete(key);
    if (entry.until !== undefined) this.#ejected--;
  }

  /** Every backend with a failure on record. */
  snapshot(): BackendHealthEntry[] {
    const now = this.#options.now();
    return [...this.#entries].map(([key, entry]) => ({
      key,
      failures: entry.failures,
      ejections: entry.ejections,
      ejectedFor: entry.until !== undefined && now < entry.until ? entry.until - now : 0,
      probing: entry.probing,
    }));
  }
}
