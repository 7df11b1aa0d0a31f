import { canonicalName } from '../core/dns-name.js';
import { EDNS_UDP_SIZE, createMessage, type DnsMessage, type DnsRecord } from '../dns/codec.js';

export interface ReplyFromResponseOptions {
  /** The TTL each record gets, from the one it has in `response`. Default: unchanged. */
  ttl?: (ttl: number) => number;
  /** Override the AA bit of `response` (a cached answer is not authoritative). */
  aa?: boolean;
}

/**
 * Turn a response obtained for one query (upstream, or out of the cache) into
 * the reply to `query`: `query`'s ID, question and RD bit (RFC 1035 §4.1.1);
 * `response`'s rcode, sections and AA/CD bits, and AD
 * only when the query set AD or DO (RFC 6840 §5.8); RA set, since the stub
 * recurses on its clients' behalf; TC clear (the full response is at hand:
 * the server truncates for UDP itself). Records owned by the question's name
 * take the client's spelling of it (RFC 4343 §4.1: case is preserved where
 * possible). With EDNS in the query, the reply has EDNS with the query's DO
 * bit (RFC 3225 §3); without, none (RFC 6891 §7). Records are copied, never
 * shared with `response`.
 */
export function replyFromResponse(query: DnsMessage, response: DnsMessage, options: ReplyFromResponseOptions = {}): DnsMessage {
  const asked = query.questions[0]?.name;
  const askedKey = asked === undefined ? undefined : canonicalName(asked);
  const ttl = options.ttl ?? ((value: number) => value);
  const copy = (record: DnsRecord): DnsRecord => ({
    ...record,
    name: asked !== undefined && canonicalName(record.name) === askedKey ? asked : record.name,
    ttl: ttl(record.ttl ?? 0),
  });
  const reply = createMessage({
    id: query.id,
    response: true,
    opcode: query.opcode,
    rcode: response.rcode,
    questions: query.questions.map((question) => ({ ...question })),
    answers: response.answers.map(copy),
    authorities: response.authorities.map(copy),
    additionals: response.additionals.map(copy),
    flags: {
      aa: options.aa ?? response.flags.aa,
      tc: false,
      rd: query.flags.rd,
      ra: true,
      // RFC 6840 §5.8: AD only for a client that showed it understands it (AD or DO in its query).
      ad: response.flags.ad && (query.flags.ad || query.edns?.dnssecOk === true),
      cd: response.flags.cd,
    },
  });
  if (query.edns) reply.edns = { udpPayloadSize: EDNS_UDP_SIZE, version: 0, dnssecOk: query.edns.dnssecOk };
  return reply;
}
