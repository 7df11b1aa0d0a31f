import * as packet from 'dns-packet';
import type { Answer, OptAnswer, Question, RecordType } from 'dns-packet';
import { MalformedMessageError } from '../core/errors.js';
import { MAX_LABEL_OCTETS, MAX_NAME_OCTETS, wireNameProblem } from '../core/dns-name.js';
import { compressMessage } from './compress-message.js';
import { HEADER_LENGTH, MAX_MESSAGE_SIZE } from './wire.js';

/** A resource record as dns-packet models it (OPT excluded: see `DnsMessage.edns`). */
export type DnsRecord = Exclude<Answer, OptAnswer>;
export type DnsQuestion = Question;
export type { RecordType };

/** RFC 1035 §4.1.1 and RFC 6895 response codes used by srvlink. */
export const Rcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** RFC 6891 §6.1.3: an extended rcode (12 bits, the upper 8 in the OPT record). */
  BADVERS: 16,
} as const;

const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

/** Name of an rcode for logs and output (`RCODE7` for the ones we do not name). */
export function rcodeName(rcode: number): string {
  if (rcode === Rcode.BADVERS) return 'BADVERS';
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}

/** EDNS(0) pseudo-record, RFC 6891. */
export interface Edns {
  udpPayloadSize: number;
  version: number;
  dnssecOk: boolean;
}

/** Header flags other than QR, opcode and rcode. */
export interface DnsFlags {
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
}

/** A DNS message with every header field typed and the OPT record lifted out. */
export interface DnsMessage {
  id: number;
  response: boolean;
  opcode: number;
  rcode: number;
  flags: DnsFlags;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
  edns?: Edns;
}

