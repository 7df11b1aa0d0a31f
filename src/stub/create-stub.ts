import { setMaxListeners } from 'node:events';
import { parseCidr, type Cidr } from '../core/cidr.js';
import { InvalidArgumentError } from '../core/errors.js';
import type { HostPort } from '../core/host-port.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { isInZone } from '../core/dns-name.js';
import { Rcode, type DnsMessage } from '../dns/codec.js';
import type { DnsHandler, DnsRequest, NextHandler } from '../dns/handler.js';
import { DnsServer, type DnsServerOptions } from '../dns/server.js';
import { createAliasHandler, type AliasAddresses } from './alias-handler.js';
import { allowFrom, createAllowFromHandler } from './allow-from.js';
import { LocalAddresses } from './local-address.js';
import { DEFAULT_CACHE_BYTES, DEFAULT_CACHE_ENTRIES, DnsCache } from './dns-cache.js';
import { createCacheHandler } from './cache-handler.js';
import { createForwardHandler, type DnsResolver } from './forward-handler.js';
import { createQueryCheckHandler } from '../dns/query-check.js';
import { Refusals } from '../dns/refusals.js';
import { createStubStats, type StubStats } from './stub-stats.js';
import { WireCache } from './wire-cache.js';

export interface StubOptions {
  /** Where the stub listens, UDP and TCP (docs/architecture.md §4.1: `127.0.0.1:53`); port 0 in tests. */
  listen: HostPort;
  /** Names of mapped services (canonical) → their listener's addresses. Default: none. */
  aliases?: ReadonlyMap<string, AliasAddresses>;
  /** TTL of alias answers in seconds; default `DEFAULT_ALIAS_TTL` (30). */
  aliasTtl?: number;
  /** The cluster domain(s) (`skydns.local`): names in it go to `clusterResolver`. */
  clusterDomain?: string | readonly string[];
  /**
   * A handler that answers the cluster domain itself, from memory (the etcd
   * index when discovery is `etcd`, docs/architecture.md §4.1); it runs before the
   * forwarders and passes on names outside its zones.
   */
  clusterZone?: DnsHandler;
  /** The cluster DNS. Without one, cluster names go to `upstreamResolver` like the rest. */
  clusterResolver?: DnsResolver;
  /** The container's resolvers for every other name. Without one, those names are REFUSED. */
  upstreamResolver?: DnsResolver;
  /**
   * Answer only clients in these networks, REFUSE the rest (for a stub bound
   * beyond loopback; see `defaultAllowFrom`). Undefined: every client.
   */
  allowFrom?: readonly (string | Cidr)[];
  /** Cache entries at most; default `DEFAULT_CACHE_ENTRIES` (10 000). */
  cacheSize?: number;
  /** Cache wire bytes at most; default `DEFAULT_CACHE_BYTES` (8 MiB). */
  cacheBytes?: number;
  /**
   * Keep the cache's replies encoded too and answer repeated queries from
   * them without decoding (`WireCache`); default true. False: every query
   * takes the chain (the path the wire cache must answer like).
   */
  wireCache?: boolean;
  /** How long expired entries may still be served when upstreams fail, ms; default `DEFAULT_STALE_MAX` (1 day). */
  staleMax?: number;
  logger?: Logger;
  /** Clock of the cache, ms since the epoch; default `Date.now`. */
  now?: () => number;
  /** RFC 8767 client-response timer of the cache handler, ms; default `STALE_ANSWER_AFTER` (1.8 s). */
  staleAnswerAfter?: number;
  /** Longest a client waits for a forwarded answer, ms; default `QUESTION_DEADLINE` (4 s). */
  questionDeadline?: number;
  /** Transport limits, passed to `DnsServer` as they are. */
  server?: Pick<DnsServerOptions, 'maxInflight' | 'maxTcpConnections' | 'tcpIdleTimeout' | 'tcpMessageTimeout' | 'maxTcpPipeline' | 'onReply' | 'nativeUdp' | 'nativeUdpReader'>;
}

