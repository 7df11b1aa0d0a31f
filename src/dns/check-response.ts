import { canonicalAddress } from '../core/ip-address.js';
import { canonicalName } from '../core/dns-name.js';
import type { HostPort } from '../core/host-port.js';
import { decodeHeader, decodeMessage, type DnsMessage, type DnsQuestion } from './codec.js';

/** What a response must match to be accepted: the query as it went on the wire, and where it went. */
export interface ExpectedResponse {
  server: HostPort;
  /** `server.host` in the form `rinfo.address` reports (`canonicalAddress`). */
  address: string;
  id: number;
  opcode: number;
  question: DnsQuestion;
}

/** A response not accepted: `malformed` when it could not be decoded, otherwise it did not match (RFC 5452 §9.1). */
export interface RejectedResponse {
  ok: false;
  malformed: boolean;
  reason: string;
}

export type ResponseVerdict = { ok: true; message: DnsMessage } | RejectedResponse;

/**
 * Accept a response only when it comes from the address and port the query
 * went to (when `from` is known: UDP), decodes, has QR set, and carries the
 * ID, opcode and question of the query (RFC 1035 §4.1.1, RFC 5452 §9.1);
 * names compare case-insensitively (RFC 4343). Pure: the transports call it
 * for every datagram or frame and keep waiting on a rejection.
 */
export function checkResponse(buf: Buffer, expected: ExpectedResponse, from?: { address: string; port: number }): ResponseVerdict {
  if (from !== undefined && (canonicalAddress(from.address) !== expected.address || from.port !== expected.server.port)) {
    return { ok: false, malformed: false, reason: `from ${from.address}:${from.port}` };
  }
  const header = decodeHeader(buf);
  if (header === undefined) return { ok: false, malformed: true, reason: `${buf.length} bytes, shorter than a header` };
  if (!header.response) return { ok: false, malformed: false, reason: 'QR bit not set' };
  if (header.id !== expected.id) return { ok: false, malformed: false, reason: `id ${header.id} instead of ${expected.id}` };
  let message: DnsMessage;
  try {
    message = decodeMessage(buf);
  } catch (err) {
    return { ok: false, malformed: true, reason: (err as Error).message };
  }
  if (message.opcode !== expected.opcode) {
    return { ok: false, malformed: false, reason: `opcode ${message.opcode} instead of ${expected.opcode}` };
  }
  const got = message.questions[0];
  const want = expected.question;
  if (
    message.questions.length !== 1 ||
    got === undefined ||
    canonicalName(got.name) !== canonicalName(want.name) ||
    got.type !== want.type ||
    (got.class ?? 'IN') !== (want.class ?? 'IN')
  ) {
    const seen = message.questions.map((q) => `${displayName(q.name)} ${q.type}`).join(', ');
    return { ok: false, malformed: false, reason: `question "${seen}" does not match` };
  }
  return { ok: true, message };
}

/** Fully qualified, as users read names: `example.com.`, `.` for the root. */
export function displayName(name: string): string {
  if (name === '' || name === '.') return '.';
  return name.endsWith('.') ? name : `${name}.`;
}
