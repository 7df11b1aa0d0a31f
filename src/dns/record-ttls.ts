import { HEADER_LENGTH, OPT_TYPE as OPT } from './wire.js';

/**
 * Where the TTL of each resource record of a wire message is (answer,
 * authority, additional; the OPT pseudo-record left out: its "TTL" holds
 * flags), or undefined when the message cannot be walked. Names may be
 * compressed (RFC 1035 §4.1.4).
 */
export function recordTtlOffsets(wire: Buffer): number[] | undefined {
  if (wire.length < HEADER_LENGTH) return undefined;
  const questions = wire.readUInt16BE(4);
  const records = wire.readUInt16BE(6) + wire.readUInt16BE(8) + wire.readUInt16BE(10);
  let at = HEADER_LENGTH;
  for (let i = 0; i < questions; i++) at = skipName(wire, at) + 4;
  const offsets: number[] = [];
  for (let i = 0; i < records; i++) {
    at = skipName(wire, at);
    if (at + 10 > wire.length) return undefined;
    if (wire.readUInt16BE(at) !== OPT) offsets.push(at + 4);
    at += 10 + wire.readUInt16BE(at + 8);
  }
  return at <= wire.length ? offsets : undefined;
}

/** The offset just past the name at `at` (labels, ending in the root or a pointer); past the end when it runs off. */
function skipName(wire: Buffer, at: number): number {
  for (;;) {
    const label = wire[at];
    if (label === undefined) return wire.length + 1;
    if ((label & 0xc0) === 0xc0) return at + 2;
    if (label > 63) return wire.length + 1;
    at += label + 1;
    if (label === 0) return at;
  }
}
