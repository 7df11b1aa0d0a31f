import { describe, expect, it } from 'vitest';
import { BackendHealth, type HealthChange } from '../../src/proxy/backend-health.js';

function health(options: { ejectAfter?: number; ejectBase?: number; ejectMax?: number } = {}): { h: BackendHealth; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const h = new BackendHealth({ ejectAfter: options.ejectAfter ?? 3, ejectBase: options.ejectBase ?? 5000, ejectMax: options.ejectMax ?? 300_000, now: () => clock.now });
  return { h, clock };
}

const K = '10.0.0.1:80';

describe('BackendHealth', () => {
  it('ejects after ejectAfter consecutive failures, not before', () => {
    const { h } = health({ ejectAfter: 3 });
    expect(h.recordFailure(K)).toBeUndefined();
    expect(h.isEjected(K)).toBe(false);
    expect(h.recordFailure(K)).toBeUndefined();
    expect(h.isEjected(K)).toBe(false);
    expect(h.recordFailure(K)).toEqual<HealthChange>({ kind: 'ejected', key: K, failures: 3, ejections: 1, duration: 5000 });
    expect(h.isEjected(K)).toBe(true);
    expect(h.isEjected('10.0.0.2:80')).toBe(false);
  });

  it('a success in between resets the failure count', () => {
    const { h } = health({ ejectAfter: 3 });
    h.recordFailure(K);
    h.recordFailure(K);
    expect(h.recordSuccess(K)).toBeUndefined();
    h.recordFailure(K);
    h.recordFailure(K);
    expect(h.isEjected(K)).toBe(false);
    expect(h.snapshot()).toEqual([{ key: K, failures: 2, ejections: 0, ejectedFor: 0, probing: false }]);
  });

  it('the ejection ends when its time is up (exclusive bound)', () => {
    const { h, clock } = health({ ejectAfter: 1, ejectBase: 1000 });
    h.recordFailure(K);
    clock.now += 999;
    expect(h.isEjected(K)).toBe(true);
    expect(h.snapshot()[0]?.ejectedFor).toBe(1);
    clock.now += 1;
    expect(h.isEjected(K)).toBe(false);
    expect(h.snapshot()[0]?.ejectedFor).toBe(0);
  });

  // Each row: fail until ejected, let the ejection run out, fail once more...
  // The first ejection needs ejectAfter failures; every later one a single
  // failure, each twice as long, up to the cap.
  it.each([
    // [ejectAfter, base, max, expected durations of successive ejections]
    [3, 5000, 300_000, [5000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]],
    [1, 100, 1000, [100, 200, 400, 800, 1000, 1000]],
    [2, 1000, 1000, [1000, 1000, 1000]],
  ])('ejectAfter %i, base %i ms, cap %i ms: ejections last %j', (ejectAfter, ejectBase, ejectMax, durations) => {
    const { h, clock } = health({ ejectAfter, ejectBase, ejectMax });
    const seen: number[] = [];
    const failuresPerEjection: number[] = [];
    for (let i = 0; i < durations.length; i++) {
      let failures = 0;
      let change: HealthChange | undefined;
      while (!change) {
        change = h.recordFailure(K);
        failures++;
      }
      expect(change.kind).toBe('ejected');
      if (change.kind === 'ejected') {
        seen.push(change.duration);
        expect(change.ejections).toBe(i + 1);
      }
      failuresPerEjection.push(failures);
      clock.now += change.kind === 'ejected' ? change.duration : 0;
      expect(h.isEjected(K)).toBe(false);
    }
    expect(seen).toEqual(durations);
    expect(failuresPerEjection).toEqual([ejectAfter, ...durations.slice(1).map(() => 1)]);
  });

  it('a success after ejections restores the backend and starts over from the base backoff', () => {
    const { h, clock } = health({ ejectAfter: 2, ejectBase: 1000 });
    h.recordFailure(K);
    h.recordFailure(K);
    clock.now += 1000;
    expect(h.recordFailure(K)).toMatchObject({ kind: 'ejected', duration: 2000 });
    clock.now += 2000;
    expect(h.recordSuccess(K)).toEqual<HealthChange>({ kind: 'restored', key: K, ejections: 2 });
    expect(h.snapshot()).toEqual([]);
    // Back to square one: ejectAfter failures again, base duration again.
    expect(h.recordFailure(K)).toBeUndefined();
    expect(h.recordFailure(K)).toMatchObject({ kind: 'ejected', ejections: 1, duration: 1000 });
  });

  it('failures while ejected (last-resort attempts) do not stack backoffs', () => {
    const { h, clock } = health({ ejectAfter: 1, ejectBase: 1000 });
    expect(h.recordFailure(K)).toMatchObject({ kind: 'ejected', duration: 1000 });
    for (let i = 0; i < 10; i++) expect(h.recordFailure(K)).toBeUndefined();
    clock.now += 1000;
    expect(h.isEjected(K)).toBe(false);
    expect(h.recordFailure(K)).toMatchObject({ kind: 'ejected', ejections: 2, duration: 2000 });
  });

  it('a success while still ejected (tried as a last resort) restores it at once', () => {
    const { h } = health({ ejectAfter: 1 });
    h.recordFailure(K);
    expect(h.recordSuccess(K)).toMatchObject({ kind: 'restored' });
    expect(h.isEjected(K)).toBe(false);
  });

  it('keeps backends apart and forgets those that left the set', () => {
    const { h } = health({ ejectAfter: 1 });
    h.recordFailure('a:1');
    h.recordFailure('b:1');
    expect(h.isEjected('a:1')).toBe(true);
    h.retain(['b:1', 'c:1']);
    expect(h.isEjected('a:1')).toBe(false);
    expect(h.isEjected('b:1')).toBe(true);
    expect(h.snapshot().map((e) => e.key)).toEqual(['b:1']);
  });

  it('allOpen says whether every admission is open: false from an ejection until its success or departure, probe time included', () => {
    const { h, clock } = health({ ejectAfter: 2, ejectBase: 1000 });
    const allOpen = (): boolean => {
      const open = h.allOpen();
      // It must agree with asking each backend on record.
      expect(open).toBe(['a:1', 'b:1'].every((key) => h.admission(key) === 'open'));
      return open;
    };
    expect(allOpen()).toBe(true);
    h.recordFailure('a:1');
    expect(allOpen()).toBe(true);
    h.recordFailure('a:1');
    h.recordFailure('b:1');
    h.recordFailure('b:1');
    expect(allOpen()).toBe(false);
    clock.now += 1000;
    expect(h.admission('a:1')).toBe('probe');
    expect(allOpen()).toBe(false);
    h.recordSuccess('a:1');
    expect(allOpen()).toBe(false);
    // A failure while ejected, a re-ejection: still one backend on record.
    h.recordFailure('b:1');
    clock.now += 1000;
    h.recordFailure('b:1');
    h.retain(['a:1']);
    expect(allOpen()).toBe(true);
    h.recordFailure('a:1');
    h.recordFailure('a:1');
    expect(allOpen()).toBe(false);
    h.recordSuccess('a:1');
    expect(allOpen()).toBe(true);
  });
});
