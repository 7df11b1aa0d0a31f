import { describe, expect, it } from 'vitest';
import { retryDelay } from '../../src/registry/retry-delay.js';

describe('retryDelay', () => {
  it.each([
    // attempt, random, delay (min 1000, max 10000)
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
    expect(retryDelay(attempt, { min: 1000, max: 10_000, random: () => random })).toBe(delay);
  });

  it('stays within [half, all] of the capped exponential', () => {
    for (let attempt = 1; attempt < 20; attempt++) {
      const ceiling = Math.min(10_000, 1000 * 2 ** (attempt - 1));
      const d = retryDelay(attempt, { min: 1000, max: 10_000 });
      expect(d).toBeGreaterThanOrEqual(ceiling / 2);
      expect(d).toBeLessThanOrEqual(ceiling);
    }
  });
});
