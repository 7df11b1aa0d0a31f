import { describe, expect, it } from 'vitest';
import { Backoff, backoffDelay } from '../../src/core/backoff.js';

describe('backoffDelay', () => {
  it.each([
    // attempt, random, delay (min 1000, max 10000, equal jitter)
    [1, 0.999999, 1000],
    [1, 0, 500],
    [2, 0.999999, 2000],
    [3, 0.999999, 4000],
    [4, 0.999999, 8000],
    [5, 0.999999, 10_000],
    [50, 0.999999, 10_000],
    [5000, 0, 5000],
    [4, 0.5, 6000],
    [0, 0.999999, 1000],
  ])('attempt %i, random %f → %i ms', (attempt, random, delay) => {
    expect(backoffDelay(attempt, { min: 1000, max: 10_000, random: () => random })).toBe(delay);
  });

  it.each([
    // attempt, min, max, delay without jitter (ejections: 5 s doubling to 5 min)
    [1, 5000, 300_000, 5000],
    [2, 5000, 300_000, 10_000],
    [7, 5000, 300_000, 300_000],
    [10_000, 5000, 300_000, 300_000],
    [1, 250, 5000, 250],
    [5, 250, 5000, 4000],
    [6, 250, 5000, 5000],
  ])('without jitter: attempt %i, min %i, max %i → %i ms', (attempt, min, max, delay) => {
    expect(backoffDelay(attempt, { min, max, jitter: 'none', random: () => 0 })).toBe(delay);
  });

  it('stays within [half, all] of the capped exponential with the default random', () => {
    for (let attempt = 1; attempt < 60; attempt++) {
      const ceiling = Math.min(10_000, 1000 * 2 ** (attempt - 1));
      const d = backoffDelay(attempt, { min: 1000, max: 10_000 });
      expect(d).toBeGreaterThanOrEqual(ceiling / 2);
      expect(d).toBeLessThanOrEqual(ceiling);
    }
  });
});

describe('Backoff', () => {
  it('counts its attempts and starts over on reset', () => {
    const backoff = new Backoff({ min: 100, max: 400, jitter: 'none' });
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([100, 200, 400, 400]);
    expect(backoff.attempts).toBe(4);
    backoff.reset();
    expect(backoff.attempts).toBe(0);
    expect(backoff.next()).toBe(100);
  });

  it('with immediate, retries at once first, then grows (jittered by the injected random)', () => {
    const backoff = new Backoff({ min: 100, max: 5000, immediate: true, random: () => 0 });
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([0, 50, 100, 200]);
    backoff.reset();
    expect(backoff.next()).toBe(0);
  });
});