/**
 * The stub as a `DnsServer`, with its counters and cache in view. `close()`
 * also aborts the upstream exchanges in flight.
 */
export class StubServer extends DnsServer {
  /** Counters of the stub's handlers (the server's own are in `stats`). */
  readonly stubStats: StubStats;
  /** The cache shared by the forwarders. */
  readonly cache: DnsCache;
  /** Its replies encoded, answered before the chain (undefined when off). */
  readonly wireCache: WireCache | undefined;
  readonly #abort: AbortController;
  readonly #setAliases: (aliases: ReadonlyMap<string, AliasAddresses>) => void;

  constructor(
    options: DnsServerOptions,
    parts: { stubStats: StubStats; cache: DnsCache; wireCache: WireCache | undefined; abort: AbortController; setAliases: (aliases: ReadonlyMap<string, AliasAddresses>) => void },
  ) {
    super(options);
    this.stubStats = parts.stubStats;
    this.cache = parts.cache;
    this.wireCache = parts.wireCache;
    this.#abort = parts.abort;
    this.#setAliases = parts.setAliases;
  }

  /**
   * Answer these alias names from now on (mappings added or removed by a
   * config reload). Validated first: an `InvalidArgumentError` leaves the old ones.
   */
  setAliases(aliases: ReadonlyMap<string, AliasAddresses>): void {
    this.#setAliases(aliases);
  }

  override close(): Promise<void> {
    this.#abort.abort();
    return super.close();
  }
}

/**
 * Build the container's DNS stub (docs/architecture.md §4.1): a `DnsServer` whose chain
 * is
 *
 * 1. query-check: NOTIMP, FORMERR, REFUSED for what is not a standard IN query;
 * 2. allow-from, when `allowFrom` is given: REFUSED for other clients;
 * 3. aliases: the names of mapped services → the listeners' addresses;
 * 4. the cluster zone, when `clusterZone` is given: names it holds in memory;
 * 5. cache: fresh and stale answers to what the forwarders take, and their replies;
 * 6. cluster forwarder: names in `clusterDomain` → `clusterResolver`;
 * 7. upstream forwarder: every other name → `upstreamResolver`;
 *
 * and REFUSED for what is left (we are nobody's open resolver). Both
 * forwarders fill the one cache; the wire cache in front of the chain answers
 * repeated queries with the encoded replies the cache handler gave. Not started: call `start()`. Throws a
 * `InvalidArgumentError` for a `clusterResolver` without `clusterDomain` and for bad
 * aliases, networks or cache sizes.
 */
