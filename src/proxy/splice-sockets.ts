import type { Socket } from 'node:net';
import { errorMessage } from '../core/errors.js';

export interface SpliceOptions {
  /** Destroy both sockets after this many ms without a byte either way; off when undefined. */
  idleTimeout?: number | undefined;
  /** Called with the size of every chunk read from the client (bytes towards the backend). */
  onClientData?: (bytes: number) => void;
  /** Called with the size of every chunk read from the backend (bytes towards the client). */
  onBackendData?: (bytes: number) => void;
}

/** How a spliced pair ended (the first cause seen wins). */
export interface SpliceResult {
  end: 'closed' | 'idle' | 'client-error' | 'backend-error';
  /** The error message for the `*-error` ends. */
  error?: string;
}

/**
 * Pump bytes both ways between two connected sockets until both are closed;
 * the promise never rejects.
 *
 * - Backpressure: `pipe` pauses the reading side while the other's write
 *   buffer is full.
 * - Half-close (both sockets need `allowHalfOpen`): a FIN read on one side
 *   ends the other's write side once everything before it is written; the
 *   other direction keeps flowing until its own FIN.
 * - An error (a reset, EPIPE...) on one side resets the other, so the peer
 *   learns the stream was cut instead of taking a clean FIN for a complete
 *   reply.
 * - A socket that closes without finishing both directions (destroyed by
 *   the idle timeout or a forced drain) takes the other down with it; one
 *   that closed cleanly leaves the other to flush what it still buffers.
 */
export function spliceSockets(client: Socket, backend: Socket, options: SpliceOptions = {}): Promise<SpliceResult> {
  return new Promise((resolve) => {
    let result: SpliceResult | undefined;
    let open = 2;
    const closed = (): void => {
      if (--open === 0) resolve(result ?? { end: 'closed' });
    };
    const wire = (self: Socket, other: Socket, failure: 'client-error' | 'backend-error', onData?: (bytes: number) => void): void => {
      self.on('error', (err) => {
        result ??= { end: failure, error: errorMessage(err) };
        resetSocket(other);
      });
      const onClose = (): void => {
        if (!(self.readableEnded && self.writableFinished)) other.destroy();
        closed();
      };
      if (self.closed) {
        queueMicrotask(onClose);
        return;
      }
      self.once('close', onClose);
      if (onData) self.on('data', (chunk: Buffer) => onData(chunk.length));
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
      self.pipe(other);
    };
    wire(client, backend, 'client-error', options.onClientData);
    wire(backend, client, 'backend-error', options.onBackendData);
  });
}

/** Close with a TCP RST when possible (the peer must see the cut), else plainly. */
function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    // Not a TCP handle (a seam may dial a Unix socket): no RST to send.
    socket.destroy();
  }
}
