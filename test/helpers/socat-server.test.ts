/**
 * The socat echo that the forwarding suites use as a peer we did not write
 * must itself never hang: a client that reads late (backpressure all the way
 * back to socat) still gets every byte.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it, onTestFinished } from 'vitest';
import { startSocatServer } from './socat-server.js';
import { readAll } from './tcp-backends.js';

const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');

it('the PIPE echo returns 4 MiB to clients that start reading late', async () => {
  const { address } = await startSocatServer('fork', 'PIPE', ['-t', '30']);
  // How long each client leaves the echo unread: the stall that blocked
  // socat on its own pipe came within the first second or two.
  for (const late of [0, 100, 300, 1000, 2000]) {
    const payload = randomBytes(4 * 1024 * 1024);
    const socket = connect(address.port, address.host);
    onTestFinished(() => void socket.destroy());
    await once(socket, 'connect');
    socket.pause();
    socket.end(payload);
    const received = readAll(socket, 20_000);
    // Not an event to await: the time a slow client takes to come back to its socket.
    await sleep(late);
    socket.resume();
    expect(sha256(await received), `a client that read after ${late} ms`).toBe(sha256(payload));
  }
});
