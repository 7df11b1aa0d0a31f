import { MalformedMessageError } from '../core/errors.js';
import { HEADER_LENGTH as HEADER, MAX_MESSAGE_SIZE, TC_BIT } from './wire.js';

export { MAX_MESSAGE_SIZE };

/** RR type numbers (RFC 1035 §3.2.2, RFC 2782) whose RDATA holds names this pass knows how to find. */
const NS = 2;
const CNAME = 5;
const SOA = 6;
const PTR = 12;
const MX = 15;
const SRV = 33;

/** RFC 1035 §4.1.4: a pointer holds a 14-bit offset, so only names in the first 16 KiB can be pointed at. */
const MAX_POINTER = 0x3fff;

export interface CompressOptions {
  /** Bytes the result may take, at most; records that do not fit are left out. Default 65,535. */
  maxSize?: number;
  /** Bytes to keep free at the end (the OPT record the caller appends). Default 0. */
  reserve?: number;
  /** Compress SRV targets too (see `compressMessage`). Default false. */
  compressSrvTargets?: boolean;
}

export interface CompressedMessage {
  wire: Buffer;
  /** Records left out of the answer and authority sections (TC is then set in `wire`). */
  omittedAnswers: number;
  /** Records left out of the additional section (TC is not set for these: RFC 2181 §9). */
  omittedAdditionals: number;
  /** Whether the message holds SRV records (whose targets were, or could be, compressed). */
  hasSrv: boolean;
}

/**
 * Rewrite an uncompressed wire message (dns-packet's output: it never
 * compresses) with DNS name compression (RFC 1035 §4.1.4), cut to `maxSize`.
 *
 * - Compressed: every owner name, and the names in the RDATA of the types
 *   RFC 1035 defines (NS, CNAME, SOA, PTR, MX): RFC 3597 §4 allows compression
 *   there only, and every receiver must expand those. Names compare
 *   byte for byte, so a pointer never changes the case a name was written in
 *   (RFC 4343 §4.1).
 * - SRV targets: RFC 2782 says they are not compressed, and BIND, CoreDNS
 *   (miekg/dns) and dnsmasq (checked against dnsmasq 2.89) write them in
 *   full; RFC 3597 §4 still asks receivers to expand them, because RFC 2052
 *   required compression and servers sent it. So `compressSrvTargets` is
 *   false by default: `encodeMessage` sets it only for a reply that would
 *   not fit otherwise, where a complete answer matters more than that
 *   letter (a thousand SRV records fit in 64 KiB only this way). Either way
 *   the uncompressed targets are remembered, and later owner names (the A
 *   glue) point into them, as dnsmasq does.
 * - Cut: records are copied in order (answer, authority, additional) while
 *   they fit, whole; the first that does not fit ends the message. Left-out
 *   answer or authority records set TC (the client retries over TCP, RFC
 *   1035 §4.2.1); left-out additional records do not (RFC 2181 §9: TC is not
 *   for missing extra information). This is miekg/dns `Msg.Truncate`.
 *
 * Throws `MalformedMessageError` when the header and questions alone do not
 * fit, or for a label that is not 1-63 octets (dns-packet writes an overlong
 * label's length into the flag bits).
 */
