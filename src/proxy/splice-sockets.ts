import { Socket } from 'node:net';
import { errorMessage } from '../core/errors.js';
import type { SpliceOptions, SpliceResult } from './data-plane.js';
import { endWasReset, resetSocket } from './tcp-reset.js';

/**
 * Pump bytes both ways between two connected sockets until both are closed;
 * the promise never rejects. The JS data plane.
 *
 * - Backpressure: a direction stops reading while the other socket's write
 *   buffer is full, and reads on once it drained.
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
 * - Byte counts are the sockets' own (`bytesRead`), told once at the end.
 *
 * Each socket reads into one buffer that every pair shares (`onread`: no
 * buffer allocated per read, as a stream's reads do), and what it read is
 * copied into a write buffer of a small free list, taken back when its
 * write is done: a write still pending never refers to memory a later read
 * fills. An idle pair holds no buffer. Where the socket cannot read that way
 * (a Node without the internals it takes), a direction reads the stream's
 * own chunks, with the same backpressure.
 */
export function spliceSockets(client: Socket, backend: Socket, options: SpliceOptions = {}): Promise<SpliceResult> {
  return new Promise((resolve) => {
    let result: SpliceResult | undefined;
    let open = 2;
    const closed = (): void => {
      if (--open === 0) {
        options.signal?.removeEventListener('abort', onAbort);
        options.onClientData?.(client.bytesRead);
        options.onBackendData?.(backend.bytesRead);
        resolve(result ?? { end: 'closed' });
      }
    };
    const onAbort = (): void => {
      resetSocket(client);
      resetSocket(backend);
    };
    const wire = (self: Socket, other: Socket, failure: 'client-error' | 'backend-error'): void => {
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
      relay(self, other);
      // The FIN is passed on here: first make sure it was one.
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
    wire(client, backend, 'client-error');
    wire(backend, client, 'backend-error');
  });
}

/** Bytes one read takes at most (libuv's own size for a stream's reads). */
const CHUNK = 64 * 1024;

/** Free write buffers kept for reuse; more are let go to the collector. */
const FREE_KEPT = 32;

/** The read buffer of every socket that reads through `onread`: each read is copied out of it at once. */
let shared: Buffer | undefined;
const free: Buffer[] = [];

/**
 * The symbols under which net.Socket keeps its `onread` option, found on a
 * socket that has none (`onread` can only be given to the constructor, and
 * the listener's sockets are made by Node); undefined if this Node keeps
 * them otherwise.
 */
const userBuffer = ((): { buffer: symbol; callback: symbol; generator: symbol } | undefined => {
  const own = Object.getOwnPropertySymbols(new Socket());
  const named = (description: string): symbol | undefined => own.find((symbol) => symbol.description === description);
  const buffer = named('kBuffer');
  const callback = named('kBufferCb');
  const generator = named('kBufferGen');
  return buffer && callback && generator ? { buffer, callback, generator } : undefined;
})();

/** Whether sockets of this Node can read into the shared buffer (else every direction reads its stream's chunks). */
export const readsInPlace = userBuffer !== undefined;

interface StreamHandle {
  reading?: boolean;
  useUserBuffer?: (buffer: Uint8Array) => void;
}

/** Move what `from` reads to `to` until `from` ends, stopping while `to` cannot take more. */
function relay(from: Socket, to: Socket): void {
  const direction = new Direction(from, to);
  to.on('drain', direction.onDrain);
  if (!readIntoShared(from, direction.onRead)) from.on('data', direction.onData);
  from.resume();
}

/** One direction of a pair; its handlers are made once, not per chunk. */
class Direction {
  /** Write buffers whose writes are not done yet, oldest first. */
  readonly #pending: Buffer[] = [];
  #paused = false;

  constructor(
    readonly from: Socket,
    readonly to: Socket,
  ) {}

  /** A read of `bytes` into the shared buffer; false stops reading (until `onDrain`). */
  readonly onRead = (bytes: number, buffer: Buffer): boolean => {
    // A short read gets a buffer of its size: a write buffer waiting on a
    // slow peer holds at most twice the bytes it carries.
    const copy = bytes < CHUNK / 2 ? Buffer.allocUnsafe(bytes) : (free.pop() ?? Buffer.allocUnsafeSlow(CHUNK));
    buffer.copy(copy, 0, 0, bytes);
    this.#pending.push(copy);
    if (this.to.write(copy.subarray(0, bytes), this.onWritten)) return true;
    this.#paused = true;
    return false;
  };

  /** A chunk of the stream's own (no `onread` on this socket). */
  readonly onData = (chunk: Buffer): void => {
    if (!this.to.write(chunk)) {
      this.#paused = true;
      this.from.pause();
    }
  };

  readonly onWritten = (): void => {
    const done = this.#pending.shift();
    if (done !== undefined && done.length === CHUNK && free.length < FREE_KEPT) free.push(done);
  };

  readonly onDrain = (): void => {
    if (!this.#paused) return;
    this.#paused = false;
    this.from.resume();
  };
}

/**
 * Make `socket` read into the shared buffer and hand each read to
 * `callback`, as net.Socket's `onread` option does; false when it cannot
 * (this Node keeps that option otherwise, the socket has no stream handle,
 * or it has read already).
 */
function readIntoShared(socket: Socket, callback: (bytes: number, buffer: Buffer) => boolean): boolean {
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
  if (userBuffer === undefined || typeof handle?.useUserBuffer !== 'function' || handle.reading === true) return false;
  if (socket.readableLength > 0 || socket.readableEnded || socket.destroyed) return false;
  shared ??= Buffer.allocUnsafeSlow(CHUNK);
  const fields = socket as unknown as Record<symbol, unknown>;
  fields[userBuffer.buffer] = shared;
  fields[userBuffer.callback] = callback;
  fields[userBuffer.generator] = null;
  handle.useUserBuffer(shared);
  return true;
}
