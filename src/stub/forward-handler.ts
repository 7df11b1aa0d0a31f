import { DnsQueryError, SrvlinkError, errorMessage } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { LogThrottle } from '../core/log-throttle.js';
import { EDNS_UDP_SIZE, createMessage, type DnsMessage } from '../dns/codec.js';
import type { DnsHandler, DnsRequest, NextHandler } from '../dns/handler.js';
import { DnsCache } from './dns-cache.js';
import { replyFromResponse } from './reply-from-response.js';
import type { StubStats } from './stub-stats.js';

/** What the forwarder needs of an upstream client; `DnsClient` is one. */
export interface DnsResolver {
  /** Resolve `query`, or reject when no upstream gave a usable answer. */
  exchange(query: DnsMessage, options?: { signal?: AbortSignal }): Promise<DnsMessage>;
}

export interface ForwardHandlerOptions {
  /** Names the handler in the chain and in logs (`cluster`, `upstream`). */
  name: string;
  /** Which questions go to `resolver`: the names for which it returns true, or all. */
  match: 'all' | ((qname: string) => boolean);
  resolver: DnsResolver;
  /** Shared with other forwarders; none: every question goes upstream. */
  cache?: DnsCache;
  logger?: Logger;
  /** Counters to increment: cacheHits, cacheMisses, coalesced, upstreamFailures, staleServed. */
  stats?: StubStats;
  /** Aborts the exchanges in flight (on shutdown). */
  signal?: AbortSignal;
  /**
   * Distinct exchanges in flight at most. Past it a question is answered
   * stale or SERVFAIL at once: a flood of names a slow upstream must answer
   * cannot take the server's every slot, and the names the stub answers
   * itself stay answered. Default 256.
   */
  maxInflight?: number;
  /**
   * RFC 8767 §5 client-response timer, in ms: when an expired answer is at
   * hand and the refresh has not answered by then, the client gets the stale
   * answer at once while the refresh goes on (and updates the cache).
   * Default `STALE_ANSWER_AFTER` (1.8 s, the value RFC 8767 suggests).
   */
  staleAnswerAfter?: number;
  /**
   * Longest a client waits for an answer, in ms, whatever the upstreams do
   * (several servers each timing out add up): past it the question is
   * answered SERVFAIL (or stale) while the exchange goes on. Default
   * `QUESTION_DEADLINE` (4 s: before glibc's resolver gives up, at 5 s).
   */
  questionDeadline?: number;
}

/** RFC 8767 §5: "a client response timer ... of 1.8 seconds". */
export const STALE_ANSWER_AFTER = 1800;
/** Under glibc's default 5 s per try (resolv.conf `timeout:`), so the app hears an answer, not silence. */
export const QUESTION_DEADLINE = 4000;

/** What a client's wait for an exchange ended with. */
type Wait =
  | { kind: 'answer'; response: DnsMessage }
  | { kind: 'error'; error: unknown }
  | { kind: 'stale' }
  | { kind: 'deadline' };

/** Raised when `maxInflight` exchanges are already on their way. */
class UpstreamOverload extends SrvlinkError {
  constructor(limit: number) {
    super('ERR_DNS_OVERLOAD', `not asking upstream: ${limit} queries already in flight`);
  }
}

/**
 * Forward matching questions to `resolver` (docs/architecture.md §4.1), through `cache`:
 *
 * 1. a fresh cache entry answers at once;
 * 2. else the question goes upstream, once: identical questions (same cache
 *    key) arriving while it is in flight wait for the same exchange;
 * 3. the upstream's response is cached when `DnsCache` allows and relayed
 *    with its rcode, sections and AA bit, the client's ID, question and RD,
 *    and RA set: the stub recurses on the client's behalf (RFC 1035 §4.1.1);
 * 4. when the exchange fails (timeouts, unreachable, SERVFAIL or REFUSED from
 *    every server), an expired entry is served with TTL 30 (RFC 8767 §4); with
 *    none, the error is thrown and the server answers SERVFAIL
 *    (`rcodeForError`, the one place errors become rcodes);
 * 5. a client never waits longer than `staleAnswerAfter` when an expired
 *    entry exists (RFC 8767 §5), nor longer than `questionDeadline` at all;
 *    the exchange it gave up on still finishes and fills the cache.
 *
 * The query sent upstream always asks for recursion (RD), whatever the client
 * set, so that what is cached is a full answer; it keeps the client's CD bit
 * and DO bit (both in the cache key). Other questions go to `next`.
 */