export function compressMessage(input: Buffer, options: CompressOptions = {}): CompressedMessage {
  const maxSize = Math.min(options.maxSize ?? MAX_MESSAGE_SIZE, MAX_MESSAGE_SIZE);
  const limit = maxSize - (options.reserve ?? 0);
  const compressSrv = options.compressSrvTargets ?? false;
  if (input.length < HEADER) throw new MalformedMessageError(`cannot compress message: ${input.length} bytes is shorter than a header`);
  // Compression only shrinks, so the output never needs more room than the input.
  const out = Buffer.allocUnsafe(input.length);
  input.copy(out, 0, 0, HEADER);
  const counts = [input.readUInt16BE(4), input.readUInt16BE(6), input.readUInt16BE(8), input.readUInt16BE(10)] as const;
  /**
   * Known suffixes: the key of a suffix is its first label's bytes (latin1)
   * and the id of the rest (`0` for the root), so keys stay short however
   * long names are; the value is the suffix's id and where it was written.
   */
  const table = new Map<string, { id: number; offset: number }>();
  let nextId = 1;
  /** Keys added for the record being copied, undone when it does not fit. */
  let added: string[] = [];
  let pos = HEADER;
  let off = HEADER;
  let hasSrv = false;
  const starts: number[] = [];
  const keys: string[] = [];

  /** Copy the name at `pos` in `input`, pointing at an earlier copy of its longest known suffix. */
  const copyName = (compress: boolean): void => {
    starts.length = 0;
    let end = pos;
    for (;;) {
      const length = input[end];
      if (length === undefined) throw new MalformedMessageError('cannot compress message: name runs past the end');
      if (length === 0) break;
      if (length > 63) throw new MalformedMessageError(`cannot encode name: label of ${length} octets (at most 63)`);
      starts.push(end);
      end += length + 1;
    }
    // From the root up: the longest suffix written before, and the key of each label.
    keys.length = starts.length;
    let rest = 0;
    let known = starts.length;
    let pointer: number | undefined;
    for (let i = starts.length - 1; i >= 0; i--) {
      const start = starts[i] as number;
      const key = `${rest} ${input.toString('latin1', start + 1, start + 1 + (input[start] as number))}`;
      keys[i] = key;
      const entry = known === i + 1 ? table.get(key) : undefined;
      if (entry === undefined) {
        // Unknown from here up: the ids of the new suffixes are given as they are written.
        rest = -1;
        continue;
      }
      rest = entry.id;
      known = i;
      pointer = entry.offset;
    }
    // Write the labels before the known suffix (all of them when not compressing), then a pointer or the root.
    const writeUpTo = compress && pointer !== undefined ? known : starts.length;
    const offsets: number[] = [];
    for (let i = 0; i < writeUpTo; i++) {
      const start = starts[i] as number;
      offsets.push(off);
      const length = input[start] as number;
      input.copy(out, off, start, start + length + 1);
      off += length + 1;
    }
    if (writeUpTo < starts.length) {
      out.writeUInt16BE(0xc000 | (pointer as number), off);
      off += 2;
    } else {
      out[off++] = 0;
    }
    // Remember the suffixes just written that were not known (their keys chain from the root).
    let chain = 0;
    for (let i = starts.length - 1; i >= 0; i--) {
      const start = starts[i] as number;
      const key = i >= known ? (keys[i] as string) : `${chain} ${input.toString('latin1', start + 1, start + 1 + (input[start] as number))}`;
      const entry = table.get(key);
      if (entry !== undefined) {
        chain = entry.id;
        continue;
      }
      const at = offsets[i];
      if (at === undefined || at > MAX_POINTER) {
        // Not written here (behind a pointer), or too far to point at: nothing above it can be remembered.
        break;
      }
      chain = nextId++;
      table.set(key, { id: chain, offset: at });
      added.push(key);
    }
    pos = end + 1;
  };

  for (let q = 0; q < counts[0]; q++) {
    copyName(true);
    input.copy(out, off, pos, pos + 4);
    off += 4;
    pos += 4;
  }
  if (off > limit) throw new MalformedMessageError(`cannot encode message: the question alone takes ${off} bytes, over the ${maxSize} allowed`);

  const kept = [0, 0, 0];
  let stopped = false;
  let omittedAnswers = 0;
  let omittedAdditionals = 0;
  for (let section = 0; section < 3; section++) {
    const count = counts[section + 1] as number;
    for (let i = 0; i < count; i++) {
      if (stopped) {
        if (section < 2) omittedAnswers += 1;
        else omittedAdditionals += 1;
        continue;
      }
      const mark = off;
      added = [];
      copyRecord();
      if (off > limit) {
        off = mark;
        for (const key of added) table.delete(key);
        stopped = true;
        if (section < 2) omittedAnswers += 1;
        else omittedAdditionals += 1;
        continue;
      }
      kept[section] = (kept[section] as number) + 1;
    }
  }
  out.writeUInt16BE(kept[0] as number, 6);
  out.writeUInt16BE(kept[1] as number, 8);
  out.writeUInt16BE(kept[2] as number, 10);
  if (omittedAnswers > 0) out.writeUInt16BE(out.readUInt16BE(2) | TC_BIT, 2);
  // A tight copy: a big scratch buffer must not live on in caches.
  return { wire: Buffer.from(out.subarray(0, off)), omittedAnswers, omittedAdditionals, hasSrv };

  function copyRecord(): void {
    copyName(true);
    const type = input.readUInt16BE(pos);
    const rdlength = input.readUInt16BE(pos + 8);
    input.copy(out, off, pos, pos + 8);
    off += 8;
    pos += 10;
    const rdataEnd = pos + rdlength;
    const lengthAt = off;
    off += 2;
    const rdataStart = off;
    const copyBytes = (n: number): void => {
      input.copy(out, off, pos, pos + n);
      off += n;
      pos += n;
    };
    switch (type) {
      case NS:
      case CNAME:
      case PTR:
        copyName(true);
        break;
      case MX:
        copyBytes(2);
        copyName(true);
        break;
      case SOA:
        copyName(true);
        copyName(true);
        copyBytes(20);
        break;
      case SRV:
        hasSrv = true;
        copyBytes(6);
        copyName(compressSrv);
        break;
      default:
        copyBytes(rdlength);
    }
    if (pos !== rdataEnd) throw new MalformedMessageError(`cannot compress message: rdata of type ${type} is not the ${rdlength} bytes it claims`);
    out.writeUInt16BE(off - rdataStart, lengthAt);
  }
}
