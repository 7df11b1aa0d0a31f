import { DnsQueryError, SrvlinkError, errorMessage } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { LogThrottle } from '../core/log-throttle.js';
import { EDNS_UDP_SIZE, createMessage, type DnsMessage } from '../dns/codec.js';
import type { DnsHandler, DnsRequest, NextHandler } from '../dns/handler.js';
import { DnsCache } from './dns-cache.js';
import type { StubStats } from './stub-stats.js';
import { pollDeadline } from '../core/poll-deadline.js';

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
  /**
   * Told every response an upstream gave, once per exchange, also for one
   * every client gave up on (the cache handler keeps it).
   */
  onResponse?: (query: DnsMessage, response: DnsMessage) => void;
  logger?: Logger;
  /** Counters to increment: coalesced, upstreamFailures, deadlineExceeded, shed. */
  stats?: StubStats;
  /** Aborts the exchanges in flight (on shutdown). */
  signal?: AbortSignal;
  /**
   * Distinct exchanges in flight at most. Past it a question fails at once
   * (the cache handler answers it stale, or the server SERVFAIL): a flood of names a slow upstream must answer
   * cannot take the server's every slot, and the names the stub answers
   * itself stay answered. Default 256.
   */
  maxInflight?: number;
  /**
   * Longest a client waits for an answer, in ms, whatever the upstreams do
   * (several servers each timing out add up): past it the question is
   * answered SERVFAIL (or stale, by the cache handler) while the exchange goes on. Default
   * `QUESTION_DEADLINE` (4 s: before glibc's resolver gives up, at 5 s).
   */
  questionDeadline?: number;
}

/** Under glibc's default 5 s per try (resolv.conf `timeout:`), so the app hears an answer, not silence. */
export const QUESTION_DEADLINE = 4000;

/** What a client's wait for an exchange ended with. */
type Wait = { kind: 'answer'; response: DnsMessage } | { kind: 'error'; error: unknown } | { kind: 'deadline' };

/** Raised when `maxInflight` exchanges are already on their way. */
class UpstreamOverload extends SrvlinkError {
  constructor(limit: number) {
    super('ERR_DNS_OVERLOAD', `not asking upstream: ${limit} queries already in flight`);
  }
}

/**
 * Forward matching questions to `resolver` (docs/architecture.md §4.1); the
 * cache handler before it answers from the cache and makes the reply:
 *
 * 1. a question goes upstream once: identical questions (same cache key)
 *    arriving while it is in flight wait for the same exchange;
 * 2. the upstream's response is returned as it came (the cache handler
 *    turns it into the client's reply) and told to `onResponse`;
 * 3. when the exchange fails (timeouts, unreachable, SERVFAIL or REFUSED from
 *    every server) the error is thrown: the cache handler answers stale, or
 *    the server SERVFAIL (`rcodeForError`, the one place errors become rcodes);
 * 4. a client never waits longer than `questionDeadline`; the exchange it
 *    gave up on still finishes and is told to `onResponse`.
 *
 * The query sent upstream always asks for recursion (RD), whatever the client
 * set, so that what is cached is a full answer; it keeps the client's CD bit
 * and DO bit (both in the cache key). Other questions go to `next`.
 */
export function createForwardHandler(options: ForwardHandlerOptions): DnsHandler {
  const { name, match, resolver, onResponse, stats, signal } = options;
  const maxInflight = options.maxInflight ?? 256;
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
        onResponse?.(query, response);
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
   * Wait for `exchange` or for the deadline, whichever comes first. The
   * exchange may outlive the wait; its rejection is then seen by no one,
   * and must not count as unhandled.
   */
  const waitFor = (exchange: Promise<DnsMessage>): Promise<Wait> =>
    new Promise<Wait>((resolve) => {
      // After the poll: an answer that came in time while the process was busy is the one told.
      const timer = pollDeadline(deadline, () => resolve({ kind: 'deadline' }));
      exchange
        .then(
          (response) => resolve({ kind: 'answer', response }),
          (error: unknown) => resolve({ kind: 'error', error }),
        )
        .finally(() => timer.clear());
    });

  return {
    name,
    async handle(request: DnsRequest, next: NextHandler): Promise<DnsMessage> {
      const query = request.message;
      const question = query.questions[0];
      if (question === undefined || !matches(question.name)) return next();
      try {
        const waited = await waitFor(fetch(DnsCache.keyOf(query), query));
        if (waited.kind === 'deadline') {
          if (stats) stats.deadlineExceeded += 1;
          throw new DnsQueryError('ERR_DNS_TIMEOUT', `cannot resolve "${question.name}" ${question.type}: no answer within ${deadline} ms`);
        }
        if (waited.kind === 'error') throw waited.error;
        return waited.response;
      } catch (err) {
        if (err instanceof UpstreamOverload) {
          if (stats) stats.shed += 1;
          throw err;
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
        throw err;
      }
    },
  };
}
