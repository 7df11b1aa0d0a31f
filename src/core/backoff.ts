/** How a backoff grows: `min · 2^(attempt−1)`, capped at `max`, then jittered. */
export interface BackoffOptions {
  /** The first delay (before jitter), ms. */
  min: number;
  /** No delay is longer, ms. */
  max: number;
  /**
   * `equal` (default): somewhere between half and all of the capped
   * exponential, so that the many instances of a cluster do not all retry in
   * the same instant when the peer comes back. `none`: exactly the capped
   * exponential, for delays that are reported and compared (ejections).
   */
  jitter?: 'equal' | 'none';
  /** [0, 1). Default `Math.random`; a seam so that tests are deterministic. */
  random?: () => number;
}

/**
 * How long to wait before retry number `attempt` (1 for the first retry):
 * `min · 2^(attempt−1)` capped at `max`, then jittered down to somewhere
 * between half and all of that ("equal jitter", the AWS architecture blog's
 * name), so that the instances of a cluster do not all hit etcd in the same
 * instant when it comes back. Attempts below 1 count as 1.
 */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  // 2^52 is past any max: the exponent is capped so the product stays finite.
  const exponent = Math.min(Math.max(attempt - 1, 0), 52);
  const ceiling = Math.min(options.max, options.min * 2 ** exponent);
  if (options.jitter === 'none') return ceiling;
  const random = options.random ?? Math.random;
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

/**
 * A backoff with its own count of attempts: `next()` gives the delay before
 * the next retry and counts it, `reset()` starts over once the peer
 * answered. With `immediate`, the first retry after a reset comes at once (a
 * broken stream usually means the peer restarted, or another member can
 * serve) and the growing delays start with the second.
 */
export class Backoff {
  readonly #options: BackoffOptions;
  readonly #immediate: boolean;
  #attempts = 0;

  constructor(options: BackoffOptions & { immediate?: boolean }) {
    this.#options = options;
    this.#immediate = options.immediate ?? false;
  }

  /** Retries counted since the last `reset()`. */
  get attempts(): number {
    return this.#attempts;
  }

  /** The delay before the next retry, ms; counts the retry. */
  next(): number {
    this.#attempts++;
    if (this.#immediate) return this.#attempts === 1 ? 0 : backoffDelay(this.#attempts - 1, this.#options);
    return backoffDelay(this.#attempts, this.#options);
  }

  /** The peer answered: the next retry starts from the beginning again. */
  reset(): void {
    this.#attempts = 0;
  }
}
