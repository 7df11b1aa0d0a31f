/**
 * resetSocket against socat peers: a reset asked for in the very tick of an
 * `end()` (the shutdown in flight, which libuv refuses to reset) still closes
 * the socket, as soon as the FIN is out; one asked for while writes are
 * queued to a peer that reads nothing closes at once.
 */
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { HostPort } from '../../src/core/host-port.js';
import { resetSocket } from '../../src/proxy/tcp-reset.js';
import { startSocatServer } from '../helpers/socat-server.js';
import { waitFor } from '../helpers/wait-for.js';

async function connected(address: HostPort): Promise<{ socket: Socket; errors: Error[]; closed: () => boolean }> {
  const socket = connect({ host: address.host, port: address.port, allowHalfOpen: true });
  const errors: Error[] = [];
  socket.on('error', (err) => errors.push(err));
  let closed = false;
  socket.once('close', () => (closed = true));
  await once(socket, 'connect');
  return { socket, errors, closed: () => closed };
}

describe('resetSocket', () => {
  it.each([
    { when: 'in the tick of end()', defer: (run: () => void) => run() },
    { when: 'in the microtask after end()', defer: (run: () => void) => queueMicrotask(run) },
    { when: 'in the next tick after end()', defer: (run: () => void) => process.nextTick(run) },
  ])('closes a socket whose FIN is in flight, reset $when', async ({ defer }) => {
    const { address } = await startSocatServer('fork', 'PIPE');
    for (let i = 0; i < 20; i++) {
      const { socket, errors, closed } = await connected(address);
      socket.write('x');
      socket.end();
      defer(() => resetSocket(socket));
      await waitFor(closed, { what: 'the reset socket to close', timeout: 10_000 });
      // Not "reset EINVAL": the reset waited for the FIN instead of being refused.
      expect(errors.map((err) => err.message).filter((message) => /EINVAL/.test(message))).toEqual([]);
    }
  });

  it('closes at once a socket that ended with writes still queued to a peer that reads nothing', async () => {
    // socat hands what it reads to sleep, which reads nothing: the buffers fill and our writes queue.
    const { address } = await startSocatServer('', 'EXEC:sleep 60');
    const { socket, closed } = await connected(address);
    socket.write(Buffer.alloc(32 * 1024 * 1024));
    socket.end();
    await waitFor(() => socket.writableLength > 0, { what: 'writes queued' });
    expect(socket.writableFinished).toBe(false);
    resetSocket(socket);
    await waitFor(closed, { what: 'the reset socket to close', timeout: 10_000 });
  });
});
