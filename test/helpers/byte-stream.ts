import type { Socket } from 'node:net';
import { seededRandom } from './seeded-random.js';

/**
 * A stream of bytes whose every byte is known by its offset: a block of
 * pseudo-random bytes, a prime number long, repeated. A lost, duplicated or
 * reordered chunk shows as a mismatch (the block never lines up with itself
 * at another offset), so a reader checks what it got without keeping it.
 */
const BLOCK_LENGTH = 65_521;
const BLOCK = (() => {
  const random = seededRandom(0x5eed);
  const block = Buffer.alloc(BLOCK_LENGTH * 2);
  for (let i = 0; i < BLOCK_LENGTH; i++) block[i] = Math.floor(random() * 256);
  block.copy(block, BLOCK_LENGTH, 0, BLOCK_LENGTH);
  return block;
})();

/** The `length` (at most 65,521) bytes of the pattern from `offset`. */
export function patternAt(offset: number, length: number): Buffer {
  const start = offset % BLOCK_LENGTH;
  return BLOCK.subarray(start, start + Math.min(length, BLOCK_LENGTH));
}

/** What a `PatternWriter` did. */
export interface PatternWriter {
  /** Bytes handed to the socket so far. */
  readonly written: number;
  /** When the socket last took bytes (ms, `performance.now`). */
  readonly lastProgress: number;
  /** The socket's buffer is full: waiting for 'drain'. */
  readonly blocked: boolean;
  /** Stop producing; once the socket has flushed what it holds, end it (FIN). */
  finish(): void;
  /** Resolves when the writer stopped: `limit` reached, `finish()` called, or the socket failed. */
  readonly done: Promise<void>;
}

/**
 * Write the pattern to `socket` for as long as it takes bytes, honouring
 * backpressure (a chunk at a time, waiting for 'drain'), up to `limit`
 * bytes; then end the socket.
 */
export function writePattern(socket: Socket, limit: number): PatternWriter {
  const chunk = 16_384;
  let written = 0;
  let lastProgress = performance.now();
  let blocked = false;
  let finished = false;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const stop = (): void => {
    finished = true;
    if (!socket.destroyed) socket.end();
    resolveDone();
  };
  const pump = (): void => {
    blocked = false;
    lastProgress = performance.now();
    while (!finished && written < limit) {
      const bytes = patternAt(written, Math.min(chunk, limit - written));
      written += bytes.length;
      if (!socket.write(bytes)) {
        blocked = true;
        socket.once('drain', pump);
        return;
      }
    }
    stop();
  };
  socket.once('close', () => {
    finished = true;
    resolveDone();
  });
  pump();
  return {
    get written() {
      return written;
    },
    get lastProgress() {
      return lastProgress;
    },
    get blocked() {
      return blocked;
    },
    finish: () => {
      if (finished) return;
      finished = true;
      socket.removeListener('drain', pump);
      stop();
    },
    done,
  };
}

/** What a `PatternReader` saw. */
export interface PatternReader {
  /** Bytes received, all checked against the pattern. */
  readonly received: number;
  /** Bytes that differed from the pattern at their offset (0 unless something is corrupted). */
  readonly mismatched: number;
  /** Resolves at the end of the stream: `fin` (the peer's FIN) or `reset` (an error, or a close without FIN). */
  readonly ended: Promise<'fin' | 'reset'>;
}

/** Read `socket` to its end (it starts reading now), checking every byte against the pattern. */
export function readPattern(socket: Socket): PatternReader {
  let received = 0;
  let mismatched = 0;
  socket.on('data', (data: Buffer) => {
    for (let at = 0; at < data.length; at += BLOCK_LENGTH) {
      const piece = data.subarray(at, at + BLOCK_LENGTH);
      if (!piece.equals(patternAt(received, piece.length))) {
        const expected = patternAt(received, piece.length);
        for (let i = 0; i < piece.length; i++) if (piece[i] !== expected[i]) mismatched++;
      }
      received += piece.length;
    }
  });
  const ended = new Promise<'fin' | 'reset'>((resolve) => {
    socket.once('end', () => resolve('fin'));
    socket.once('close', () => resolve('reset'));
  });
  socket.resume();
  return {
    get received() {
      return received;
    },
    get mismatched() {
      return mismatched;
    },
    ended,
  };
}
