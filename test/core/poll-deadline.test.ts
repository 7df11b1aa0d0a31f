import { createSocket } from 'node:dgram';
import { describe, expect, it, onTestFinished } from 'vitest';
import { pollDeadline } from '../../src/core/poll-deadline.js';

/** Keep the event loop busy for `ms`, as a descheduled process or a long GC would. */
function blockLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe('pollDeadline', () => {
  it('fires once its time has passed', async () => {
    const start = performance.now();
    await new Promise<void>((resolve) => pollDeadline(30, resolve));
    expect(performance.now() - start).toBeGreaterThanOrEqual(29);
  });

  it('lets a datagram that arrived before the deadline be read first when the loop was busy past it', async () => {
    for (const plain of [true, false]) {
      const socket = createSocket('udp4');
      onTestFinished(() => void socket.close());
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      const order: string[] = [];
      const settled = new Promise<void>((resolve) => {
        const done = (what: string): void => {
          order.push(what);
          resolve();
        };
        if (plain) {
          const timer = setTimeout(() => done('deadline'), 50);
          socket.once('message', () => (clearTimeout(timer), done('message')));
        } else {
          const deadline = pollDeadline(50, () => done('deadline'));
          socket.once('message', () => (deadline.clear(), done('message')));
        }
      });
      // The datagram is in the socket at once; the loop only sees it after 200 ms, past the deadline.
      socket.send('x', socket.address().port, '127.0.0.1', () => blockLoop(200));
      await settled;
      // A plain timer runs before the poll: the case pollDeadline is for.
      expect(order, plain ? 'setTimeout' : 'pollDeadline').toEqual([plain ? 'deadline' : 'message']);
    }
  });

  it('clear() cancels it also between its timer and the poll', async () => {
    let fired = false;
    const deadline = pollDeadline(10, () => (fired = true));
    // A timer due at the same moment, queued after the deadline's: it runs after the deadline's timer, before its callback.
    await new Promise<void>((resolve) =>
      setTimeout(() => {
        deadline.clear();
        resolve();
      }, 10),
    );
    await new Promise<void>((resolve) => setTimeout(resolve, 30));
    expect(fired).toBe(false);
  });
});
