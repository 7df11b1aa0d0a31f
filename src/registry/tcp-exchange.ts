import { connect, type Socket } from 'node:net';
import { errorMessage } from '../core/errors.js';
import type { NotePhase } from './bounded-check.js';
import type { CheckResult } from './health-check.js';

/** Decides a check from what the server sent so far; `ended`: the server closed its side. Undefined: wait for more. */
export type DecideAnswer = (received: Buffer, ended: boolean) => CheckResult | undefined;

export interface TcpExchangeOptions {
  host: string;
  port: number;
  /** Written once connected. */
  send?: Buffer | undefined;
  /** Without it the check passes once connected (and `send` written). */
  decide?: DecideAnswer | undefined;
  /** Ends the exchange (from `boundedCheck`): the socket is destroyed. */
  signal: AbortSignal;
  note: NotePhase;
  /**
   * How the connection ends once decided. Default: let the server close
   * first (protocols such as ZooKeeper's four-letter words and Redis `QUIT`
   * close after their answer), and close our side if it has not within
   * `LINGER_MS`; what arrives meanwhile is read and dropped, so the close is
   * a FIN, never a reset.
   */
  finish?: (socket: Socket, received: Buffer) => void;
}

/** More than any health answer: past it the check fails instead of buffering. */
const MAX_ANSWER = 64 * 1024;
/** How long a decided exchange waits for the server to close first. */
const LINGER_MS = 250;
/** Past this a closing socket is destroyed, whatever the server does. */
const CLOSE_CAP_MS = 2000;

/**
 * One health-check exchange over TCP (HAProxy's `tcp-check connect`, `send`,
 * `expect`): connect, write `send`, feed every byte that arrives to `decide`
 * until it has a verdict. Resolves with the verdict; fails on a refused or
 * reset connection, on a close before a verdict, or on an answer longer than
 * 64 KiB. Never rejects. The deadline is the caller's (`signal`).
 */
export function tcpExchange(options: TcpExchangeOptions): Promise<CheckResult> {
  const { signal, note, decide } = options;
  return new Promise<CheckResult>((resolve) => {
    const socket = connect({ host: options.host, port: options.port });
    let received = Buffer.alloc(0);
    let decided = false;
    const onAbort = (): void => void socket.destroy();
    signal.addEventListener('abort', onAbort, { once: true });
    const conclude = (result: CheckResult): void => {
      if (decided) return;
      decided = true;
      signal.removeEventListener('abort', onAbort);
      resolve(result);
      if (socket.destroyed) return;
      (options.finish ?? lingerClose)(socket, received);
    };
    // Errors after the verdict (a reset while closing) change nothing.
    socket.on('error', (err) => {
      conclude({ ok: false, reason: errorMessage(err) });
      socket.destroy();
    });
    socket.once('connect', () => {
      note(decide ? 'waiting for the answer' : 'sending');
      if (options.send !== undefined && options.send.length > 0) {
        socket.write(options.send, (err) => {
          if (!err && !decide) conclude({ ok: true, reason: `connected, sent ${options.send?.length ?? 0} bytes` });
        });
      } else if (!decide) {
        conclude({ ok: true, reason: 'connected' });
      }
    });
    socket.on('data', (chunk: Buffer) => {
      if (decided) return;
      received = Buffer.concat([received, chunk]);
      if (received.length > MAX_ANSWER) {
        conclude({ ok: false, reason: `answer longer than ${MAX_ANSWER} bytes without a verdict` });
        return;
      }
      const result = decide?.(received, false);
      if (result) conclude(result);
    });
    socket.once('end', () => {
      if (decided) return;
      const result = decide?.(received, true);
      conclude(result ?? { ok: false, reason: received.length === 0 ? 'closed without an answer' : `closed before a complete answer: ${answerExcerpt(received)}` });
    });
    socket.once('close', () => conclude({ ok: false, reason: 'connection closed' }));
  });
}

/** The first line of an answer, short and printable, for a reason. */
export function answerExcerpt(received: Buffer): string {
  const text = received.toString('latin1');
  const firstLine = text.split(/\r?\n/, 1)[0] ?? '';
  const shown = firstLine.length > 60 ? `${firstLine.slice(0, 60)}…` : firstLine;
  return JSON.stringify(shown);
}

function lingerClose(socket: Socket, _received: Buffer): void {
  const cap = setTimeout(() => socket.destroy(), CLOSE_CAP_MS);
  cap.unref();
  socket.once('close', () => clearTimeout(cap));
  // Keep reading (and dropping): unread data at close would make the kernel send a reset.
  socket.removeAllListeners('data');
  socket.resume();
  if (socket.readableEnded) {
    socket.end();
    return;
  }
  // Without allowHalfOpen, the server's FIN ends our side by itself.
  const linger = setTimeout(() => socket.end(), LINGER_MS);
  linger.unref();
  socket.once('end', () => clearTimeout(linger));
}