export function createStub(options: StubOptions): StubServer {
  const logger = options.logger ?? silentLogger;
  const stats = createStubStats();
  const abort = new AbortController();
  // Every exchange in flight listens to this signal: hundreds at once are normal, not the leak Node warns about.
  setMaxListeners(0, abort.signal);
  const cache = new DnsCache({
    ...(options.cacheSize === undefined ? {} : { maxEntries: options.cacheSize }),
    ...(options.cacheBytes === undefined ? {} : { maxBytes: options.cacheBytes }),
    ...(options.staleMax === undefined ? {} : { staleMax: options.staleMax }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  const zones = options.clusterDomain === undefined ? [] : typeof options.clusterDomain === 'string' ? [options.clusterDomain] : [...options.clusterDomain];
  if (options.clusterResolver !== undefined && zones.length === 0) {
    throw new InvalidArgumentError('cannot build the dns stub: a cluster resolver needs a cluster domain (e.g. "skydns.local")');
  }

  const refusals = new Refusals(logger.child({ component: 'dns-stub' }));
  stats.refusals = refusals.counts;
  const handlers: DnsHandler[] = [countReplies(stats), createQueryCheckHandler({ refusals })];
  if (options.allowFrom !== undefined) handlers.push(createAllowFromHandler(options.allowFrom, { refusals }));
  // One memory of where clients reach the stub, kept across alias tables.
  // Alias answers the same for every client: the wire cache keeps them until the table changes.
  const aliasReplies = new WeakSet<DnsMessage>();
  const aliasOptions = {
    stats,
    localAddresses: new LocalAddresses(),
    onFixedAnswer: (reply: DnsMessage) => void aliasReplies.add(reply),
    ...(options.aliasTtl === undefined ? {} : { ttl: options.aliasTtl }),
  };
  let aliasHandler = createAliasHandler(options.aliases ?? new Map(), aliasOptions);
  // A level of indirection so that a reload can swap the table without rebuilding the chain.
  handlers.push({ name: 'alias', handle: (request, next) => aliasHandler.handle(request, next) });
  const setAliases = (aliases: ReadonlyMap<string, AliasAddresses>): void => {
    aliasHandler = createAliasHandler(aliases, aliasOptions);
    // A name forwarded until now may be an alias from now on.
    wireCache?.clear();
  };
  const inCluster = (qname: string): boolean => zones.some((zone) => isInZone(qname, zone));
  // The names some forwarder takes; the cache answers for those only.
  const forwarded = options.upstreamResolver !== undefined ? 'all' : inCluster;
  const cacheHandler = createCacheHandler({
    cache,
    match: forwarded,
    stats,
    ...(options.staleAnswerAfter === undefined ? {} : { staleAnswerAfter: options.staleAnswerAfter }),
  });
  const forward = {
    onResponse: cacheHandler.store,
    stats,
    logger: logger.child({ component: 'dns-stub' }),
    signal: abort.signal,
    ...(options.questionDeadline === undefined ? {} : { questionDeadline: options.questionDeadline }),
  };
  // A cluster zone held in memory (the etcd index) answers before the cache and any forwarder.
  if (options.clusterZone !== undefined) handlers.push(options.clusterZone);
  if (options.clusterResolver !== undefined || options.upstreamResolver !== undefined) handlers.push(cacheHandler);
  if (options.clusterResolver !== undefined) {
    handlers.push(createForwardHandler({ ...forward, name: 'cluster', match: inCluster, resolver: options.clusterResolver }));
  }
  if (options.upstreamResolver !== undefined) {
    handlers.push(createForwardHandler({ ...forward, name: 'upstream', match: 'all', resolver: options.upstreamResolver }));
  }
  const wireCache =
    options.wireCache === false
      ? undefined
      : new WireCache({
          source: cacheHandler,
          aliasReplies,
          maxEntries: options.cacheSize ?? DEFAULT_CACHE_ENTRIES,
          maxBytes: options.cacheBytes ?? DEFAULT_CACHE_BYTES,
          stats,
          ...(options.now === undefined ? {} : { now: options.now }),
          ...(options.allowFrom === undefined
            ? {}
            : {
                allows: allowFrom(options.allowFrom),
                allowNetworks: options.allowFrom.map((entry) => (typeof entry === 'string' ? parseCidr(entry, '--allow-from') : entry)),
              }),
        });
  // What no handler took: a name outside the cluster domain with no upstream to send it to
  // (resolv.conf names only the stub). Never silent: counted, and logged the first time.
  const fallback = (request: DnsRequest): Promise<DnsMessage> => Promise.resolve(refusals.refuse(request, 'noUpstream', { ra: true }));
  return new StubServer(
    { listen: options.listen, handlers, logger, fallback, ...options.server, ...(wireCache === undefined ? {} : { replyCache: wireCache }) },
    { stubStats: stats, cache, wireCache, abort, setAliases },
  );
}

/** Counts queries and REFUSED replies, whoever gave them (allow-from, query-check, the fallback). */
function countReplies(stats: StubStats): DnsHandler {
  return {
    name: 'stats',
    async handle(_request: DnsRequest, next: NextHandler): Promise<DnsMessage> {
      stats.queries += 1;
      const reply = await next();
      if (reply.rcode === Rcode.REFUSED) stats.refused += 1;
      return reply;
    },
  };
}
