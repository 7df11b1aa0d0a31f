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

/** What is known about one backend, for status pages and tests. */
export interface BackendHealthEntry {
  key: string;
  failures: number;
  ejections: number;
  /** Ms left in the current ejection; 0 when the backend is not ejected. */
  ejectedFor: number;
}

interface Entry {
  failures: number;
  ejections: number;
  /** End of the latest ejection; kept after it expires so one more failure re-ejects at once. */
  until: number | undefined;
}

/**
 * Passive health of backends, keyed by `address:port` (docs/architecture.md §4.3): a
 * backend that fails `ejectAfter` connects in a row is ejected for
 * `ejectBase × 2^(ejections − 1)` ms, capped at `ejectMax`. When the
 * ejection has run out the backend is tried again; the very next failure
 * ejects it again for twice as long (it has not proven anything yet), and a
 * success forgets everything.
 *
 * No I/O and no timers: time comes from the injected `now`, so it is tested
 * with tables. Only backends with a failure on record take memory.
 */
export class BackendHealth {
  #options: BackendHealthOptions;
  readonly #entries = new Map<string, Entry>();

  constructor(options: BackendHealthOptions) {
    this.#options = options;
  }

  /** New thresholds (a config reload); backends on record keep their counts, the next ejection uses these. */
  configure(options: Omit<BackendHealthOptions, 'now'>): void {
    this.#options = { ...options, now: this.#options.now };
  }

  /** Whether `key` is ejected right now. */
  isEjected(key: string): boolean {
    const until = this.#entries.get(key)?.until;
    return until !== undefined && this.#options.now() < until;
  }

  /** Count a failed connect; returns the ejection it causes, if any. */
  recordFailure(key: string): HealthChange | undefined {
    const entry = this.#entries.get(key) ?? { failures: 0, ejections: 0, until: undefined };
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
    entry.until = now + duration;
    return { kind: 'ejected', key, failures: entry.failures, ejections: entry.ejections, duration };
  }

  /** Count a successful connect: resets the backend; returns `restored` if it had been ejected. */
  recordSuccess(key: string): HealthChange | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#entries.delete(key);
    return entry.ejections > 0 ? { kind: 'restored', key, ejections: entry.ejections } : undefined;
  }

  /** Forget every backend not in `keys` (it left the backend set), so memory stays bounded by the set. */
  retain(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const key of this.#entries.keys()) if (!keep.has(key)) this.#entries.delete(key);
  }

  /** Every backend with a failure on record. */
  snapshot(): BackendHealthEntry[] {
    const now = this.#options.now();
    return [...this.#entries].map(([key, entry]) => ({
      key,
      failures: entry.failures,
      ejections: entry.ejections,
      ejectedFor: entry.until !== undefined && now < entry.until ? entry.until - now : 0,
    }));
  }
}
