export interface LogThrottleOptions {
  /**
   * Once a cause has been logged, its next line comes after this many ms at
   * the earliest, carrying the count of what was held back meanwhile (the
   * periodic summary). `Infinity`: once per cause, until `clear(cause)`.
   */
  interval: number;
  /** Lines of one cause let through per interval before counting starts. Default 1. */
  burst?: number;
  /** Clock, ms, monotonic. Default `performance.now`. */
  now?: () => number;
  /**
   * Causes remembered at most (input decides how many there are: names,
   * targets, error texts). Past it the cause used longest ago is forgotten:
   * it logs again at its next occurrence. Default 1000.
   */
  maxCauses?: number;
}

interface CauseState {
  windowStart: number;
  inWindow: number;
  suppressed: number;
}

const DEFAULT_MAX_CAUSES = 1000;

/**
 * Keeps a flood out of the log: the first occurrence of each cause is logged,
 * the following ones are counted, and the next line of that cause (at most
 * one per `interval`) says how many were held back. So a flood (connections
 * over the limit, fd exhaustion, a dead service hit by every client, etcd
 * down for an hour) costs a counter increment per event instead of a line,
 * and nothing is lost silently. `clear(cause)` ends a condition (etcd
 * answers again): its next occurrence is logged at once, and the caller
 * learns whether a recovery line is due.
 */
export class LogThrottle {
  readonly #interval: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #maxCauses: number;
  /** In order of last use (a Map keeps insertion order): the first is the one to forget. */
  readonly #causes = new Map<string, CauseState>();

  constructor(options: LogThrottleOptions) {
    this.#interval = options.interval;
    this.#burst = options.burst ?? 1;
    this.#now = options.now ?? (() => performance.now());
    this.#maxCauses = options.maxCauses ?? DEFAULT_MAX_CAUSES;
  }

  /**
   * Whether this occurrence of `cause` may be logged: `undefined` when it must
   * not (it is counted), else how many occurrences were held back since the
   * last line of this cause (put it in the line).
   */
  take(cause = ''): number | undefined {
    const now = this.#now();
    let state = this.#causes.get(cause);
    if (state === undefined) {
      state = { windowStart: now, inWindow: 0, suppressed: 0 };
      if (this.#causes.size >= this.#maxCauses) {
        const oldest = this.#causes.keys().next();
        if (oldest.done !== true) this.#causes.delete(oldest.value);
      }
    } else {
      this.#causes.delete(cause);
      if (now - state.windowStart >= this.#interval) {
        state.windowStart = now;
        state.inWindow = 0;
      }
    }
    this.#causes.set(cause, state);
    if (state.inWindow >= this.#burst) {
      state.suppressed++;
      return undefined;
    }
    state.inWindow++;
    const suppressed = state.suppressed;
    state.suppressed = 0;
    return suppressed;
  }

  /** Whether `cause` has been logged and not cleared since (the condition is still on). */
  has(cause = ''): boolean {
    return this.#causes.has(cause);
  }

  /**
   * The condition behind `cause` ended: forget it, so its next occurrence is
   * logged at once. Returns how many occurrences were held back since its
   * last line, or `undefined` when it was not on (no recovery to report).
   */
  clear(cause = ''): number | undefined {
    const state = this.#causes.get(cause);
    if (state === undefined) return undefined;
    this.#causes.delete(cause);
    return state.suppressed;
  }

  /** Forget every cause `keep` rejects (the names that left a set), so memory follows the input of now. */
  retain(keep: (cause: string) => boolean): void {
    for (const cause of this.#causes.keys()) if (!keep(cause)) this.#causes.delete(cause);
  }

  /** How many causes are remembered. */
  get size(): number {
    return this.#causes.size;
  }
}
