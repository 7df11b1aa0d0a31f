import { CLASSIC_UDP_SIZE, EDNS_UDP_SIZE } from './codec.js';
import { HEADER_LENGTH, MAX_MESSAGE_SIZE, OPT_TYPE as OPT } from './wire.js';

/** RFC 1035 §4.1.1 flag bits (of the header's third byte) a reply depends on: RD (copied). */
const RD = 0x01;
/** Of the fourth byte: AD (RFC 6840 §5.8) and CD (RFC 4035 §3.2.2). */
const AD_CD = 0x30;
/** Of the third byte: QR and the opcode. */
const QR_OPCODE = 0xf8;
/** RFC 3225: DO is the top bit of the OPT record's flags. */
const DNSSEC_OK = 0x80;
/** RFC 1035 §2.3.4: a name is at most 255 octets on the wire. */
const MAX_NAME = 255;
/** FNV-1a, 32 bits. */
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * The key of a raw query for a cache of whole replies (`readQueryKey`),
 * written into an object the caller keeps, so that reading a key allocates
 * nothing: `head` and the question's bytes (`query[HEADER_LENGTH ..
 * questionEnd]`) are the key; `hash` is a hash of both.
 */
export interface QueryKey {
  /** The transport, the RD, AD and CD bits, EDNS presence and DO, and the size the reply is cut to, in one small integer. */
  head: number;
  /** Where the question ends (after QTYPE and QCLASS). */
  questionEnd: number;
  /** A 32-bit hash of `head` and the question's bytes (signed). */
  hash: number;
}

/** A key to fill with `readQueryKey`. */
export function emptyQueryKey(): QueryKey {
  return { head: 0, questionEnd: 0, hash: 0 };
}

/**
 * Read the key of a raw query for a cache of whole replies straight from
 * the bytes into `key`; false when the query is not of the one plain shape
 * whose reply depends on nothing else: QR clear, opcode QUERY, exactly one
 * question with its name in labels (no pointer), no answer or authority
 * records, at most one additional record and that an OPT of version 0 with
 * no options, nothing after it. Anything else takes the full path, which
 * decides about it (FORMERR, BADVERS, ...).
 *
 * The key holds what changes the reply: the question's bytes as sent (the
 * name's spelling too: replies echo it, RFC 4343 §4.1, and name compression
 * compares bytes, so two spellings can give replies of different length),
 * the RD, AD and CD bits, EDNS presence, the DO bit and the size the reply is
 * cut to (the UDP limit the client's payload size gives, or 65,535 on TCP),
 * and the transport. The ID is not in it. Two queries have the same key when
 * their `head`s and question bytes are equal (`sameQuestion`).
 */
export function readQueryKey(query: Uint8Array, transport: 'udp' | 'tcp', key: QueryKey): boolean {
  const length = query.length;
  if (length < HEADER_LENGTH + 5) return false;
  // Byte by byte, not readUInt16BE: this runs for every query, and each of those calls checks its offset.
  const flagsHigh = query[2] as number;
  const flagsLow = query[3] as number;
  if ((flagsHigh & QR_OPCODE) !== 0) return false;
  if (query[4] !== 0 || query[5] !== 1 || query[6] !== 0 || query[7] !== 0 || query[8] !== 0 || query[9] !== 0 || query[10] !== 0) return false;
  const additionals = query[11] as number;
  if (additionals > 1) return false;
  let hash = FNV_OFFSET;
  let at = HEADER_LENGTH;
  for (;;) {
    const label = query[at];
    if (label === undefined || label > 63) return false;
    const next = at + label + 1;
    if (next > length) return false;
    for (; at < next; at++) hash = Math.imul(hash ^ (query[at] as number), FNV_PRIME);
    if (label === 0) break;
    if (at - HEADER_LENGTH > MAX_NAME) return false;
  }
  const questionEnd = at + 4;
  if (questionEnd > length) return false;
  for (; at < questionEnd; at++) hash = Math.imul(hash ^ (query[at] as number), FNV_PRIME);
  // 0: no EDNS, 1: EDNS, 3: EDNS with DO.
  let edns = 0;
  let limit = transport === 'tcp' ? MAX_MESSAGE_SIZE : CLASSIC_UDP_SIZE;
  if (additionals === 0) {
    if (questionEnd !== length) return false;
  } else {
    // OPT: root owner (1), type (2), payload size (2), extended rcode (1), version (1), flags (2), RDLENGTH (2).
    if (questionEnd + 11 !== length || query[questionEnd] !== 0 || query[questionEnd + 1] !== 0 || query[questionEnd + 2] !== OPT) return false;
    if (query[questionEnd + 6] !== 0 || query[questionEnd + 9] !== 0 || query[questionEnd + 10] !== 0) return false;
    const size = ((query[questionEnd + 3] as number) << 8) | (query[questionEnd + 4] as number);
    if (transport === 'udp') limit = Math.min(Math.max(size, CLASSIC_UDP_SIZE), EDNS_UDP_SIZE);
    edns = ((query[questionEnd + 7] as number) & DNSSEC_OK) !== 0 ? 3 : 1;
  }
  // 16 bits of limit, 2 of EDNS, AD and CD (2), RD (1), the transport (1): 22 bits, a small integer.
  const head = (limit << 6) | (edns << 4) | ((flagsLow & AD_CD) >> 2) | ((flagsHigh & RD) << 1) | (transport === 'tcp' ? 1 : 0);
  key.head = head;
  key.questionEnd = questionEnd;
  key.hash = Math.imul(hash ^ head, FNV_PRIME);
  return true;
}

/** Whether `question` (a key's question bytes, kept) is `query`'s question as `key` read it. */
export function sameQuestion(question: Uint8Array, query: Uint8Array, key: QueryKey): boolean {
  const length = question.length;
  if (length !== key.questionEnd - HEADER_LENGTH) return false;
  for (let i = 0; i < length; i++) if (question[i] !== query[HEADER_LENGTH + i]) return false;
  return true;
}
