import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  connectTcp,
  echoRoundTrip,
  readAll,
  startEchoBackend,
  startTcpBackend,
  waitClosed,
  waitDisconnected,
} from '../helpers/tcp-backends.js';
import { waitFor } from '../helpers/wait-for.js';
import { startSocatServer } from '../helpers/socat-server.js';
import { streamOutcome } from '../helpers/stream-outcome.js';
import { linesMatching, startForwarder, type TestForwarder } from '../helpers/start-forwarder.js';
import { DATA_PLANES } from '../helpers/data-planes.js';
import type { ForwarderOptions } from '../../src/proxy/forwarder.js';
import type { LogLevel } from '../../src/core/logger.js';
import { TestSource, backend } from '../helpers/test-source.js';

const MiB = 1024 * 1024;
const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');

/** Everything a backend-side socket receives until the client's FIN. */
function collect(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
  });
}

describe.each(DATA_PLANES)('on the $name data plane, $accept accept', ({ plane, accept, skip }) => {
  /** A test forwarder on this plane. */
  const start = (options: Partial<ForwarderOptions> & Pick<ForwarderOptions, 'source'>, logLevel?: LogLevel): Promise<TestForwarder> =>
    startForwarder({ dataPlane: plane, accept, ...options }, logLevel);
  if (skip) it.skip(skip, () => undefined);

  describe.skipIf(skip !== undefined)('Forwarder: bytes', () => {
    it('carries 1 MiB each way intact on 50 parallel connections, counts the bytes and logs nothing at info', async () => {
      const echo = await startEchoBackend();
      const { forwarder, address, logs } = await start({ source: new TestSource([backend('127.0.0.1', echo.address.port)]) }, 'info');
      const clients = 50;
      await Promise.all(
        Array.from({ length: clients }, async () => {
          const payload = randomBytes(MiB);
          const socket = await connectTcp(address);
          const received = readAll(socket, 60_000);
          socket.end(payload);
          const echoed = await received;
          expect(echoed.length).toBe(MiB);
          expect(sha256(echoed)).toBe(sha256(payload));
        }),
      );
      await waitFor(() => forwarder.activeConnections === 0, { what: 'every connection to close' });
      expect(forwarder.stats).toMatchObject({ accepted: clients, forwarded: clients, active: 0, failed: 0, bytesIn: clients * MiB, bytesOut: clients * MiB });
      expect(forwarder.stats.backends.get(`127.0.0.1:${echo.address.port}`)).toMatchObject({ connections: clients, active: 0, bytesIn: clients * MiB });
      // Per-connection lines are debug only (docs/architecture.md §4.7).
      expect(logs).toEqual([]);
    });

    it('logs each connection at debug level', async () => {
      const echo = await startEchoBackend();
      const { forwarder, address, logs } = await start({ source: new TestSource([backend('127.0.0.1', echo.address.port)]) });
      const socket = await connectTcp(address);
      await echoRoundTrip(socket, 'hello');
      socket.end();
      await readAll(socket);
      await waitFor(() => forwarder.activeConnections === 0, { what: 'the pair to be closed' });
      expect(linesMatching(logs, 'debug', /^connection forwarded$/)[0]).toMatchObject({ mapping: 'test', backend: `127.0.0.1:${echo.address.port}` });
      expect(linesMatching(logs, 'debug', /^connection closed$/)[0]).toMatchObject({ bytesIn: 5, bytesOut: 5, end: 'closed' });
    });

    it('sends bytes the client wrote (and its FIN) before the backend was even chosen', async () => {
      const echo = await startEchoBackend();
      const source = new TestSource([backend('127.0.0.1', echo.address.port)]);
      const { address } = await start({ source });
      source.hold();
      const socket = await connectTcp(address);
      const payload = randomBytes(64 * 1024);
      const received = readAll(socket);
      await new Promise<void>((resolve) => socket.end(payload, resolve));
      // The forwarder has accepted and is waiting for its backend set: nothing dialed yet.
      await waitFor(() => source.calls === 1, { what: 'the forwarder to ask for backends' });
      expect(echo.accepted).toBe(0);
      source.release();
      expect(sha256(await received)).toBe(sha256(payload));
    });
  });

  describe.skipIf(skip !== undefined)('Forwarder: many waiting clients', () => {
    it('holds 100 clients waiting for backends without a process warning, then serves them all', async () => {
      const warnings: string[] = [];
      const onWarning = (warning: Error): void => void warnings.push(warning.message);
      process.on('warning', onWarning);
      onTestFinished(() => void process.off('warning', onWarning));
      const echo = await startEchoBackend();
      const source = new TestSource([backend('127.0.0.1', echo.address.port)]);
      source.hold();
      const { forwarder, address } = await start({ source });
      const sockets = await Promise.all(Array.from({ length: 100 }, () => connectTcp(address)));
      await waitFor(() => source.calls === 100, { what: 'every client to wait for backends' });
      source.release();
      await Promise.all(sockets.map((socket, i) => echoRoundTrip(socket, `client ${i}`)));
      expect(forwarder.stats.forwarded).toBe(100);
      expect(warnings).toEqual([]);
    });
  });

  describe.skipIf(skip !== undefined)('Forwarder: backpressure', () => {
    it('stops reading from the client while the backend does not read, then delivers everything', async () => {
      const size = 64 * MiB;
      let backendSide: Socket | undefined;
      const received: Buffer[] = [];
      const server = await startTcpBackend((socket) => {
        backendSide = socket;
        socket.pause();
      });
      const { forwarder, address } = await start({ source: new TestSource([backend('127.0.0.1', server.address.port)]) });
      const socket = await connectTcp(address);
      const payload = randomBytes(size);
      // In chunks: the client's writableLength drops as each one is taken by the kernel.
      for (let offset = 0; offset < size; offset += MiB) socket.write(payload.subarray(offset, offset + MiB));
      socket.end();
      await waitFor(() => backendSide !== undefined && socket.writableLength < size, { what: 'bytes to start flowing' });
      // Without backpressure the forwarder would read all 64 MiB (into memory
      // or pipes). With it, reading stops once the kernel buffers and the
      // plane's buffers are full, and the rest waits in the client: wait
      // until what the client still holds stands still, then check it is
      // most of the payload.
      let last = -1;
      await waitFor(
        () => {
          const pending = socket.writableLength;
          const still = pending === last;
          last = pending;
          return still;
        },
        { what: 'the forwarder to stop reading', interval: 300 },
      );
      expect(socket.writableLength).toBeGreaterThan(size / 2);
      // The JS plane counts as it reads: the count stands still too, within bounds.
      if (plane.name === 'js') expect(forwarder.stats.bytesIn).toBeLessThan(size / 2);
      const all = new Promise<Buffer>((resolve) => {
        (backendSide as Socket).on('data', (chunk: Buffer) => received.push(chunk));
        (backendSide as Socket).once('end', () => resolve(Buffer.concat(received)));
      });
      (backendSide as Socket).resume();
      expect(sha256(await all)).toBe(sha256(payload));
    });
  });

  describe.skipIf(skip !== undefined)('Forwarder: half-close', () => {
    it('client FIN first: the backend sees it and its whole reply still reaches the client', async () => {
      const reply = randomBytes(512 * 1024);
      const seen: Buffer[] = [];
      const server = await startTcpBackend((socket) => {
        // Reply only after the client's FIN, as a request/response-until-EOF protocol does.
        void collect(socket).then((request) => {
          seen.push(request);
          socket.end(reply);
        });
      });
      const { address } = await start({ source: new TestSource([backend('127.0.0.1', server.address.port)]) });
      const socket = await connectTcp(address);
      const request = randomBytes(300 * 1024);
      const received = readAll(socket);
      socket.end(request);
      expect(sha256(await received)).toBe(sha256(reply));
      expect(seen.map(sha256)).toEqual([sha256(request)]);
      await waitClosed(socket);
    });

    it('backend FIN first: the client sees it and can still send everything', async () => {
      const received: Promise<Buffer>[] = [];
      const server = await startTcpBackend((socket) => {
        socket.end('bye, talk to me\n');
        received.push(collect(socket));
      });
      const { address } = await start({ source: new TestSource([backend('127.0.0.1', server.address.port)]) });
      const socket = await connectTcp(address);
      expect((await readAll(socket)).toString()).toBe('bye, talk to me\n');
      const payload = randomBytes(256 * 1024);
      socket.end(payload);
      await waitFor(() => received.length === 1, { what: 'the backend connection' });
      expect(sha256(await (received[0] as Promise<Buffer>))).toBe(sha256(payload));
      await waitClosed(socket);
    });
  });

  describe.skipIf(skip !== undefined)('Forwarder: errors', () => {
    it('a reset by the client resets the backend connection', async () => {
      const echo = await startEchoBackend();
      const { forwarder, address } = await start({ source: new TestSource([backend('127.0.0.1', echo.address.port)]) });
      const socket = await connectTcp(address);
      await echoRoundTrip(socket);
      const server = await echo.nextConnection();
      const errors: string[] = [];
      server.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
      socket.resetAndDestroy();
      await waitClosed(server);
      expect(errors).toEqual(['ECONNRESET']);
      await waitFor(() => forwarder.activeConnections === 0, { what: 'the pair to close' });
    });

    it('a reset by the backend resets the client connection', async () => {
      const echo = await startEchoBackend();
      const { forwarder, address } = await start({ source: new TestSource([backend('127.0.0.1', echo.address.port)]) });
      const socket = await connectTcp(address);
      await echoRoundTrip(socket);
      const errors: string[] = [];
      socket.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
      (await echo.nextConnection()).resetAndDestroy();
      await waitClosed(socket);
      expect(errors).toEqual(['ECONNRESET']);
      await waitFor(() => forwarder.activeConnections === 0, { what: 'the pair to close' });
    });
  });

  describe.skipIf(skip !== undefined)('Forwarder: peers we did not write', () => {
    it('carries 4 MiB each way intact through socat (an echo)', async () => {
      const { address: echo } = await startSocatServer('fork', 'PIPE', ['-t', '30']);
      const { forwarder, address } = await start({ source: new TestSource([backend(echo.host, echo.port)]) });
      const payload = randomBytes(4 * MiB);
      const socket = await connectTcp(address);
      const received = readAll(socket, 60_000);
      socket.end(payload);
      expect(sha256(await received)).toBe(sha256(payload));
      await waitFor(() => forwarder.activeConnections === 0, { what: 'the pair to close' });
      expect(forwarder.stats).toMatchObject({ bytesIn: 4 * MiB, bytesOut: 4 * MiB });
    });

    it('socat SIGKILLed with SO_LINGER 0 mid-stream: the client sees a reset, not a FIN', async () => {
      const { socat, address: echo } = await startSocatServer('linger=0', 'PIPE');
      const { forwarder, address } = await start({ source: new TestSource([backend(echo.host, echo.port)]) });
      const socket = connect({ host: address.host, port: address.port, allowHalfOpen: true });
      onTestFinished(() => void socket.destroy());
      let echoed = 0;
      const outcome = streamOutcome(socket, undefined, (chunk) => (echoed += chunk.length));
      const chunk = randomBytes(16 * 1024);
      const pump = setInterval(() => socket.writable && socket.write(chunk), 2);
      onTestFinished(() => clearInterval(pump));
      await waitFor(() => echoed >= 256 * 1024, { what: 'bytes echoed by socat' });
      await socat.kill('SIGKILL');
      expect(await outcome).toMatchObject({ ended: false, error: 'ECONNRESET' });
      clearInterval(pump);
      await waitFor(() => forwarder.activeConnections === 0, { what: 'the pair to close' });
    });

    it('a backend that resets after its FIN (a half-close, then a reset) resets the client too', async () => {
      const server = await startTcpBackend((socket) => {
        socket.end('done\n');
        let got = 0;
        socket.on('data', (data: Buffer) => {
          got += data.length;
          if (got >= 64 * 1024) socket.resetAndDestroy();
        });
      });
      const { forwarder, address } = await start({ source: new TestSource([backend('127.0.0.1', server.address.port)]) });
      const socket = await connectTcp(address);
      const errors: string[] = [];
      socket.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
      expect((await readAll(socket)).toString()).toBe('done\n');
      const chunk = randomBytes(16 * 1024);
      const pump = setInterval(() => socket.writable && socket.write(chunk), 2);
      onTestFinished(() => clearInterval(pump));
      await waitClosed(socket);
      clearInterval(pump);
      expect(['ECONNRESET', 'EPIPE']).toContain(errors[0]);
      await waitFor(() => forwarder.activeConnections === 0, { what: 'the pair to close' });
    });
  });

  describe.skipIf(skip !== undefined)('Forwarder: idle timeout', () => {
    it('closes a pair idle for idleTimeout; without the option a pair stays open', async () => {
      const echo = await startEchoBackend();
      const source = new TestSource([backend('127.0.0.1', echo.address.port)]);
      const idle = await start({ source, idleTimeout: 300 });
      const plain = await start({ source });
      const a = await connectTcp(idle.address);
      const b = await connectTcp(plain.address);
      await echoRoundTrip(a);
      await echoRoundTrip(b);
      const quiet = Date.now();
      await waitDisconnected(a);
      expect(Date.now() - quiet).toBeGreaterThanOrEqual(250);
      await waitFor(() => idle.forwarder.activeConnections === 0, { what: 'the idle pair to be closed' });
      expect(idle.forwarder.stats.idleTimeouts).toBe(1);
      // The default forwarder's pair has been just as idle, and still works.
      expect(b.closed).toBe(false);
      await echoRoundTrip(b, 'still here');
      expect(plain.forwarder.stats.idleTimeouts).toBe(0);
    });

    it('traffic keeps a pair alive past idleTimeout', async () => {
      const echo = await startEchoBackend();
      const { address, forwarder } = await start({ source: new TestSource([backend('127.0.0.1', echo.address.port)]), idleTimeout: 400 });
      const socket = await connectTcp(address);
      const started = Date.now();
      // Talk every ~100 ms for well over the idle timeout.
      while (Date.now() - started < 1200) {
        await echoRoundTrip(socket);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(socket.closed).toBe(false);
      expect(forwarder.stats.idleTimeouts).toBe(0);
    });
  });
});
