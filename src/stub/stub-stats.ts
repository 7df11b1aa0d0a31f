import type { RefusalCounts } from '../dns/refusals.js';

/**
 * What the stub did since it started, as plain counters that its handlers
 * increment (metrics come later and read them). Every field only grows.
 */
export interface StubStats {
  /** Queries that entered the stub's chain (after the server decoded them). */
  queries: number;
  /** Questions answered from a mapping's alias (docs/architecture.md §4.1). */
  aliasAnswers: number;
  /** Forwarded questions answered from a fresh cache entry. */
  cacheHits: number;
  /** Forwarded questions that had to go upstream. */
  cacheMisses: number;
  /** Misses that joined an identical query already on its way upstream. */
  coalesced: number;
  /** Upstream exchanges that failed (timeout, unreachable, SERVFAIL everywhere). */
  upstreamFailures: number;
  /** Failures answered with an expired entry (RFC 8767), and answers given by the timer below. */
  staleServed: number;
  /** Stale answers given because the refresh was slower than the client-response timer (RFC 8767 §5). */
  staleOnTimer: number;
  /** Questions answered SERVFAIL because no upstream answered within the question deadline. */
  deadlineExceeded: number;
  /** Replies sent with rcode REFUSED (not allowed, class not served, no upstream). */
  refused: number;
  /** The stub's own refusals by reason (the first of each is logged, the rest only counted). */
  refusals: RefusalCounts;
  /** Questions not sent upstream because too many exchanges were already in flight. */
  shed: number;
}

/** A zeroed `StubStats`. */
export function createStubStats(): StubStats {
  return { queries: 0, aliasAnswers: 0, cacheHits: 0, cacheMisses: 0, coalesced: 0, upstreamFailures: 0, staleServed: 0, staleOnTimer: 0, deadlineExceeded: 0, refused: 0, refusals: { noUpstream: 0, notAllowed: 0, outsideZone: 0, unsupported: 0 }, shed: 0 };
}
