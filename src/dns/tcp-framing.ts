import { MalformedMessageError } from '../core/errors.js';

/** RFC 1035 §4.2.2 (and RFC 7766 §8): each TCP message is preceded by its length as 2 bytes, big-endian. */
export function frameMessage(message: Uint8Array): Buffer {
  if (message.length > 0xffff) throw new MalformedMessageError(`cannot frame message of ${message.length} bytes: over 65535`);
  const out = Buffer.allocUnsafe(message.length + 2);
  out.writeUInt16BE(message.length, 0);
  out.set(message, 2);
  return out;
}

export interface FrameDecoderOptions {
  /** Frames longer than this are refused (the connection should be closed). Default 65535. */
  maxFrame?: number;
}

/**
 * Reassembles length-prefixed DNS messages from a TCP byte stream: several
 * messages in one chunk, one message split over many chunks, a length prefix
 * split between chunks. Holds at most one frame's bytes.
 */
export class FrameDecoder {
  readonly #maxFrame: number;
  #chunks: Buffer[] = [];
  #buffered = 0;

  constructor(options: FrameDecoderOptions = {}) {
    this.#maxFrame = options.maxFrame ?? 0xffff;
  }

  /** Bytes held while waiting for the rest of a frame. */
  get buffered(): number {
    return this.#buffered;
  }

  /**
   * Add bytes from the stream; return every complete message they finish.
   * Throws `MalformedMessageError` for a frame longer than `maxFrame` or of
   * length 0; the stream cannot be resynchronised after that.
   */
  push(chunk: Uint8Array): Buffer[] {
    if (chunk.length > 0) {
      this.#chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      this.#buffered += chunk.length;
    }
    const frames: Buffer[] = [];
    while (this.#buffered >= 2) {
      const head = this.#peekLength();
      if (head === 0 || head > this.#maxFrame) {
        this.#chunks = [];
        this.#buffered = 0;
        throw new MalformedMessageError(`cannot read tcp frame: length ${head} is outside 1-${this.#maxFrame}`);
      }
      if (this.#buffered < head + 2) break;
      const all = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks, this.#buffered);
      frames.push(Buffer.from(all.subarray(2, 2 + head)));
      const rest = all.subarray(2 + head);
      this.#chunks = rest.length > 0 ? [rest] : [];
      this.#buffered = rest.length;
    }
    return frames;
  }

  #peekLength(): number {
    const first = this.#chunks[0] as Buffer;
    if (first.length >= 2) return first.readUInt16BE(0);
    const second = this.#chunks[1] as Buffer;
    return ((first[0] as number) << 8) | (second[0] as number);
  }
}
