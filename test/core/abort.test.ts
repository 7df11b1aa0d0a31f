import { describe, expect, it } from 'vitest';
import { abortable, abortableSleep, deferred } from '../../src/core/abort.js';

describe('abortable', () => {
  it('settles like the promise while the signal is quiet', async () => {
    const controller = new AbortController();
    await expect(abortable(Promise.resolve(7), controller.signal)).resolves.toBe(7);
    await expect(abortable(Promise.reject(new Error('boom')), controller.signal)).rejects.toThrow('boom');
  });

  it('rejects with ERR_ABORTED as soon as the signal aborts, or at once when it already has', async () => {
    const controller = new AbortController();
    const never = new Promise<number>(() => undefined);
    const waiting = abortable(never, controller.signal);
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await expect(abortable(Promise.resolve(1), controller.signal)).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });
});

describe('abortableSleep', () => {
  it('ends early, without rejecting, when the signal aborts', async () => {
    const controller = new AbortController();
    const started = performance.now();
    const sleeping = abortableSleep(60_000, controller.signal);
    controller.abort();
    await expect(sleeping).resolves.toBeUndefined();
    expect(performance.now() - started).toBeLessThan(30_000);
    await expect(abortableSleep(60_000, controller.signal)).resolves.toBeUndefined();
  });

  it('waits its time otherwise', async () => {
    const started = performance.now();
    await abortableSleep(20, new AbortController().signal);
    expect(performance.now() - started).toBeGreaterThanOrEqual(19);
  });
});

describe('deferred', () => {
  it('resolves from outside, once', async () => {
    const d = deferred<string>();
    d.resolve('first');
    d.resolve('second');
    await expect(d.promise).resolves.toBe('first');
  });
});
