import { Rcode, createReply, type DnsMessage } from './codec.js';
import type { DnsHandler, DnsRequest, NextHandler } from './handler.js';
import type { Refusals } from './refusals.js';

/** RFC 1035 §4.1.1: opcode 0 is a standard query, the only kind srvlink serves. */
const OPCODE_QUERY = 0;

/**
 * Zone transfers have no place in a container's stub: they are never
 * forwarded (a stub that relays AXFR would let anyone in the allowed networks
 * pull whole zones through it). RFC 5936 §2.2.1 lets a server answer REFUSED.
 */
const TRANSFER_TYPES: ReadonlySet<string> = new Set(['AXFR', 'IXFR']);

/**
 * The first handler of every srvlink DNS chain (the stub, `srvlink dns`): only well-formed standard queries for the
 * Internet class go further.
 *
 * - opcode other than QUERY (IQUERY, STATUS, NOTIFY, UPDATE...) → NOTIMP
 *   (RFC 1035 §4.1.1: "the name server does not support the requested kind
 *   of query");
 * - not exactly one question → FORMERR (RFC 9619: QDCOUNT is 1 in a query;
 *   nothing else can be matched or cached);
 * - class other than IN (CH `version.bind`, HS, ANY...) → REFUSED: the query
 *   is well-formed and of a supported kind, the stub only chooses not to
 *   answer that class, which is what REFUSED means in RFC 1035 §4.1.1
 *   ("for policy reasons"); BIND, Unbound and CoreDNS answer such queries
 *   for classes they hold no data for the same way. NOTIMP would tell the
 *   client that standard queries are not implemented at all;
 * - AXFR/IXFR → REFUSED (see `TRANSFER_TYPES`).
 *
 * REFUSED replies are counted in `refusals` (reason `unsupported`) when given.
 */
export function createQueryCheckHandler(options: { refusals?: Refusals } = {}): DnsHandler {
  return {
    name: 'query-check',
    handle(request: DnsRequest, next: NextHandler): Promise<DnsMessage> {
      const query = request.message;
      if (query.opcode !== OPCODE_QUERY) return Promise.resolve(createReply(query, { rcode: Rcode.NOTIMP, flags: { ra: true } }));
      const question = query.questions[0];
      if (question === undefined || query.questions.length !== 1) {
        return Promise.resolve(createReply(query, { rcode: Rcode.FORMERR, flags: { ra: true } }));
      }
      // A question built in-process may leave the class out: dns-packet encodes that as IN.
      if ((question.class ?? 'IN') !== 'IN' || TRANSFER_TYPES.has(question.type)) {
        if (options.refusals) return Promise.resolve(options.refusals.refuse(request, 'unsupported', { ra: true }));
        return Promise.resolve(createReply(query, { rcode: Rcode.REFUSED, flags: { ra: true } }));
      }
      return next();
    },
  };
}
