import { connect, createServer, type Server, type Socket } from 'node:net';
import { onTestFinished } from 'vitest';
import type { HostPort } from '../../src/core/host-port.js';
import { streamOutcome } from './stream-outcome.js';
import { WAIT_TIMEOUT } from './wait-for.js';

/**
 * Real TCP servers and clients for forwarding tests, on loopback and port 0.
 * Everything created here is closed when the running test ends, pass or
 * fail (call these from inside a test or a `beforeEach`).
 */

/** A TCP server standing in for a backend. */
export interface TcpBackend {
  /** The label given at start (named backends send it first). */
  readonly name: string;
  /** Where it listens. */
  readonly address: HostPort;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Server-side sockets still open. */
  readonly sockets: ReadonlySet<Socket>;
  /**
   * The next server-side socket, in accept order: one accepted earlier and
   * not yet taken, or the next one to come. Rejects after `timeout` ms.
   */
  nextConnection(timeout?: number): Promise<Socket>;
  /** Stop listening and destroy open sockets; safe to call twice. */
  close(): Promise<void>;
}

export interface TcpBackendOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default `backend`. */
  name?: string;
}

/**
 * Start a backend that hands every accepted socket to `onConnection`.
 * Sockets are half-open capable (`allowHalfOpen`): the handler decides when
 * to end its side. Socket errors are ignored unless the handler listens.
 */
export async function startTcpBackend(onConnection: (socket: Socket) => void, options: TcpBackendOptions = {}): Promise<TcpBackend> {
  const host = options.host ?? '127.0.0.1';
  const sockets = new Set<Socket>();
  const queue: Socket[] = [];
  const waiters: ((socket: Socket) => void)[] = [];
  let accepted = 0;
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => sockets.delete(socket));
    const waiter = waiters.shift();
    if (waiter) waiter(socket);
    else queue.push(socket);
    onConnection(socket);
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // A deep accept queue: a burst of dials (a flood through srvlink) must not find it full while this
    // process is busy with the clients; a full queue drops SYNs, and the dial times out.
    server.listen({ host, port: 0, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  if (!bound || typeof bound === 'string') throw new Error('tcp backend has no address');
  let closing: Promise<void> | undefined;
  const backend: TcpBackend = {
    name: options.name ?? 'backend',
    address: { host: bound.address, port: bound.port },
    get accepted() {
      return accepted;
    },
    sockets,
    nextConnection: (timeout = WAIT_TIMEOUT) => {
      const queued = queue.shift();
      if (queued) return Promise.resolve(queued);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(take), 1);
          reject(new Error(`backend "${options.name ?? 'backend'}": no connection within ${timeout} ms`));
        }, timeout);
        const take = (socket: Socket): void => {
          clearTimeout(timer);
          resolve(socket);
        };
        waiters.push(take);
      });
    },
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
  onTestFinished(() => backend.close());
  return backend;
}

/**
 * A backend that echoes every byte back. After the client's FIN it ends its
 * own side once everything is echoed, so "send, end, read until end" gets
 * back exactly what was sent.
 */
export function startEchoBackend(options: TcpBackendOptions = {}): Promise<TcpBackend> {
  return startTcpBackend((socket) => socket.pipe(socket), { name: 'echo', ...options });
}

/**
 * A backend that first sends its name and a newline, then echoes like
 * `startEchoBackend`: tells a test which backend a connection reached.
 */
export function startNamedBackend(name: string, options: TcpBackendOptions = {}): Promise<TcpBackend> {
  return startTcpBackend(
    (socket) => {
      socket.write(`${name}\n`);
      socket.pipe(socket);
    },
    { ...options, name },
  );
}

/** Ports already handed out by `unusedPort` in this process: each test gets distinct ones. */
const handedOut = new Set<number>();

/**
 * A port on `host` where nothing listens, and nothing of ours will: one of
 * the privileged ports 600-999, which tests never bind (they take port 0,
 * from the ephemeral range), checked to refuse connections now. A port
 * released after binding port 0 is no good: a test running in parallel may
 * be given it in between, and the "dead" backend answers.
 */
