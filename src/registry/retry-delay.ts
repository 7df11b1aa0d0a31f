export interface RetryDelayOptions {
  /** The first delay (before jitter), ms. */
  min: number;
  /** No delay is longer, ms. */
  max: number;
  /** [0, 1). Default `Math.random`. */
  random?: () => number;
}

/**
 * How long to wait before retry number `attempt` (1 for the first retry):
 * `min · 2^(attempt−1)`, capped at `max`, then jittered down to somewhere
 * between half and all of that ("equal jitter"), so that the instances of a
 * cluster do not all hit etcd in the same instant when it comes back.
 */
export function retryDelay(attempt: number, options: RetryDelayOptions): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 52);
  const ceiling = Math.min(options.max, options.min * 2 ** exponent);
  const random = options.random ?? Math.random;
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}
