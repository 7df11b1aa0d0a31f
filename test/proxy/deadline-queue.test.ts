import { performance } from 'node:perf_hooks';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { DeadlineQueue, type Expiring } from '../../src/proxy/deadline-queue.js';

/** An item that records when it expired and settles a promise then. */
function item(name: string, log: string[]): Expiring & { at: number; expired: Promise<void> } {
  let resolve: () => void = () => undefined;
  const expired = new Promise<void>((r) => (resolve = r));
  const it = {
    at: Number.NaN,
    expired,
    expire(): void {
      it.at = performance.now();
      log.push(name);
      resolve();
    },
  };
  return it;
}

describe('DeadlineQueue', () => {
  it('lets a connect that completed in time win over its deadline when the process was too busy to see it before the timer ran out', async () => {
    const server = createServer((socket) => socket.destroy());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    onTestFinished(() => void server.close());
    const { port } = server.address() as { port: number };
    const queue = new DeadlineQueue();
    const log: string[] = [];
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    onTestFinished(() => void socket.destroy());
    const deadline = queue.add(50, item('connect timeout', log));
    const connected = once(socket, 'connect').then(() => deadline.cancel());
    // The loop is busy past the deadline (a process descheduled on a loaded
    // machine looks the same) while the kernel completes the handshake: when
    // it comes back, the expired timer and the connect are both waiting.
    const until = performance.now() + 300;
    while (performance.now() < until);
    await connected;
    expect(log).toEqual([]);
    expect(queue.size).toBe(0);
  });

  it('expires entries in due order, none before its time, whatever order they were added in', async () => {
    const queue = new DeadlineQueue();
    const log: string[] = [];
    const start = performance.now();
    const items = [
      ['c', 60],
      ['a', 20],
      ['b', 40],
      ['a2', 20],
    ] as const;
    const made = items.map(([name, ms]) => ({ ms, entry: item(name, log) }));
    for (const { ms, entry } of made) queue.add(ms, entry);
    expect(queue.size).toBe(4);
    await Promise.all(made.map(({ entry }) => entry.expired));
    expect(log).toEqual(['a', 'a2', 'b', 'c']);
    for (const { ms, entry } of made) expect(entry.at - start).toBeGreaterThanOrEqual(ms);
    expect(queue.size).toBe(0);
  });

  it('never expires a cancelled entry, and cancelling twice or after expiry is harmless', async () => {
    const queue = new DeadlineQueue();
    const log: string[] = [];
    const kept = item('kept', log);
    const dropped = queue.add(10, item('dropped', log));
    queue.add(30, kept);
    dropped.cancel();
    dropped.cancel();
    expect(queue.size).toBe(1);
    await kept.expired;
    expect(log).toEqual(['kept']);
  });

  it('drain takes every pending entry out, earliest first, and none of them expires afterwards', async () => {
    const queue = new DeadlineQueue();
    const log: string[] = [];
    const late = item('late', log);
    const early = item('early', log);
    queue.add(50, late);
    const cancelled = queue.add(5, item('cancelled', log));
    queue.add(10, early);
    cancelled.cancel();
    expect(queue.drain()).toEqual([early, late]);
    expect(queue.size).toBe(0);
    // A later entry proves the timer ran past the drained ones' due times.
    const after = item('after', log);
    queue.add(80, after);
    await after.expired;
    expect(log).toEqual(['after']);
  });

  it('an expiry may add and cancel entries', async () => {
    const queue = new DeadlineQueue();
    const log: string[] = [];
    const second = item('second', log);
    const victim = queue.add(15, item('victim', log));
    queue.add(5, {
      expire: () => {
        log.push('first');
        victim.cancel();
        queue.add(5, second);
      },
    });
    await second.expired;
    expect(log).toEqual(['first', 'second']);
  });

  it('keeps memory to the entries pending: cancelled ones do not pile up (100,000 added and cancelled around 10 live)', () => {
    const queue = new DeadlineQueue();
    const live = Array.from({ length: 10 }, () => queue.add(60_000, { expire: () => undefined }));
    let peak = 0;
    for (let i = 0; i < 100_000; i++) {
      queue.add(60_000, { expire: () => undefined }).cancel();
      peak = Math.max(peak, queue.held);
    }
    expect(queue.size).toBe(10);
    expect(peak).toBeLessThanOrEqual(200);
    for (const entry of live) entry.cancel();
    expect(queue.size).toBe(0);
    expect(queue.held).toBe(0);
  });
});

