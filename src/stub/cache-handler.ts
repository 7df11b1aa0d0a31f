import { SrvlinkError } from '../core/errors.js';
import type { DnsMessage } from '../dns/codec.js';
import type { DnsHandler, DnsRequest, NextHandler } from '../dns/handler.js';
import type { CacheOrigin, CachedAnswer, DnsCache } from './dns-cache.js';
import { replyFromResponse } from './reply-from-response.js';
import type { StubStats } from './stub-stats.js';
import { pollDeadline, type PollDeadline } from '../core/poll-deadline.js';

export interface CacheHandlerOptions {
  cache: DnsCache;
  /** Which questions it answers: the forwarders' (a name no forwarder takes goes past it untouched). */
  match: 'all' | ((qname: string) => boolean);
  /** Counters to increment: cacheHits, cacheMisses, staleServed, staleOnTimer. */
  stats?: StubStats;
  /**
   * RFC 8767 §5 client-response timer, in ms: when an expired answer is at
   * hand and the forwarder has not answered by then, the client gets the
   * stale answer at once while the refresh goes on (and fills the cache).
   * Default `STALE_ANSWER_AFTER` (1.8 s, the value RFC 8767 suggests).
   */
  staleAnswerAfter?: number;
}

/** RFC 8767 §5: "a client response timer ... of 1.8 seconds". */
export const STALE_ANSWER_AFTER = 1800;

/** The stub's cache as a link in the chain, before the forwarders; the wire cache asks it where a reply came from. */
export interface CacheHandler extends DnsHandler {
  /** Where `reply` came from, when this handler made it from a fresh entry (undefined for any other reply, stale ones included). */
  origin(reply: DnsMessage): CacheOrigin | undefined;
  /** Keep `response`, an upstream's answer to `query`, when the cache's rules allow (a forwarder's `onResponse`, once per exchange). */
  store(query: DnsMessage, response: DnsMessage): void;
}

/**
 * The reply to `query` from a cache entry: the query's ID, question (its
 * spelling, too, for the records owned by the asked name) and RD bit, the
 * entry's TTLs as `answer` ages them, AA clear (RFC 1035 §4.1.1: AA is for
 * answers from the authority, not from a cache).
 */
export function cachedReply(query: DnsMessage, answer: CachedAnswer): DnsMessage {
  return replyFromResponse(query, answer.response, { aa: false, ttl: answer.ttl });
}

/** What the wait for the forwarders ended with. */
type Wait = { kind: 'answer'; response: DnsMessage } | { kind: 'error'; error: unknown } | { kind: 'stale' };

/**
 * The stub's answer cache in the chain (docs/architecture.md §4.1), where
 * CoreDNS's cache plugin sits: before the forwarders, and the one place a
 * forwarded question's reply is made (`replyFromResponse`), whether from a
 * fresh entry, a stale one or the upstream's response that `next` (the
 * forwarders) returns.
 *
 * 1. a fresh entry answers at once, AA clear (RFC 1035 §4.1.1: AA is for
 *    answers from the authority, not from a cache), TTLs aged;
 * 2. else the forwarders answer: their response becomes the reply;
 * 3. when they fail (timeouts, unreachable, SERVFAIL or REFUSED from every
 *    server, overload), an expired entry is served with TTL 30 (RFC 8767
 *    §4); with none, the error goes on and the server answers SERVFAIL;
 * 4. a client never waits longer than `staleAnswerAfter` when an expired
 *    entry exists (RFC 8767 §5); the refresh it gave up on still finishes.
 *
 * The cache is filled by `store`, which the forwarders call once per
 * exchange, also for one every client gave up on. Other questions go to `next`.
 */
export function createCacheHandler(options: CacheHandlerOptions): CacheHandler {
  const { cache, match, stats } = options;
  const staleAfter = options.staleAnswerAfter ?? STALE_ANSWER_AFTER;
  const origins = new WeakMap<DnsMessage, CacheOrigin>();

  const reply = (query: DnsMessage, answer: CachedAnswer): DnsMessage => {
    const made = cachedReply(query, answer);
    if (answer.origin !== undefined) origins.set(made, answer.origin);
    return made;
  };

  /** The forwarders' outcome, or the client-response timer when a stale answer exists: whichever comes first. */
  const waitFor = async (answered: Promise<DnsMessage>, haveStale: boolean): Promise<Wait> => {
    const settled = answered.then(
      (response): Wait => ({ kind: 'answer', response }),
      (error: unknown): Wait => ({ kind: 'error', error }),
    );
    if (!haveStale) return settled;
    let timer: PollDeadline | undefined;
    // After the poll: an upstream answer that came in time while the process was busy beats the stale one.
    const stale = new Promise<Wait>((resolve) => (timer = pollDeadline(staleAfter, () => resolve({ kind: 'stale' }))));
    try {
      return await Promise.race([settled, stale]);
    } finally {
      timer?.clear();
    }
  };

  return {
    name: 'cache',
    origin: (made) => origins.get(made),
    store: (query, response) => void cache.set(query, response),
    async handle(request: DnsRequest, next: NextHandler): Promise<DnsMessage> {
      const query = request.message;
      const question = query.questions[0];
      if (question === undefined || (match !== 'all' && !match(question.name))) return next();
      const fresh = cache.get(query);
      if (fresh !== undefined) {
        if (stats) stats.cacheHits += 1;
        return reply(query, fresh);
      }
      if (stats) stats.cacheMisses += 1;
      const answered = next();
      const waited = await waitFor(answered, cache.getStale(query) !== undefined);
      if (waited.kind === 'answer') return replyFromResponse(query, waited.response);
      const stale = cache.getStale(query);
      if (stale === undefined) {
        if (waited.kind === 'error') throw waited.error;
        // The entry went while the timer ran (evicted): wait for the forwarders after all.
        return replyFromResponse(query, await answered);
      }
      const code = waited.kind === 'error' && waited.error instanceof SrvlinkError ? waited.error.code : undefined;
      // A question shed for overload is counted as shed (by the forwarder), not as a stale answer.
      if (stats && code !== 'ERR_DNS_OVERLOAD') {
        stats.staleServed += 1;
        if (waited.kind === 'stale' || code === 'ERR_DNS_TIMEOUT') stats.staleOnTimer += 1;
      }
      return reply(query, stale);
    },
  };
}
