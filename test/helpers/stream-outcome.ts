import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { endWasReset } from '../../src/proxy/tcp-reset.js';
import { WAIT_TIMEOUT } from './wait-for.js';

/** How a TCP stream ended, seen from one side: what it read, and whether the peer ended it with a FIN or a reset. */
export interface StreamOutcome {
  /** Bytes read. */
  bytes: number;
  /** sha256 (hex) of every byte read, in order. */
  sha256: string;
  /** The peer's FIN arrived ('end' that was not a reset in disguise, see `endWasReset`). */
  ended: boolean;
  /** The socket's error code (ECONNRESET, EPIPE...), if it had one. */
  error?: string;
}

/**
 * Read `socket` to its close and say how it ended. Rejects only if it stays
 * open for `timeout` ms. `onData` sees each chunk as it arrives. Node may
 * report a reset right behind data as 'end': it counts as ECONNRESET here,
 * as the kernel saw it. Give it a half-open capable socket (`allowHalfOpen`)
 * that has not ended its side, or a reset may pass for a FIN.
 */
export function streamOutcome(socket: Socket, timeout = WAIT_TIMEOUT, onData?: (chunk: Buffer) => void): Promise<StreamOutcome> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let ended = false;
    let error: string | undefined;
    const timer = setTimeout(() => reject(new Error(`stream still open after ${timeout} ms (${bytes} bytes read, ended: ${ended})`)), timeout);
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
      onData?.(chunk);
    });
    socket.once('end', () => {
      if (!endWasReset(socket)) ended = true;
      else {
        error ??= 'ECONNRESET';
        socket.destroy();
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ bytes, sha256: hash.digest('hex'), ended, ...(error === undefined ? {} : { error }) });
    });
  });
}
