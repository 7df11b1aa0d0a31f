import { CLASSIC_UDP_SIZE, EDNS_UDP_SIZE } from './codec.js';
import { HEADER_LENGTH, MAX_MESSAGE_SIZE, OPT_TYPE as OPT } from './wire.js';

/** RFC 1035 §4.1.1 flag bits a reply depends on: RD (copied), AD (RFC 6840 §5.8), CD (RFC 4035 §3.2.2). */
const REPLY_FLAGS = 0x0100 | 0x0020 | 0x0010;
const QR = 0x8000;
const OPCODE = 0x7800;
/** RFC 3225: DO is the top bit of the OPT record's flags. */
const DNSSEC_OK = 0x8000;
/** RFC 1035 §2.3.4: a name is at most 255 octets on the wire. */
const MAX_NAME = 255;

/**
 * The key of a raw query for a cache of whole replies, read straight from
 * the bytes, or undefined when the query is not of the one plain shape whose
 * reply depends on nothing else: QR clear, opcode QUERY, exactly one
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
 * and the transport. The ID is not in it.
 */
export function queryKey(query: Buffer, transport: 'udp' | 'tcp'): string | undefined {
  const length = query.length;
  if (length < HEADER_LENGTH + 5) return undefined;
  const flags = query.readUInt16BE(2);
  if ((flags & (QR | OPCODE)) !== 0) return undefined;
  if (query.readUInt16BE(4) !== 1 || query.readUInt16BE(6) !== 0 || query.readUInt16BE(8) !== 0) return undefined;
  const additionals = query.readUInt16BE(10);
  if (additionals > 1) return undefined;
  let at = HEADER_LENGTH;
  for (;;) {
    const label = query[at];
    if (label === undefined || label > 63) return undefined;
    at += label + 1;
    if (label === 0) break;
    if (at - HEADER_LENGTH > MAX_NAME) return undefined;
  }
  const questionEnd = at + 4;
  if (questionEnd > length) return undefined;
  let edns = 'n';
  let limit = transport === 'tcp' ? MAX_MESSAGE_SIZE : CLASSIC_UDP_SIZE;
  if (additionals === 0) {
    if (questionEnd !== length) return undefined;
  } else {
    // OPT: root owner (1), type (2), payload size (2), extended rcode (1), version (1), flags (2), RDLENGTH (2).
    if (questionEnd + 11 !== length || query[questionEnd] !== 0 || query.readUInt16BE(questionEnd + 1) !== OPT) return undefined;
    if (query[questionEnd + 6] !== 0 || query.readUInt16BE(questionEnd + 9) !== 0) return undefined;
    const size = query.readUInt16BE(questionEnd + 3);
    if (transport === 'udp') limit = Math.min(Math.max(size, CLASSIC_UDP_SIZE), EDNS_UDP_SIZE);
    edns = (query.readUInt16BE(questionEnd + 7) & DNSSEC_OK) !== 0 ? 'd' : 'e';
  }
  return `${transport === 'tcp' ? 't' : 'u'}${flags & REPLY_FLAGS} ${edns}${limit} ${query.toString('latin1', HEADER_LENGTH, questionEnd)}`;
}
