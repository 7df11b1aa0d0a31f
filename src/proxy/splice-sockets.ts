import type { Socket } from 'node:net';
import { errorMessage } from '../core/errors.js';
import type { SpliceOptions, SpliceResult } from './data-plane.js';
import { endWasReset, resetSocket } from './tcp-reset.js';

/**
 * Pump bytes both ways between two connected sockets until both are closed;
 * the promise never rejects. The JS data plane.
 *
 * - Backpressure: `pipe` pauses the reading side while the other's write
 *   buffer is full.
 * - Half-close (both sockets need `allowHalfOpen`): a FIN read on one side
 *   ends the other's write side once everything before it is written; the
 *   other direction keeps flowing until its own FIN.
 * - An error (a reset, EPIPE...) on one side resets the other, so the peer
 *   learns the stream was cut instead of taking a clean FIN for a complete
 *   reply. So does an error that came before the pair was wired (a backend
 *   that reset right after it accepted), and a reset Node reported as an
 *   'end' (`endWasReset`).
 * - A socket that closes without finishing both directions (destroyed by a
 *   forced drain) resets the other; one that closed cleanly leaves the
 *   other to flush what it still buffers. The idle timeout closes both
 *   plainly: nothing is in flight on an idle pair.
 */
export function spliceSockets(client: Socket, backend: Socket, options: SpliceOptions = {}): Promise<SpliceResult> {
  return new Promise((resolve) => {
    let result: SpliceResult | undefined;
    let open = 2;
    const closed = (): void => {
      if (--open === 0) {
        options.signal?.removeEventListener('abort', onAbort);
        resolve(result ?? { end: 'closed' });
      }
    };
    const onAbort = (): void => {
      resetSocket(client);
      resetSocket(backend);
    };
    const wire = (self: Socket, other: Socket, failure: 'client-error' | 'backend-error', onData?: (bytes: number) => void): void => {
      const onError = (err: Error): void => {
        result ??= { end: failure, error: errorMessage(err) };
        resetSocket(other);
      };
      self.on('error', onError);
      // An error already emitted (to a listener of the dial) is still the cause.
      if (self.errored) onError(self.errored);
      const onClose = (): void => {
        if (!(self.readableEnded && self.writableFinished)) resetSocket(other);
        closed();
      };
      if (self.closed) {
        queueMicrotask(onClose);
        return;
      }
      self.once('close', onClose);
      if (options.idleTimeout !== undefined) {
        // Reads and writes both count as activity on a socket, and every byte
        // is read on one socket and written on the other: a pair is idle only
        // when both timers run out, so either one firing means "idle".
        self.setTimeout(options.idleTimeout, () => {
          result ??= { end: 'idle' };
          self.destroy();
          other.destroy();
        });
      }
      if (onData) self.on('data', (chunk: Buffer) => onData(chunk.length));
      // The FIN is passed on here, not by pipe: first make sure it was one.
      self.pipe(other, { end: false });
      self.once('end', () => {
        if (!endWasReset(self)) {
          other.end();
          return;
        }
        const reset: NodeJS.ErrnoException = new Error('read ECONNRESET (reported as the end of the stream)');
        reset.code = 'ECONNRESET';
        onError(reset);
        self.destroy();
      });
    };
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    wire(client, backend, 'client-error', options.onClientData);
    wire(backend, client, 'backend-error', options.onBackendData);
  });
}
