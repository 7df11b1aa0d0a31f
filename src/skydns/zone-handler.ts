import { InvalidArgumentError } from '../core/errors.js';
import { canonicalName, isInZone } from '../core/dns-name.js';
import { createReply } from '../dns/codec.js';
import type { DnsMessage } from '../dns/codec.js';
import type { DnsHandler, DnsRequest, NextHandler } from '../dns/handler.js';
import { answerZoneQuery } from './answer-zone-query.js';
import { DEFAULT_SKYDNS_PREFIX } from '../discovery/key-path.js';
import type { ZoneStore } from './zone-store.js';

export interface ZoneHandlerOptions {
  /** Zones answered authoritatively, e.g. `['skydns.local.']`; at least one. */
  zones: readonly string[];
  /** etcd key prefix of the SkyDNS tree; default `/skydns`. */
  prefix?: string;
  store: ZoneStore;
  /** Clock in ms since the epoch (lease TTLs, SOA serial); default `Date.now`. */
  now?: () => number;
  /** SOA TTL and minimum, so the negative-caching TTL; default 30 (CoreDNS). */
  minTtl?: number;
}

/**
 * The SkyDNS zone as a handler in the chain (the CoreDNS etcd plugin's
 * `ServeDNS`): a question inside one of `zones` is answered authoritatively
 * from `store` (the longest matching zone wins, CoreDNS `plugin.Zones.Matches`);
 * anything else goes to `next`. An opcode other than QUERY gets NOTIMP
 * (RFC 1035 §4.1.1), a query without exactly one question FORMERR (RFC 9619).
 * Throws an `InvalidArgumentError` when no zone is given.
 */
export function createZoneHandler(options: ZoneHandlerOptions): DnsHandler {
  const zones = [...new Set(options.zones.map((zone) => canonicalName(zone)))].sort((a, b) => b.length - a.length);
  if (zones.length === 0) throw new InvalidArgumentError('cannot serve a skydns zone: no zone given (expected at least one, e.g. "skydns.local.")');
  const prefix = options.prefix ?? DEFAULT_SKYDNS_PREFIX;
  const now = options.now ?? Date.now;
  const { store, minTtl } = options;

  return {
    name: 'skydns',
    handle(request: DnsRequest, next: NextHandler): Promise<DnsMessage> {
      // Opcode and question count were checked by the chain's first handler (src/dns/query-check.ts).
      const query = request.message;
      const question = query.questions[0];
      if (!question) return next();
      // Zones are sorted longest first, so the first match is the most specific.
      const zone = zones.find((candidate) => isInZone(question.name, candidate));
      if (zone === undefined) return next();
      const answer = answerZoneQuery(question, { zone, prefix, store, now: now(), ...(minTtl === undefined ? {} : { minTtl }) });
      return Promise.resolve(
        createReply(query, {
          rcode: answer.rcode,
          flags: { aa: answer.aa },
          answers: answer.answers,
          authorities: answer.authorities,
          additionals: answer.additionals,
        }),
      );
    },
  };
}
