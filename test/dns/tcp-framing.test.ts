import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameDecoder, frameMessage } from '../../src/dns/tcp-framing.js';

const messages = [Buffer.from('first message'), Buffer.from('2'), Buffer.alloc(700, 7)];
const stream = Buffer.concat(messages.map(frameMessage));

describe('tcp framing', () => {
  it('prefixes the length as two bytes, big-endian', () => {
    expect([...frameMessage(Buffer.alloc(258, 1)).subarray(0, 2)]).toEqual([1, 2]);
  });

  it('reads several messages merged in one chunk', () => {
    expect(new FrameDecoder().push(stream)).toEqual(messages);
  });

  it('reads messages split byte by byte, including the length prefix', () => {
    const decoder = new FrameDecoder();
    const out: Buffer[] = [];
    for (const byte of stream) out.push(...decoder.push(Buffer.from([byte])));
    expect(out).toEqual(messages);
    expect(decoder.buffered).toBe(0);
  });

  it('reads the same messages whatever the chunking (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 20 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const decoder = new FrameDecoder();
        const out: Buffer[] = [];
        let from = 0;
        for (const point of [...points, stream.length]) {
          out.push(...decoder.push(stream.subarray(from, point)));
          from = point;
        }
        expect(out).toEqual(messages);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps a partial frame until the rest arrives', () => {
    const decoder = new FrameDecoder();
    expect(decoder.push(stream.subarray(0, 5))).toEqual([]);
    expect(decoder.buffered).toBe(5);
  });

  it('rejects an oversized frame before buffering it', () => {
    const decoder = new FrameDecoder({ maxFrame: 512 });
    expect(() => decoder.push(Buffer.from([0x02, 0x01, 0, 0]))).toThrowError(/length 513 is outside 1-512/);
    expect(decoder.buffered).toBe(0);
  });

  it('rejects a zero-length frame', () => {
    expect(() => new FrameDecoder().push(Buffer.from([0, 0]))).toThrowError(/length 0/);
  });

  it('refuses to frame a message over 65535 bytes', () => {
    expect(() => frameMessage(Buffer.alloc(65536))).toThrowError(/over 65535/);
  });
});
