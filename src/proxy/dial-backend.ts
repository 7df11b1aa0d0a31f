import type { Socket } from 'node:net';
import { SrvlinkError } from '../core/errors.js';
import { formatHostPort } from '../core/host-port.js';

/** Opens a TCP connection; the forwarder's seam (default: `net.connect` with `allowHalfOpen`). */
export type DialFunction = (host: string, port: number) => Socket;

/** Why a dial failed; `reason` is the short form used in the "tried ..." summary. */
export class DialError extends SrvlinkError {
  /** `ECONNREFUSED`, `timed out after 2000 ms`, `aborted`... */
  readonly reason: string;

  constructor(code: 'ERR_DIAL' | 'ERR_DIAL_TIMEOUT' | 'ERR_DIAL_ABORTED', address: string, reason: string, options?: { cause?: unknown }) {
    super(code, `cannot dial backend "${address}": ${reason}`, options);
    this.name = 'DialError';
    this.reason = reason;
  }
}

export interface DialOptions {
  /** Give up after this many ms (the socket is destroyed). */
  timeout: number;
  /** Aborting destroys the socket being dialed (forced end of a drain). */
  signal?: AbortSignal;
}

/**
 * Dial `host:port` through `dial` and resolve with the socket once it is
 * connected; reject with a `DialError` on a connect error, after
 * `options.timeout` ms, or when `options.signal` aborts. A failed socket is
 * destroyed. The connected socket keeps an `error` listener that ignores
 * errors: the caller attaches its own, and until then (a few microtasks, or
 * longer if the client went away) a reset must not crash the process.
 */
export function dialBackend(dial: DialFunction, host: string, port: number, options: DialOptions): Promise<Socket> {
  const address = formatHostPort({ host, port });
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new DialError('ERR_DIAL_ABORTED', address, 'aborted'));
      return;
    }
    let socket: Socket;
    try {
      socket = dial(host, port);
    } catch (err) {
      reject(new DialError('ERR_DIAL', address, reasonOf(err), { cause: err }));
      return;
    }
    socket.on('error', ignore);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      socket.off('close', onClose);
      options.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (error: DialError): void => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onConnect = (): void => {
      cleanup();
      resolve(socket);
    };
    const onError = (err: Error): void => fail(new DialError('ERR_DIAL', address, reasonOf(err), { cause: err }));
    const onClose = (): void => fail(new DialError('ERR_DIAL', address, 'closed before connecting'));
    const onAbort = (): void => fail(new DialError('ERR_DIAL_ABORTED', address, 'aborted'));
    const timer = setTimeout(() => fail(new DialError('ERR_DIAL_TIMEOUT', address, `timed out after ${options.timeout} ms`)), options.timeout);
    socket.once('connect', onConnect);
    socket.once('error', onError);
    socket.once('close', onClose);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    // A seam may hand back a socket that is already connected.
    if (!socket.pending && !socket.connecting && !socket.destroyed) onConnect();
  });
}

/** The errno code (`ECONNREFUSED`) when there is one: short enough for a list of attempts. */
function reasonOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string') return code;
  return err instanceof Error ? err.message : String(err);
}

function ignore(): void {}