export function createForwardHandler(options: ForwardHandlerOptions): DnsHandler {
  const { name, match, resolver, cache, stats, signal } = options;
  const maxInflight = options.maxInflight ?? 256;
  const staleAfter = options.staleAnswerAfter ?? STALE_ANSWER_AFTER;
  const deadline = options.questionDeadline ?? QUESTION_DEADLINE;
  const log = (options.logger ?? silentLogger).child({ forwarder: name });
  const inflight = new Map<string, Promise<DnsMessage>>();
  // One warning when the upstream stops answering, one line when it is back; debug in between.
  const outage = new LogThrottle({ interval: Number.POSITIVE_INFINITY });

  const matches = (qname: string): boolean => match === 'all' || match(qname);

  /** One exchange per key at a time; settles for every waiter. */
  const fetch = (key: string | undefined, query: DnsMessage): Promise<DnsMessage> => {
    const pending = key === undefined ? undefined : inflight.get(key);
    if (pending !== undefined) {
      if (stats) stats.coalesced += 1;
      return pending;
    }
    if (inflight.size >= maxInflight) return Promise.reject(new UpstreamOverload(maxInflight));
    const upstream = createMessage({
      id: query.id,
      opcode: query.opcode,
      questions: query.questions.map((question) => ({ ...question })),
      // AD asks the upstream for its validation verdict (RFC 6840 §5.7), kept in the cache;
      // each client sees it only if it asked (`replyFromResponse`, RFC 6840 §5.8).
      flags: { rd: true, ad: true, cd: query.flags.cd },
      // Our own payload size upstream (RFC 6891 §6.2.5), whatever the client's: the server
      // truncates for the client, and the cache keeps the whole answer. DO as the client asked.
      ...(query.edns ? { edns: { udpPayloadSize: EDNS_UDP_SIZE, version: 0, dnssecOk: query.edns.dnssecOk } } : {}),
    });
    const exchange = (async (): Promise<DnsMessage> => {
      try {
        const response = await resolver.exchange(upstream, signal ? { signal } : {});
        cache?.set(query, response);
        if (outage.clear() !== undefined) {
          log.info('upstream dns answering again');
        }
        return response;
      } finally {
        if (key !== undefined) inflight.delete(key);
      }
    })();
    if (key !== undefined) inflight.set(key, exchange);
    return exchange;
  };

  /**
   * Wait for `exchange`, or for the client-response timer when a stale
   * answer exists, or for the deadline: whichever comes first. The exchange
   * may outlive the wait; its rejection is then seen by no one, and must not
   * count as unhandled.
   */
  const waitFor = (exchange: Promise<DnsMessage>, haveStale: boolean): Promise<Wait> =>
    new Promise<Wait>((resolve) => {
      const timers = [setTimeout(() => resolve({ kind: 'deadline' }), deadline)];
      if (haveStale && staleAfter < deadline) timers.push(setTimeout(() => resolve({ kind: 'stale' }), staleAfter));
      exchange
        .then(
          (response) => resolve({ kind: 'answer', response }),
          (error: unknown) => resolve({ kind: 'error', error }),
        )
        .finally(() => timers.forEach(clearTimeout));
    });

  return {
    name,
    async handle(request: DnsRequest, next: NextHandler): Promise<DnsMessage> {
      const query = request.message;
      const question = query.questions[0];
      if (question === undefined || !matches(question.name)) return next();
      const cached = cache?.get(query);
      if (cached !== undefined) {
        if (stats) stats.cacheHits += 1;
        return cached;
      }
      if (stats) stats.cacheMisses += 1;
      let response: DnsMessage;
      try {
        const waited = await waitFor(fetch(DnsCache.keyOf(query), query), cache?.getStale(query) !== undefined);
        if (waited.kind === 'stale' || waited.kind === 'deadline') {
          const stale = cache?.getStale(query);
          if (stale !== undefined) {
            if (stats) {
              stats.staleServed += 1;
              stats.staleOnTimer += 1;
            }
            return stale;
          }
          if (stats) stats.deadlineExceeded += 1;
          throw new DnsQueryError('ERR_DNS_TIMEOUT', `cannot resolve "${question.name}" ${question.type}: no answer within ${deadline} ms`);
        }
        if (waited.kind === 'error') throw waited.error;
        response = waited.response;
      } catch (err) {
        if (err instanceof UpstreamOverload) {
          if (stats) stats.shed += 1;
          const stale = cache?.getStale(query);
          if (stale === undefined) throw err;
          return stale;
        }
        if (stats) stats.upstreamFailures += 1;
        // An upstream that answers SERVFAIL is alive (the name is broken, e.g. a DNSSEC failure):
        // debug. Silence or unreachability is one warning when it starts, then debug lines, so
        // that a flood of queries does not flood the log.
        const fields = { name: question.name, type: question.type, error: errorMessage(err) };
        const answered = err instanceof DnsQueryError && (err.code === 'ERR_DNS_SERVER_FAILURE' || err.code === 'ERR_DNS_ABORTED');
        if (!answered && outage.take() !== undefined) {
          log.warn('upstream dns not answering', fields);
        } else {
          log.debug('upstream dns failed', fields);
        }
        const stale = cache?.getStale(query);
        if (stale === undefined) throw err;
        if (stats) stats.staleServed += 1;
        return stale;
      }
      return replyFromResponse(query, response);
    },
  };
}