export async function unusedPort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 600 + Math.floor(Math.random() * 400);
    if (handedOut.has(port)) continue;
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
    });
    if (refused) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no refusing port found on ${host} among 600-999`);
}

/**
 * Connect to `address` (half-open capable, so the test can `end()` and
 * still read) and resolve once connected; destroyed when the test ends.
 */
export async function connectTcp(address: HostPort, timeout = WAIT_TIMEOUT): Promise<Socket> {
  const socket = connect({ host: address.host, port: address.port, allowHalfOpen: true, noDelay: true });
  onTestFinished(() => void socket.destroy());
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`cannot connect to ${address.host}:${address.port} within ${timeout} ms`)), timeout);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('error', fail);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', fail);
      resolve();
    });
  });
  // Later errors (a reset by the peer) show as 'close'; tests await that.
  socket.on('error', () => undefined);
  return socket;
}

/** Everything `socket` receives until the peer's FIN. Rejects on a reset, a close without FIN, or after `timeout` ms. */
export function readAll(socket: Socket, timeout = WAIT_TIMEOUT): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer): void => void chunks.push(chunk);
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error(`connection closed without a FIN after ${Buffer.concat(chunks).length} bytes`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no FIN within ${timeout} ms (${Buffer.concat(chunks).length} bytes received)`));
    }, timeout);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onClose);
    };
    if (socket.readableEnded) {
      onEnd();
      return;
    }
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onClose);
  });
}

/**
 * Exactly the next `length` bytes from `socket` (what follows stays
 * buffered for the next read). Rejects if the stream ends first or after
 * `timeout` ms.
 */
export function readBytes(socket: Socket, length: number, timeout = WAIT_TIMEOUT): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tryRead = (): void => {
      const buf = socket.read(length) as Buffer | null;
      if (!buf) return;
      cleanup();
      // After the FIN, read(n) hands out what is left even if shorter.
      if (buf.length < length) reject(new Error(`stream ended after ${buf.length} of ${length} bytes`));
      else resolve(buf);
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error(`stream ended before ${length} bytes arrived`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`fewer than ${length} bytes within ${timeout} ms (${socket.readableLength} buffered)`));
    }, timeout);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('readable', tryRead);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
    };
    socket.on('readable', tryRead);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}

/** The first line (without `\n`) from `socket`, e.g. a named backend's greeting. */
export async function readLine(socket: Socket, timeout = WAIT_TIMEOUT): Promise<string> {
  const bytes: Buffer[] = [];
  for (;;) {
    const byte = await readBytes(socket, 1, timeout);
    if (byte[0] === 0x0a) return Buffer.concat(bytes).toString();
    bytes.push(byte);
  }
}

/** Write `payload` and expect the same bytes back (an echo round trip through whatever is in between). */
export async function echoRoundTrip(socket: Socket, payload: Buffer | string = 'ping', timeout = WAIT_TIMEOUT): Promise<void> {
  const sent = Buffer.from(payload);
  socket.write(sent);
  const got = await readBytes(socket, sent.length, timeout);
  if (!got.equals(sent)) throw new Error(`echo mismatch: sent ${sent.length} bytes, got different bytes back`);
}

/** Resolves once `socket` has emitted 'close' (at once if it already has). */
export function waitClosed(socket: Socket, timeout = WAIT_TIMEOUT): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${timeout} ms`)), timeout);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Resolves once the peer has gone: a FIN ('end') or a close, whichever comes
 * first. A half-open capable socket (`connectTcp`) does not close on the
 * peer's FIN alone, so this is what "the other side closed me" looks like.
 */
export function waitDisconnected(socket: Socket, timeout = WAIT_TIMEOUT): Promise<void> {
  if (socket.closed || socket.readableEnded) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      socket.off('end', done);
      socket.off('close', done);
      resolve();
    };
    const timer = setTimeout(() => {
      socket.off('end', done);
      socket.off('close', done);
      reject(new Error(`peer still connected after ${timeout} ms`));
    }, timeout);
    socket.once('end', done);
    socket.once('close', done);
    // 'end' is only emitted once buffered data is consumed.
    socket.resume();
  });
}

/**
 * Connect to `address` and resolve once the connection is reset, during the
 * connect (accepted, then reset before the client saw it) or after it. Rejects
 * on a FIN, or if nothing happens within `timeout` ms: what a client with
 * nowhere to go must see from a forwarder.
 */
export async function expectReset(address: HostPort, timeout = WAIT_TIMEOUT): Promise<void> {
  const socket = connect({ host: address.host, port: address.port, allowHalfOpen: true });
  onTestFinished(() => void socket.destroy());
  const outcome = await streamOutcome(socket, timeout);
  if (outcome.error !== 'ECONNRESET') throw new Error(`expected a reset, got ${outcome.ended ? 'a FIN' : (outcome.error ?? 'a close')} after ${outcome.bytes} bytes`);
}

/** Connect to `address` (a forwarder in front of named backends) and read which backend answers: its first line. */
export async function whoAnswers(address: HostPort): Promise<string> {
  const socket = await connectTcp(address);
  try {
    return await readLine(socket);
  } finally {
    socket.destroy();
  }
}
