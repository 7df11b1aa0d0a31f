/**
 * Lets at most `burst` events per `interval` ms through to the log, so a
 * flood (connections over the limit, fd exhaustion, a dead service hit by
 * every client) costs a counter increment instead of a log line each.
 * What was held back is reported with the next line that gets through.
 */
export class LogThrottle {
  readonly #interval: number;
  readonly #burst: number;
  readonly #now: () => number;
  #windowStart = Number.NEGATIVE_INFINITY;
  #inWindow = 0;
  #suppressed = 0;

  constructor(interval: number, burst: number, now: () => number) {
    this.#interval = interval;
    this.#burst = burst;
    this.#now = now;
  }

  /**
   * Whether this event may be logged: `undefined` when it must not, else
   * the number of events suppressed since the last one logged (put it in the
   * line so nothing is silently lost).
   */
  take(): number | undefined {
    const now = this.#now();
    if (now - this.#windowStart >= this.#interval) {
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    if (this.#inWindow >= this.#burst) {
      this.#suppressed++;
      return undefined;
    }
    this.#inWindow++;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    return suppressed;
  }
}
