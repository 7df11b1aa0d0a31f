import type { Socket } from 'node:net';
import { SrvlinkError } from '../core/errors.js';
import { formatHostPort } from '../core/host-port.js';
import type { DeadlineQueue, Expiring } from './deadline-queue.js';

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

/** A wait of the forwarder with a deadline: `expire` when it passes, `abort` on a forced end of a drain. */
export interface PendingWait extends Expiring {
  abort(): void;
}

export interface DialOptions {
  /** Give up after this many ms (the socket is destroyed). */
  timeout: number;
  /**
   * Where the timeout waits: one timer for every dial of a forwarder. An
   * entry drained from it and aborted destroys the socket being dialed
   * (forced end of a drain).
   */
  deadlines: DeadlineQueue<PendingWait>;
}

/**
 * Dial `host:port` through `dial` and resolve with the socket once it is
 * connected; reject with a `DialError` on a connect error, after
 * `options.timeout` ms, or when its entry of `options.deadlines` is aborted. A failed socket is
 * destroyed. The connected socket keeps an `error` listener that ignores
 * errors: the caller attaches its own, and until then (a few microtasks, or
 * longer if the client went away) a reset must not crash the process.
 */
export function dialBackend(dial: DialFunction, host: string, port: number, options: DialOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    let socket: Socket;
    try {
      socket = dial(host, port);
    } catch (err) {
      reject(new DialError('ERR_DIAL', formatHostPort({ host, port }), reasonOf(err), { cause: err }));
      return;
    }
    socket.on('error', ignore);
    const cleanup = (): void => {
      deadline.cancel();
      socket.off('connect', onConnect);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    // The address is for error messages only: made when one is.
    const fail = (code: 'ERR_DIAL' | 'ERR_DIAL_TIMEOUT' | 'ERR_DIAL_ABORTED', reason: string, cause?: unknown): void => {
      cleanup();
      socket.destroy();
      reject(new DialError(code, formatHostPort({ host, port }), reason, cause === undefined ? undefined : { cause }));
    };
    const onConnect = (): void => {
      cleanup();
      resolve(socket);
    };
    const onError = (err: Error): void => fail('ERR_DIAL', reasonOf(err), err);
    const onClose = (): void => fail('ERR_DIAL', 'closed before connecting');
    const deadline = options.deadlines.add(options.timeout, {
      expire: () => fail('ERR_DIAL_TIMEOUT', `timed out after ${options.timeout} ms`),
      abort: () => fail('ERR_DIAL_ABORTED', 'aborted'),
    });
    socket.once('connect', onConnect);
    socket.once('error', onError);
    socket.once('close', onClose);
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
