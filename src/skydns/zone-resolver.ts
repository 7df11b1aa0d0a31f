import { SrvlinkError } from '../core/errors.js';
import { canonicalName, isInZone } from '../core/dns-name.js';
import { Rcode, createMessage, type DnsMessage, type RecordType } from '../dns/codec.js';
import type { Resolver } from '../discovery/lookup-srv.js';
import { answerZoneQuery } from './answer-zone-query.js';
import { DEFAULT_SKYDNS_PREFIX } from '../skydns-model/key-path.js';
import type { ZoneStore } from './zone-store.js';

export interface ZoneResolverOptions {
  zones: readonly string[];
  prefix?: string;
  store: ZoneStore;
  now?: () => number;
  /**
   * Why the store cannot vouch for its data right now (its source is out of
   * reach), or undefined when it can. While set, queries fail, so a backend
   * source keeps its last good set and marks it stale (docs/architecture.md §4.2).
   */
  unavailable?: () => string | undefined;
}

/**
 * A `Resolver` that answers from a SkyDNS zone in memory with the very rules
 * of `srvlink dns` (answerZoneQuery), instead of over the network: `srvlink
 * run --discovery etcd` builds backend sets with the same `lookupSrv` as DNS
 * discovery, so both always agree with what the cluster DNS would say.
 * Names outside `zones` are REFUSED (no upstream behind an in-memory zone).
 */
export function createZoneResolver(options: ZoneResolverOptions): Resolver {
  const zones = [...new Set(options.zones.map((zone) => canonicalName(zone)))].sort((a, b) => b.length - a.length);
  const prefix = options.prefix ?? DEFAULT_SKYDNS_PREFIX;
  const now = options.now ?? Date.now;
  return {
    query(name: string, type: RecordType): Promise<DnsMessage> {
      const why = options.unavailable?.();
      if (why !== undefined) return Promise.reject(new SrvlinkError('ERR_ZONE_UNAVAILABLE', `cannot answer "${name}" ${type} from etcd: ${why}`));
      const question = { name, type, class: 'IN' as const };
      const zone = zones.find((candidate) => isInZone(name, candidate));
      if (zone === undefined) return Promise.resolve(createMessage({ response: true, rcode: Rcode.REFUSED, questions: [question] }));
      const answer = answerZoneQuery(question, { zone, prefix, store: options.store, now: now() });
      return Promise.resolve(
        createMessage({
          response: true,
          rcode: answer.rcode,
          flags: { aa: answer.aa },
          questions: [question],
          answers: answer.answers,
          authorities: answer.authorities,
          additionals: answer.additionals,
        }),
      );
    },
  };
}
