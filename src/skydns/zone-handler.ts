import { InvalidArgumentError } from '../core/errors.js';
import { canonicalName, isInZone } from '../core/dns-name.js';
import { createReply } from '../dns/codec.js';
import type { DnsMessage } from '../dns/codec.js';
import type { DnsHandler, DnsRequest, NextHandler } from '../dns/handler.js';
import type { ReplyOrigin } from '../dns/wire-reply-cache.js';
import { answerZoneQuery } from './answer-zone-query.js';
import { DEFAULT_SKYDNS_PREFIX } from '../skydns-model/key-path.js';
import type { ZoneEntry, ZoneStore } from './zone-store.js';

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

/** The zone as a link of the chain; a wire cache asks it how long one of its replies stays the answer. */
export interface ZoneHandler extends DnsHandler {
  /**
   * For a reply this handler made from a store that has a `version`: until
   * when the same question gets the same reply (the store unchanged, no TTL
   * cut by a lease moved on, the SOA serial's second not over). Undefined for
   * any other reply.
   */
  origin(reply: DnsMessage): ReplyOrigin | undefined;
}

/**
 * The SkyDNS zone as a handler in the chain (the CoreDNS etcd plugin's
 * `ServeDNS`): a question inside one of `zones` is answered authoritatively
 * from `store` (the longest matching zone wins, CoreDNS `plugin.Zones.Matches`);
 * anything else goes to `next`. An opcode other than QUERY gets NOTIMP
 * (RFC 1035 §4.1.1), a query without exactly one question FORMERR (RFC 9619).
 * Throws an `InvalidArgumentError` when no zone is given.
 */
export function createZoneHandler(options: ZoneHandlerOptions): ZoneHandler {
  const zones = [...new Set(options.zones.map((zone) => canonicalName(zone)))].sort((a, b) => b.length - a.length);
  if (zones.length === 0) throw new InvalidArgumentError('cannot serve a skydns zone: no zone given (expected at least one, e.g. "skydns.local.")');
  const prefix = options.prefix ?? DEFAULT_SKYDNS_PREFIX;
  const now = options.now ?? Date.now;
  const { store, minTtl } = options;
  const origins = new WeakMap<DnsMessage, ReplyOrigin>();

  return {
    name: 'skydns',
    origin: (reply) => origins.get(reply),
    handle(request: DnsRequest, next: NextHandler): Promise<DnsMessage> {
      // Opcode and question count were checked by the chain's first handler (src/dns/query-check.ts).
      const query = request.message;
      const question = query.questions[0];
      if (!question) return next();
      // Zones are sorted longest first, so the first match is the most specific.
      const zone = zones.find((candidate) => isInZone(question.name, candidate));
      if (zone === undefined) return next();
      const at = now();
      const version = store.version;
      const seen = version === undefined ? undefined : new LeaseBound(store, at);
      const answer = answerZoneQuery(question, { zone, prefix, store: seen ?? store, now: at, ...(minTtl === undefined ? {} : { minTtl }) });
      const reply = createReply(query, {
        rcode: answer.rcode,
        flags: { aa: answer.aa },
        answers: answer.answers,
        authorities: answer.authorities,
        additionals: answer.additionals,
      });
      if (seen !== undefined) {
        const last = seen.last;
        // The SOA's serial is the time in seconds: a reply holding one is the same reply for the rest of that second.
        const second = [...answer.answers, ...answer.authorities].some((record) => record.type === 'SOA') ? Math.floor(at / 1000) : undefined;
        const onChange = store.onChange?.bind(store);
        origins.set(reply, {
          fresh: (t) => store.version === version && t >= at && t <= last && (second === undefined || Math.floor(t / 1000) === second),
          // For a copy nobody asks: the first moment `fresh` is false by the clock, and the next change of the store.
          ...(onChange === undefined
            ? {}
            : {
                until: {
                  at: Math.min(last + 1, second === undefined ? Number.POSITIVE_INFINITY : (second + 1) * 1000),
                  onEnd: (listener: () => void): (() => void) => {
                    if (store.version !== version) {
                      listener();
                      return () => undefined;
                    }
                    const off = onChange(() => {
                      off();
                      listener();
                    });
                    return off;
                  },
                },
              }),
        });
      }
      return Promise.resolve(reply);
    },
  };
}

/**
 * The store as the rules read it, noting the last moment (ms since the
 * epoch) at which every leased entry read still gives the TTL it gives at
 * `now`: a record's TTL is min(its ttl, the whole seconds left of its lease)
 * (docs/architecture.md §4.5), which holds while that many seconds are left.
 */
class LeaseBound implements ZoneStore {
  readonly #store: ZoneStore;
  readonly #now: number;
  last = Number.POSITIVE_INFINITY;

  constructor(store: ZoneStore, now: number) {
    this.#store = store;
    this.#now = now;
  }

  get malformed(): number {
    return this.#store.malformed;
  }

  subtree(keyPrefix: string): readonly ZoneEntry[] {
    const found = this.#store.subtree(keyPrefix);
    for (const entry of found) this.#see(entry);
    return found;
  }

  get(key: string): ZoneEntry | undefined {
    const entry = this.#store.get(key);
    if (entry !== undefined) this.#see(entry);
    return entry;
  }

  #see(entry: ZoneEntry): void {
    if (entry.expiresAt === undefined) return;
    const left = Math.floor((entry.expiresAt - this.#now) / 1000);
    // At 0 or past the end the TTL is 0 and stays 0 until the store drops the key.
    if (left <= 0) return;
    // A record without a ttl gets the rules' default (300): bounding by the lease alone is never later than the truth.
    const shown = entry.record.ttl === undefined ? left : Math.max(0, Math.min(entry.record.ttl, left));
    this.last = Math.min(this.last, entry.expiresAt - 1000 * shown);
  }
}
