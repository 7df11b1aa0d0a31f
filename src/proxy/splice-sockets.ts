import { Socket } from 'node:net';
import { errorMessage } from '../core/errors.js';
import type { SpliceOptions, SpliceResult } from './data-plane.js';
import { endWasReset, resetSocket } from './tcp-reset.js';

/** Bytes read at once per direction; two such buffers per direction, reused for the pair's life. */
const READ_BUFFER = 64 * 1024;

/**
 * Pump bytes both ways between two connected sockets until both are closed;
 * the promise never rejects. The JS data plane.
 *
 * - Reads go into two buffers per direction, reused (Node's `onread`): no
 *   64 KiB allocation per read, no 'data' event per chunk. A chunk the
 *   other socket takes at once frees its buffer for the next read; one it
 *   has to queue stops reading (backpressure) until it drains, and the next
 *   read goes to the other buffer.
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
      if (!readInto(self, other, onData)) {
        // Not a socket whose reads can go to our buffers (a seam's stream): a pipe.
        if (onData) self.on('data', (chunk: Buffer) => onData(chunk.length));
        self.pipe(other, { end: false });
      }
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
    wire(client, backend, 'client-error', options.onClientData);
    wire(backend, client, 'backend-error', options.onBackendData);
  });
}

/** The symbols behind `net.Socket`'s `onread` option, found once on a socket made with it (Node keeps them internal). */
interface OnreadSymbols {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

let onreadSymbols: OnreadSymbols | null | undefined;

function findOnreadSymbols(): OnreadSymbols | null {
  // The constructor takes `onread` as net.connect does (@types/node lists it for connect only).
  const probe = new Socket({ onread: { buffer: () => Buffer.alloc(1), callback: () => undefined } } as ConstructorParameters<typeof Socket>[0]);
  const named = (name: string): symbol | undefined => Object.getOwnPropertySymbols(probe).find((s) => s.description === name);
  const buffer = named('kBuffer');
  const callback = named('kBufferCb');
  const generator = named('kBufferGen');
  probe.destroy();
  return buffer && callback && generator ? { buffer, callback, generator } : null;
}

/**
 * Make `self` read into two reused buffers and write each chunk to `other`,
 * as `net.Socket`'s `onread` option would have had it been given at
 * creation (an accepted socket cannot be given it). False, and nothing
 * changed, when `self` is not a TCP socket of this Node.
 */
function readInto(self: Socket, other: Socket, onData: ((bytes: number) => void) | undefined): boolean {
  onreadSymbols ??= findOnreadSymbols();
  const symbols = onreadSymbols;
  const handle = (self as unknown as { _handle?: { useUserBuffer?: (buf: Uint8Array) => void } | null })._handle;
  if (symbols === null || typeof handle?.useUserBuffer !== 'function' || self.readableLength > 0) return false;
  const state = new Direction(self, other, onData);
  const fields = self as unknown as Record<symbol, unknown>;
  fields[symbols.buffer] = state.current;
  fields[symbols.callback] = state.onRead;
  fields[symbols.generator] = state.next;
  handle.useUserBuffer(state.current);
  self.resume();
  return true;
}

/** One direction of a pair on the `onread` path: its two buffers and where its chunks go. */
class Direction {
  current: Buffer = Buffer.allocUnsafeSlow(READ_BUFFER);
  #spare: Buffer | undefined;
  /** The last chunk is still queued in `other` (it holds `current`): the next read goes to the other buffer. */
  #queued = false;
  /** Writes to `other` whose callback has not run yet. */
  #writes = 0;
  /** Reading stopped until every write is done (then no buffer is held by one). */
  #stopped = false;
  readonly #self: Socket;
  readonly #other: Socket;
  readonly #onData: ((bytes: number) => void) | undefined;

  constructor(self: Socket, other: Socket, onData: ((bytes: number) => void) | undefined) {
    this.#self = self;
    this.#other = other;
    this.#onData = onData;
  }

  /** A chunk read into `buffer`; false stops reading until `other` has written everything. */
  readonly onRead = (bytes: number, buffer: Buffer): boolean => {
    this.#onData?.(bytes);
    this.#writes++;
    this.#other.write(buffer.subarray(0, bytes), this.#onWritten);
    // Written through at once (the kernel took it all): the buffer is free again.
    if (this.#other.writableLength === 0) return true;
    this.#queued = true;
    this.#stopped = true;
    return false;
  };

  /** The buffer for the next read (Node asks after each chunk). */
  readonly next = (): Buffer => {
    if (!this.#queued) return this.current;
    this.#queued = false;
    const free = this.#spare ?? Buffer.allocUnsafeSlow(READ_BUFFER);
    this.#spare = this.current;
    this.current = free;
    return free;
  };

  /**
   * A write's callback (in order, also for those written through at once).
   * Reading resumes once none is left: 'drain' would not do, Node emits it
   * only for a queue above the high-water mark, not for a small chunk.
   */
  readonly #onWritten = (): void => {
    this.#writes--;
    if (!this.#stopped || this.#writes > 0) return;
    this.#stopped = false;
    if (!this.#self.destroyed && !this.#self.readableEnded) this.#self.resume();
  };
}
