import { describe, expect, it } from 'vitest';
import { LogThrottle } from '../../src/core/log-throttle.js';

describe('LogThrottle', () => {
  it('lets a burst through per interval and reports what it held back', () => {
    const clock = { now: 0 };
    const throttle = new LogThrottle({ interval: 1000, burst: 2, now: () => clock.now });
    expect(throttle.take()).toBe(0);
    expect(throttle.take()).toBe(0);
    for (let i = 0; i < 1000; i++) expect(throttle.take()).toBeUndefined();
    clock.now = 999;
    expect(throttle.take()).toBeUndefined();
    clock.now = 1000;
    expect(throttle.take()).toBe(1001);
    expect(throttle.take()).toBe(0);
    expect(throttle.take()).toBeUndefined();
  });

  // Each row: a sequence of [time, cause] occurrences and what `take` answers for each.
  it.each([
    ['first occurrence per cause logged, then counted', 1000, [[0, 'a'], [1, 'a'], [2, 'b'], [3, 'a'], [4, 'b']], [0, undefined, 0, undefined, undefined]],
    ['periodic summary carries the count', 1000, [[0, 'a'], [10, 'a'], [20, 'a'], [1000, 'a'], [1001, 'a']], [0, undefined, undefined, 2, undefined]],
    ['an infinite interval logs once per cause', Number.POSITIVE_INFINITY, [[0, 'a'], [1e12, 'a'], [2e12, 'b']], [0, undefined, 0]],
  ] as const)('%s', (_name, interval, occurrences, expected) => {
    const clock = { now: 0 };
    const throttle = new LogThrottle({ interval, now: () => clock.now });
    const answers = occurrences.map(([time, cause]) => {
      clock.now = time;
      return throttle.take(cause);
    });
    expect(answers).toEqual(expected);
  });

  it('clear ends a condition: its next occurrence logs at once, and the caller learns it was on', () => {
    const throttle = new LogThrottle({ interval: Number.POSITIVE_INFINITY, now: () => 0 });
    expect(throttle.clear('etcd')).toBeUndefined();
    expect(throttle.take('etcd')).toBe(0);
    expect(throttle.take('etcd')).toBeUndefined();
    expect(throttle.has('etcd')).toBe(true);
    expect(throttle.clear('etcd')).toBe(1);
    expect(throttle.has('etcd')).toBe(false);
    expect(throttle.take('etcd')).toBe(0);
  });

  it('remembers at most maxCauses causes, forgetting the one used longest ago', () => {
    const throttle = new LogThrottle({ interval: Number.POSITIVE_INFINITY, now: () => 0, maxCauses: 3 });
    for (let i = 0; i < 10_000; i++) throttle.take(`name-${i}`);
    expect(throttle.size).toBe(3);
    // The three newest are remembered (counted), an old one logs again.
    expect(throttle.take('name-9999')).toBeUndefined();
    expect(throttle.take('name-0')).toBe(0);
    expect(throttle.size).toBe(3);
  });

  it('retain forgets the causes that left', () => {
    const throttle = new LogThrottle({ interval: 1000, now: () => 0 });
    for (const cause of ['a', 'b', 'c']) throttle.take(cause);
    throttle.retain((cause) => cause !== 'b');
    expect(throttle.size).toBe(2);
    expect(throttle.take('b')).toBe(0);
    expect(throttle.take('a')).toBeUndefined();
  });
});
