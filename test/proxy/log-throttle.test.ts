import { describe, expect, it } from 'vitest';
import { LogThrottle } from '../../src/proxy/log-throttle.js';

describe('LogThrottle', () => {
  it('lets a burst through per interval and reports what it held back', () => {
    const clock = { now: 0 };
    const throttle = new LogThrottle(1000, 2, () => clock.now);
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
});