/** The fixed 12-byte header, readable even when the rest of a message is not. */
export interface DnsHeader {
  id: number;
  response: boolean;
  opcode: number;
  rcode: number;
  rd: boolean;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

export { HEADER_LENGTH };
/** RFC 1035 §4.2.1: without EDNS a UDP message is at most 512 bytes. */
export const CLASSIC_UDP_SIZE = 512;
/**
 * Payload size srvlink advertises upstream and in its replies, and the most it
 * sends over UDP: 1232 bytes, the DNS Flag Day 2020 value (an IPv6 minimum
 * MTU of 1280 less the IPv6 and UDP headers), so that no reply is ever
 * fragmented (RFC 8900); larger answers go over TCP.
 */
export const EDNS_UDP_SIZE = 1232;
/** RFC 1035 §4.2.2: the most any message may weigh (over TCP; its length prefix is 16 bits). */
export { MAX_MESSAGE_SIZE };

const NO_FLAGS: DnsFlags = { aa: false, tc: false, rd: false, ra: false, ad: false, cd: false };

/** Fields to set on a new message; unset header flags are false. */
export type MessageFields = Partial<Omit<DnsMessage, 'flags'>> & { flags?: Partial<DnsFlags> };

/** Build a message with every field defaulted; `fields` overrides. */
export function createMessage(fields: MessageFields = {}): DnsMessage {
  return {
    id: 0,
    response: false,
    opcode: 0,
    rcode: Rcode.NOERROR,
    questions: [],
    answers: [],
    authorities: [],
    additionals: [],
    ...fields,
    flags: { ...NO_FLAGS, ...fields.flags },
  };
}

/**
 * The skeleton of a reply to `query`: same ID, opcode, question and RD bit
 * (RFC 1035 §4.1.1), QR set, EDNS echoed when the query had it (RFC 6891 §7).
 */
export function createReply(query: DnsMessage, fields: MessageFields = {}): DnsMessage {
  const reply = createMessage({
    id: query.id,
    response: true,
    opcode: query.opcode,
    questions: query.questions.map((q) => ({ ...q })),
    ...fields,
    flags: { ...NO_FLAGS, rd: query.flags.rd, ...fields.flags },
  });
  if (query.edns && !('edns' in fields)) reply.edns = { udpPayloadSize: EDNS_UDP_SIZE, version: 0, dnssecOk: false };
  return reply;
}

/** Read the header alone; undefined when fewer than 12 bytes arrived. */
export function decodeHeader(buf: Uint8Array): DnsHeader | undefined {
  if (buf.length < HEADER_LENGTH) return undefined;
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const bits = view.readUInt16BE(2);
  return {
    id: view.readUInt16BE(0),
    response: (bits & 0x8000) !== 0,
    opcode: (bits >> 11) & 0xf,
    rcode: bits & 0xf,
    rd: (bits & 0x0100) !== 0,
    qdcount: view.readUInt16BE(4),
    ancount: view.readUInt16BE(6),
    nscount: view.readUInt16BE(8),
    arcount: view.readUInt16BE(10),
  };
}

/**
 * Decode a wire-format message. Throws `MalformedMessageError` for anything
 * dns-packet cannot read or that breaks RFC 1035 limits; never returns a
 * half-read message.
 */
export function decodeMessage(buf: Uint8Array): DnsMessage {
  const header = decodeHeader(buf);
  if (!header) throw new MalformedMessageError(`cannot decode message: ${buf.length} bytes is shorter than a header`);
  let decoded: packet.DecodedPacket;
  try {
    decoded = packet.decode(Buffer.from(buf.buffer, buf.byteOffset, buf.length));
  } catch (err) {
    throw new MalformedMessageError(`cannot decode message: ${(err as Error).message}`, { cause: err });
  }
  const questions = decoded.questions ?? [];
  for (const q of questions) {
    if (typeof q.type !== 'string' || typeof q.name !== 'string') {
      throw new MalformedMessageError('cannot decode message: unreadable question');
    }
  }
  assertFaithfulQuestion(buf, questions[0]);
  let edns: Edns | undefined;
  let extendedRcode = 0;
  const additionals: DnsRecord[] = [];
  for (const rr of decoded.additionals ?? []) {
    if (rr.type === 'OPT') {
      // RFC 6891 §6.1.1: more than one OPT makes the message malformed.
      if (edns) throw new MalformedMessageError('cannot decode message: more than one OPT record');
      const opt = rr as OptAnswer;
      edns = {
        // RFC 6891 §6.2.5: values below 512 are treated as 512.
        udpPayloadSize: Math.max(CLASSIC_UDP_SIZE, opt.udpPayloadSize),
        version: opt.ednsVersion,
        dnssecOk: opt.flag_do,
      };
      extendedRcode = opt.extendedRcode;
    } else {
      additionals.push(rr);
    }
  }
  const message: DnsMessage = {
    id: header.id,
    response: header.response,
    opcode: header.opcode,
    // RFC 6891 §6.1.3: with EDNS the rcode is 12 bits, the upper 8 in the OPT record.
    rcode: (extendedRcode << 4) | header.rcode,
    flags: {
      aa: decoded.flag_aa,
      tc: decoded.flag_tc,
      rd: decoded.flag_rd,
      ra: decoded.flag_ra,
      ad: decoded.flag_ad,
      cd: decoded.flag_cd,
    },
    questions,
    answers: (decoded.answers ?? []) as DnsRecord[],
    authorities: (decoded.authorities ?? []) as DnsRecord[],
    additionals,
  };
  if (edns) message.edns = edns;
  return message;
}

/** Options of `encodeMessage`. */
export interface EncodeOptions {
  /**
   * The most the message may weigh (the transport's limit): records past it
   * are left out, TC set when answers are (see `compressMessage`). Default
   * (and at most) 65,535.
   */
  maxSize?: number;
}

/**
 * Encode a message to wire format with name compression (RFC 1035 §4.1.4),
 * cut to `maxSize`, never larger: what comes out always fits its transport.
 * Throws `MalformedMessageError` for names or fields that cannot be encoded.
 */
export function encodeMessage(message: DnsMessage, options: EncodeOptions = {}): Buffer {
  for (const section of [message.questions, message.answers, message.authorities, message.additionals]) {
    for (const entry of section) assertEncodableName(entry.name);
  }
  for (const section of [message.answers, message.authorities, message.additionals]) {
    for (const record of section) for (const name of rdataNames(record)) assertEncodableName(name);
  }
  const f = message.flags;
  const flags =
    ((message.opcode & 0xf) << 11) |
    (f.aa ? 0x0400 : 0) |
    (f.tc ? 0x0200 : 0) |
    (f.rd ? 0x0100 : 0) |
    (f.ra ? 0x0080 : 0) |
    (f.ad ? 0x0020 : 0) |
    (f.cd ? 0x0010 : 0) |
    (message.rcode & 0xf);
  let raw: Buffer;
  try {
    raw = packet.encode({
      id: message.id,
      type: message.response ? 'response' : 'query',
      flags,
      questions: message.questions,
      answers: message.answers,
      authorities: message.authorities,
      additionals: message.additionals,
    });
  } catch (err) {
    throw new MalformedMessageError(`cannot encode message: ${(err as Error).message}`, { cause: err });
  }
  const opt = message.edns ? encodeOpt(message.edns, message.rcode) : undefined;
  const compress = { maxSize: options.maxSize ?? MAX_MESSAGE_SIZE, reserve: opt?.length ?? 0 };
  let result = compressMessage(raw, compress);
  // SRV targets are compressed only when the whole reply would not fit otherwise (see compressMessage).
  if (result.hasSrv && result.omittedAnswers + result.omittedAdditionals > 0) {
    result = compressMessage(raw, { ...compress, compressSrvTargets: true });
  }
  if (!opt) return result.wire;
  // RFC 6891 §6.1.1: the OPT pseudo-record goes in the additional section, kept whatever was cut.
  const wire = Buffer.concat([result.wire, opt]);
  wire.writeUInt16BE(wire.readUInt16BE(10) + 1, 10);
  return wire;
}

/** The OPT pseudo-record (RFC 6891 §6.1.2): root owner, type 41, payload size as class, extended rcode, version and DO as TTL. */
function encodeOpt(edns: Edns, rcode: number): Buffer {
  const opt = Buffer.alloc(11);
  opt.writeUInt16BE(41, 1);
  opt.writeUInt16BE(edns.udpPayloadSize & 0xffff, 3);
  opt.writeUInt8((rcode >> 4) & 0xff, 5);
  opt.writeUInt8(edns.version & 0xff, 6);
  opt.writeUInt16BE(edns.dnssecOk ? packet.DNSSEC_OK : 0, 7);
  return opt;
}

/** Names inside the RDATA of the types whose names `compressMessage` handles. */
function rdataNames(record: DnsRecord): string[] {
  switch (record.type) {
    case 'NS':
    case 'CNAME':
    case 'PTR':
    case 'DNAME':
      return typeof record.data === 'string' ? [record.data] : [];
    case 'MX':
      return [record.data.exchange];
    case 'SOA':
      return [record.data.mname];
    case 'SRV':
      return [record.data.target];
    default:
      return [];
  }
}

/**
 * The most a response to `query` may weigh over UDP: the client's EDNS
 * payload size (capped at ours), else 512 (RFC 1035 §4.2.1, RFC 6891 §6.2.3).
 */
export function udpLimit(query: DnsMessage | undefined): number {
  const size = query?.edns?.udpPayloadSize ?? CLASSIC_UDP_SIZE;
  return Math.min(Math.max(size, CLASSIC_UDP_SIZE), EDNS_UDP_SIZE);
}

/** Reply with only the header and question, TC set: the client retries over TCP (RFC 2181 §9). */
export function truncate(reply: DnsMessage): DnsMessage {
  return { ...reply, answers: [], authorities: [], additionals: [], flags: { ...reply.flags, tc: true } };
}

/**
 * dns-packet reads a name as text: a label holding a dot or bytes that are not
 * UTF-8 comes back as a different name. Such a question cannot be answered
 * (the reply's question would not match the query's, RFC 5452 §9.1), so the
 * message is malformed: its question must encode back to the same bytes.
 * The first question follows the header and cannot hold a compression pointer.
 *
 * Most questions are plain ASCII and checked from their bytes alone
 * (`plainQuestionEnd`); any other is encoded again and compared.
 */
function assertFaithfulQuestion(buf: Uint8Array, question: DnsQuestion | undefined): void {
  if (!question) return;
  if (plainQuestionEnd(buf) !== undefined) return;
  const unfaithful = (): MalformedMessageError =>
    new MalformedMessageError(`cannot decode message: question "${question.name}" (${question.type} ${question.class ?? 'IN'}) cannot be represented`);
  let again: Buffer;
  try {
    assertEncodableName(question.name);
    again = packet.encode({ questions: [question] });
  } catch {
    throw unfaithful();
  }
  const original = Buffer.from(buf.buffer, buf.byteOffset, buf.length).subarray(HEADER_LENGTH, again.length);
  if (!original.equals(again.subarray(HEADER_LENGTH))) throw unfaithful();
}

/** The DNS classes dns-packet names, so reads and writes back the same (any other becomes 0 on encode). */
const NAMED_CLASSES: ReadonlySet<number> = new Set([0, 1, 2, 3, 4, 255]);
const DOT = 0x2e;
const LINE_FEED = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/**
 * Where the first question of `buf` ends, when dns-packet reads it back as
 * the same bytes for certain: its name in labels (no pointer) of ASCII
 * without a dot, and without the line ends its encoder's multi-line regular
 * expression strips dots next to, and a class dns-packet names; its type
 * needs no check (dns-packet maps every 16-bit type to a name and back).
 * Undefined when any of that does not hold: the question is then checked
 * the long way. Lengths are dns-packet's to check (a label over 63 octets
 * is a bad label, a name over 254 an error, for both paths).
 */
function plainQuestionEnd(buf: Uint8Array): number | undefined {
  let at = HEADER_LENGTH;
  for (;;) {
    const length = buf[at];
    if (length === undefined || length > 63) return undefined;
    at++;
    if (length === 0) break;
    const end = at + length;
    if (end > buf.length) return undefined;
    for (; at < end; at++) {
      const byte = buf[at] as number;
      if (byte >= 0x80 || byte === DOT || byte === LINE_FEED || byte === CARRIAGE_RETURN) return undefined;
    }
  }
  if (at + 4 > buf.length) return undefined;
  const klass = ((buf[at + 2] as number) << 8) | (buf[at + 3] as number);
  return NAMED_CLASSES.has(klass) ? at + 4 : undefined;
}

/** Throws when `name` cannot go on the wire: a label empty or over 63 octets, the name over 255. */
function assertEncodableName(name: string): void {
  if (name === '.' || name === '') return;
  if (plainNameFits(name)) return;
  const problem = wireNameProblem(name.replace(/^\.|\.$/g, '').split('.'));
  if (problem?.kind === 'longName') throw new MalformedMessageError(`cannot encode name "${name}": longer than 255 octets`);
  if (problem !== undefined) throw new MalformedMessageError(`cannot encode name "${name}": label "${problem.label}" must be 1-63 octets`);
}

/**
 * Whether an ASCII `name` (one leading and one trailing dot ignored) fits
 * the wire, checked in one pass over its characters; false when it does not
 * or when it is not ASCII (then `wireNameProblem` decides, and words the error).
 */
function plainNameFits(name: string): boolean {
  const start = name.charCodeAt(0) === DOT ? 1 : 0;
  const end = name.charCodeAt(name.length - 1) === DOT ? name.length - 1 : name.length;
  if (end <= start) return false;
  // The wire form: a length octet per label, the label's octets, the root's zero.
  if (end - start + 2 > MAX_NAME_OCTETS) return false;
  let label = 0;
  for (let i = start; i < end; i++) {
    const code = name.charCodeAt(i);
    if (code >= 0x80) return false;
    if (code === DOT) {
      if (label === 0) return false;
      label = 0;
    } else if (++label > MAX_LABEL_OCTETS) {
      return false;
    }
  }
  return label > 0;
}
