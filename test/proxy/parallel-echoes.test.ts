import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { connectTcp } from '../helpers/tcp-backends.js';
import { waitFor } from '../helpers/wait-for.js';
import { startSocatServer } from '../helpers/socat-server.js';
import { startForwarder } from '../helpers/start-forwarder.js';
import { TestSource, backend } from '../helpers/test-source.js';
import { jsDataPlane } from '../../src/proxy/data-plane.js';
import { readsInPlace, spliceSockets } from '../../src/proxy/splice-sockets.js';

const MiB = 1024 * 1024;
const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');

/** A gate a reader waits at: opened once, by an event of the test. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

/**
 * Everything `socket` receives until the peer's FIN, read the way `pauses`
 * says: before each threshold of bytes received is passed, reading stops
 * until that gate opens (a threshold of 0: nothing is read before it).
 */
function readWithPauses(socket: Socket, pauses: readonly { at: number; until: Promise<void> }[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let next = 0;
    const stopIfDue = (): void => {
      const pause = pauses[next];
      if (pause === undefined || received < pause.at) return;
      next++;
      socket.pause();
      void pause.until.then(() => {
        socket.resume();
        stopIfDue();
      });
    };
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      stopIfDue();
    });
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('close', () => reject(new Error(`closed without a FIN after ${received} bytes`)));
    stopIfDue();
  });
}

describe('JS data plane: parallel echoes', () => {
  it('reads in place on this Node (onread into a shared buffer), not through the stream fallback', () => {
    expect(readsInPlace).toBe(true);
  });

  it('carries six echoes of 4 and 16 MiB at once through socat intact, with a reader that starts late and one that stops and resumes', async () => {
    const { address: echo } = await startSocatServer('fork', 'PIPE', ['-t', '30']);
    const { forwarder, address } = await startForwarder({ dataPlane: jsDataPlane, source: new TestSource([backend(echo.host, echo.port)]) }, 'info');
    const plain = gate();
    const late = gate();
    const echoes = [
      // Four that read as it comes.
      [],
      [],
      [],
      [],
      // One that reads nothing until those four are done.
      [{ at: 0, until: plain.wait }],
      // One that stops after 1 MiB until the four are done, and after 3 MiB until the late reader is done.
      [
        { at: MiB, until: plain.wait },
        { at: 3 * MiB, until: late.wait },
      ],
    ];
    const run = async (pauses: readonly { at: number; until: Promise<void> }[], size: number): Promise<void> => {
      const payload = randomBytes(size);
      const socket = await connectTcp(address);
      const received = readWithPauses(socket, pauses);
      socket.end(payload);
      const echoed = await received;
      expect(echoed.length).toBe(payload.length);
      expect(sha256(echoed)).toBe(sha256(payload));
    };
    // The slow readers' echoes are larger than what the kernel buffers for a
    // stalled reader on loopback (4 MiB fit: the plane's writes never waited).
    const plainDone = Promise.all(echoes.slice(0, 4).map((pauses) => run(pauses, 4 * MiB))).finally(plain.open);
    const lateDone = run(echoes[4] ?? [], 16 * MiB).finally(late.open);
    const stopping = run(echoes[5] ?? [], 16 * MiB);
    await Promise.all([plainDone, lateDone, stopping]);
    await waitFor(() => forwarder.activeConnections === 0, { what: 'every pair to close' });
    expect(forwarder.stats).toMatchObject({ bytesIn: 4 * 4 * MiB + 2 * 16 * MiB, bytesOut: 4 * 4 * MiB + 2 * 16 * MiB });
  }, 120_000);

  it('a socket that read before the splice is relayed from its stream, what it had read first', async () => {
    // The far end of the "backend": an echo of our own, beside socat's above.
    const server = createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
    onTestFinished(() => void server.close());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const listener = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    onTestFinished(() => void listener.close());
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const accepted = new Promise<Socket>((resolve) => listener.once('connection', resolve));
    const client = await connectTcp({ host: '127.0.0.1', port: (listener.address() as { port: number }).port });
    const payload = randomBytes(2 * MiB);
    const received = readWithPauses(client, []);
    client.end(payload);
    const near = await accepted;
    onTestFinished(() => void near.destroy());
    // Read some of it into the stream's buffer before the splice.
    near.resume();
    near.pause();
    await waitFor(() => near.readableLength > 0, { what: 'bytes in the stream buffer' });
    const far = connect({ host: '127.0.0.1', port, allowHalfOpen: true }).pause();
    onTestFinished(() => void far.destroy());
    await new Promise((resolve) => far.once('connect', resolve));
    const counts = { in: 0, out: 0 };
    const ended = spliceSockets(near, far, { onClientData: (n) => (counts.in += n), onBackendData: (n) => (counts.out += n) });
    expect(sha256(await received)).toBe(sha256(payload));
    expect(await ended).toEqual({ end: 'closed' });
    expect(counts).toEqual({ in: payload.length, out: payload.length });
  }, 60_000);
});
