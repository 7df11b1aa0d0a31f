import { InvalidArgumentError, SrvlinkError, errorMessage } from '../core/errors.js';
import { formatDuration, MAX_TIMER_MS } from '../core/duration.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { LogThrottle } from '../core/log-throttle.js';
import { canonicalName } from '../core/dns-name.js';
import type { Backend, BackendSet, BackendSource } from './backend-source.js';
import { describeBackend, diffBackendSets } from './backend-set-diff.js';
import { lookupSrv, type Resolver, type SrvLookup } from './lookup-srv.js';

/** Options of a `DnsBackendSource`; checked once, in the constructor. */
export interface DnsBackendSourceOptions {
  /** The SRV name to resolve, fully qualified (`_zookeeper._tcp.env1.skydns.local`); a trailing dot is optional. */
  srvName: string;
  /** Asks the cluster DNS; a `DnsClient` in production. */
  resolver: Resolver;
  /** Shortest time an answer is kept, in ms, whatever its TTL (a TTL of 0 included). Default 1000. */
  ttlMin?: number;
  /** Longest time an answer is kept before it is asked again, in ms. Default 60000. */
  ttlMax?: number;
  /**
   * How long past its expiry the last good set is still served while
   * refreshing fails (`--stale-max`), in ms; 0 serves nothing stale.
   * Default 300000 (5 minutes).
   */
  staleMax?: number;
  /** Delay before asking again after a failed refresh, in ms. Default min(ttlMin, 1000). */
  retryInterval?: number;
  logger?: Logger;
  /** The discovery its log lines name (`discovery` field and messages): `etcd` when the resolver answers from the etcd zone. Default `dns`. */
  discovery?: string;
  /** Clock in ms since the epoch (`Date.now` by default); a seam for tests. Timers stay real. */
  now?: () => number;
}

/** What a `DnsBackendSource` knows beyond its set, for status pages and tests. */
export interface DnsBackendSourceState {
  /** How long the current set is kept (its TTL clamped to [ttlMin, ttlMax]), in ms; undefined before the first answer. */
  ttl: number | undefined;
  /** When the current set expires (ms since the epoch); undefined before the first answer. */
  expiresAt: number | undefined;
  /** Why the last refresh failed; undefined while refreshing works. */
  lastError: string | undefined;
  /** Refreshes failed in a row. */
  failures: number;
  /** Lookups finished since start (answered or failed). */
  refreshes: number;
  /** Of those, failed. */
  refreshFailures: number;
  /** Causes remembered as warned about (targets without an address or a port, failing refreshes): at most 1024, whatever the churn of names. */
  warnings: number;
}

/** The defaults of the optional settings, ms; `srvlink run` shows them in --help. */
export const DNS_DISCOVERY_DEFAULTS = { ttlMin: 1000, ttlMax: 60_000, staleMax: 300_000 } as const;
/** Upper bound of `retryInterval`'s default: a down cluster DNS is asked again every second at most. */
const DEFAULT_RETRY_CAP = 1000;
/**
 * Refresh when this fraction of the clamped TTL has passed, so that a fresh
 * answer is in memory before the old one expires (prefetch, as resolvers such
 * as Unbound do) and no connection ever waits for DNS after the first.
 */
const REFRESH_AHEAD = 0.8;
/** The refresh-failure cause of the warnings throttle; target causes are `no-address target.` and `no-port target.`. */
const REFRESH_FAILING = 'refresh';
/** Targets remembered as warned about; a huge answer cannot make the memory of warnings grow past it. */
const MAX_WARNED_TARGETS = 1024;

/**
 * The `dns` discovery of `srvlink run` (docs/architecture.md §4.2): the backends of one
 * service from its SRV records through the cluster DNS, with the targets'
 * addresses (`lookupSrv`). Targets without any address are left out (warned
 * once per target).
 *
 * Caching: an answer is kept for its TTL clamped to [ttlMin, ttlMax] and
 * refreshed in the background at 80 % of that time, so `current()` answers
 * from memory; only the first call(s), before any answer, wait for the first
 * resolution (concurrent callers share it). `start()` begins that resolution
 * without waiting for it: a cluster DNS that is down at start does not stop
 * srvlink from starting.
 *
 * Failures (timeout, SERVFAIL, unreachable server, or an answer where no
 * target has an address) keep the last good set: once its TTL has run out it
 * is served with `stale: true` (RFC 8767 §4 "serve-stale") for up to
 * `staleMax` past its expiry, while the name is asked again every
 * `retryInterval`. RFC 8767 §5 suggests a 30 s "failure recheck" for a
 * shared resolver; a forwarder asks one name and wants its backends back
 * sooner, hence the shorter default. Past `staleMax`, or when no answer was
 * ever had, `current()` rejects with `ERR_DISCOVERY` (and retries go on, so a
 * later call can succeed).
 *
 * An authoritative NXDOMAIN or NODATA replaces the set with an empty one
 * (status `nxdomain`/`nodata`), cached for the negative TTL of RFC 2308 §5
 * clamped the same way; `current()` then rejects with `ERR_DISCOVERY`.
 * So do SRV records whose only target is `.` (RFC 2782: "decidedly not
 * available at this domain").
 *
 * `onUpdate` listeners are called on every change of the backends, of the
 * status or of the stale flag; a refresh that confirms the same set only
 * moves its `updatedAt`.
 */
export class DnsBackendSource implements BackendSource {
  readonly #name: string;
  readonly #resolver: Resolver;
  readonly #ttlMin: number;
  readonly #ttlMax: number;
  readonly #staleMax: number;
  readonly #retryInterval: number;
  readonly #log: Logger;
  readonly #discovery: string;
  readonly #now: () => number;
  readonly #listeners = new Set<(set: BackendSet) => void>();
  /**
   * Warnings given once per cause: refreshing fails (until it works again), a
   * target without an address or a record without a port (until the target has
   * one, or leaves the answer: causes of targets that left are forgotten).
   */
  readonly #warnings: LogThrottle;
  #set: BackendSet | undefined;
  #ttl: number | undefined;
  #expiresAt = 0;
  #lastError: unknown;
  #failures = 0;
  #refreshes = 0;
  #refreshFailures = 0;
  #expiredLogged = false;
  /** Records of the current set skipped for having port 0. */
  #portless = 0;
  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;
  #abort: AbortController | undefined;
  /** A `refreshNow()` came while a refresh was in flight. */
  #again = false;

  constructor(options: DnsBackendSourceOptions) {
    const name = typeof options.srvName === 'string' ? canonicalName(options.srvName.trim()) : '';
    if (name === '') throw new InvalidArgumentError(`invalid dns discovery option "srvName": "${String(options.srvName)}", expected an SRV name like _service._tcp.domain`);
    this.#name = `${name}.`;
    this.#resolver = options.resolver;
    this.#ttlMin = checkMs('ttlMin', options.ttlMin ?? DNS_DISCOVERY_DEFAULTS.ttlMin, 1);
    this.#ttlMax = checkMs('ttlMax', options.ttlMax ?? DNS_DISCOVERY_DEFAULTS.ttlMax, 1);
    if (this.#ttlMin > this.#ttlMax) {
      throw new InvalidArgumentError(`invalid dns discovery options: "ttlMin" (${this.#ttlMin} ms) is greater than "ttlMax" (${this.#ttlMax} ms)`);
    }
    this.#staleMax = checkMs('staleMax', options.staleMax ?? DNS_DISCOVERY_DEFAULTS.staleMax, 0, Number.MAX_SAFE_INTEGER);
    this.#retryInterval = checkMs('retryInterval', options.retryInterval ?? Math.min(this.#ttlMin, DEFAULT_RETRY_CAP), 1);
    this.#discovery = options.discovery ?? 'dns';
    this.#log = (options.logger ?? silentLogger).child({ discovery: this.#discovery, name: this.#name });
    this.#now = options.now ?? Date.now;
    this.#warnings = new LogThrottle({ interval: Number.POSITIVE_INFINITY, now: this.#now, maxCauses: MAX_WARNED_TARGETS });
  }

  /** Begin the first resolution and resolve at once, without waiting for it. */
  start(): Promise<void> {
    if (this.#closed) return Promise.reject(this.#error('discovery is closed'));
    this.#kick();
    return Promise.resolve();
  }

  /**
   * The set to dial for a new connection, from memory. Before the first
   * answer (the first resolution starts here if `start()` was not called)
   * every caller waits for that one resolution. Rejects with a
   * `SrvlinkError` of code `ERR_DISCOVERY` when there is nothing to dial.
   */
  async current(): Promise<BackendSet> {
    while (!this.#closed && this.#set === undefined && this.#lastError === undefined) {
      this.#kick();
      const first = this.#refreshing;
      if (first === undefined) break;
      // The first resolution: every early caller waits for the same lookup.
      await first;
    }
    return this.#usable();
  }

  /** Stop refreshing: clears the timer and aborts a refresh in flight (its sockets closed). Safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#abort?.abort(new SrvlinkError('ERR_DISCOVERY', 'discovery closed'));
      await this.#refreshing;
      this.#listeners.clear();
    })();
    return this.#closing;
  }

  /** Call `listener` on every change of backends, status or stale flag (not on identical refreshes); returns the unsubscribe function. */
  onUpdate(listener: (set: BackendSet) => void): () => void {
    const entry = (set: BackendSet): void => listener(set);
    this.#listeners.add(entry);
    return () => void this.#listeners.delete(entry);
  }

  /**
   * Ask again now instead of at the next scheduled refresh: for a resolver
   * that knows its data changed (the etcd zone, told by its watch), so that a
   * change reaches the forwarders at once (push, docs/architecture.md §4.2). A refresh in
   * flight is followed by one more, so the newest data is read.
   */
  refreshNow(): void {
    if (this.#closed || !this.#started) return;
    if (this.#refreshing !== undefined) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    void this.#refresh();
  }

  /** TTL, expiry and failures of the current set (a snapshot). */
  state(): DnsBackendSourceState {
    return {
      ttl: this.#ttl,
      expiresAt: this.#set === undefined ? undefined : this.#expiresAt,
      lastError: this.#lastError === undefined ? undefined : errorMessage(this.#lastError),
      failures: this.#failures,
      refreshes: this.#refreshes,
      refreshFailures: this.#refreshFailures,
      warnings: this.#warnings.size,
    };
  }

  #kick(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    void this.#refresh();
  }

  /** One lookup; never rejects. Schedules the next one. */
  #refresh(): Promise<void> {
    this.#timer = undefined;
    const controller = new AbortController();
    this.#abort = controller;
    const run = (async () => {
      try {
        let lookup: SrvLookup;
        try {
          lookup = await lookupSrv(this.#resolver, this.#name, { signal: controller.signal });
        } catch (err) {
          if (!this.#closed) {
            this.#refreshes += 1;
            this.#onFailure(err);
          }
          return;
        }
        // A lookup aborted by close() may still return (failed address queries contribute nothing).
        if (this.#closed) return;
        this.#refreshes += 1;
        try {
          this.#onAnswer(lookup);
        } catch (err) {
          this.#onFailure(err);
        }
      } catch (err) {
        // A bug here must not become an unhandled rejection, nor stop the refresh loop.
        this.#log.error(`${this.#discovery} discovery refresh failed unexpectedly`, { error: errorMessage(err) });
        this.#schedule(this.#retryInterval);
      } finally {
        if (this.#abort === controller) this.#abort = undefined;
      }
    })();
    this.#refreshing = run;
    void run.finally(() => {
      if (this.#refreshing === run) this.#refreshing = undefined;
      if (this.#again && !this.#closed) {
        this.#again = false;
        clearTimeout(this.#timer);
        void this.#refresh();
      }
    });
    return run;
  }

  #onAnswer(lookup: SrvLookup): void {
    const backends: Backend[] = [];
    const missing: string[] = [];
    let portless = 0;
    for (const target of lookup.targets) {
      if (target.port === 0) {
        // A port of 0 is nothing to dial (RFC 2782 gives no meaning to it): skip the record,
        // never dial it nor count it towards ejection; warned once per target.
        portless++;
        if (this.#warnings.take(`no-port ${target.target}`) !== undefined) {
          this.#log.warn('srv record has port 0, left out', { target: target.target, priority: target.priority, weight: target.weight });
        }
        continue;
      }
      this.#warnings.clear(`no-port ${target.target}`);
      if (target.addresses.length === 0) {
        missing.push(target.target);
        if (this.#warnings.take(`no-address ${target.target}`) !== undefined) {
          this.#log.warn('srv target has no address, left out', { target: target.target, port: target.port });
        }
        continue;
      }
      this.#warnings.clear(`no-address ${target.target}`);
      backends.push({
        target: target.target,
        port: target.port,
        priority: target.priority,
        weight: target.weight,
        addresses: [...target.addresses],
      });
    }
    // Forget the warnings about targets that left the answer: a name that comes back is warned about again,
    // and churn of names cannot grow this memory.
    const present = new Set(lookup.targets.map((target) => target.target));
    this.#warnings.retain((cause) => cause === REFRESH_FAILING || present.has(cause.slice(cause.indexOf(' ') + 1)));
    if (lookup.status === 'found' && lookup.targets.length > portless && backends.length === 0) {
      // Address lookups that fail look the same as missing addresses (see
      // lookupSrv): treat it as a failed refresh and keep the last good set.
      throw new SrvlinkError('ERR_DISCOVERY', `no srv target has an address: ${missing.map((t) => `"${t}"`).join(', ')}`);
    }

    const now = this.#now();
    // RFC 2308 §5: negative answers carry their own TTL (lookupSrv takes it from the SOA); both kinds are clamped alike.
    const ttl = Math.min(this.#ttlMax, Math.max(this.#ttlMin, lookup.ttl * 1000));
    this.#ttl = ttl;
    this.#expiresAt = now + ttl;
    this.#expiredLogged = false;
    if (this.#failures > 0) {
      this.#log.info(this.#set?.stale ? `${this.#discovery} discovery recovered, backends fresh again` : `${this.#discovery} discovery recovered`, {
        failures: this.#failures,
      });
    }
    this.#failures = 0;
    this.#lastError = undefined;
    this.#warnings.clear(REFRESH_FAILING);
    this.#portless = portless;

    const previous = this.#set;
    const next: BackendSet = Object.freeze({
      name: this.#name,
      status: lookup.status,
      backends: Object.freeze(backends.sort(compareBackends).map((b) => Object.freeze({ ...b, addresses: Object.freeze(b.addresses) }))),
      updatedAt: now,
      stale: false,
    });
    if (previous !== undefined && sameContents(previous, next)) {
      // An identical refresh moves `updatedAt` without an event; one that ends staleness is an event.
      if (previous.stale) this.#publish(next);
      else this.#set = Object.freeze({ ...previous, updatedAt: now });
      this.#schedule(ttl * REFRESH_AHEAD);
      return;
    }
    // Counts, and a few of each kind by instance and address: a set of 10,000 instances is still one short line.
    const diff = diffBackendSets(previous?.backends ?? [], next.backends);
    this.#log.info('backend set changed', {
      status: next.status,
      ...(previous !== undefined && previous.status !== next.status ? { previousStatus: previous.status } : {}),
      backends: next.backends.length,
      added: diff.added,
      removed: diff.removed,
      changed: diff.changed,
      ...(diff.addedBackends.length > 0 ? { addedBackends: diff.addedBackends } : {}),
      ...(diff.removedBackends.length > 0 ? { removedBackends: diff.removedBackends } : {}),
      ...(diff.changedBackends.length > 0 ? { changedBackends: diff.changedBackends } : {}),
      ttl,
    });
    this.#publish(next);
    this.#schedule(ttl * REFRESH_AHEAD);
  }

  #onFailure(err: unknown): void {
    this.#refreshFailures += 1;
    this.#lastError = err;
    this.#failures += 1;
    const now = this.#now();
    const set = this.#set;
    const error = errorMessage(err);
    if (this.#warnings.take(REFRESH_FAILING) !== undefined) {
      this.#log.warn(set === undefined ? 'cannot resolve backends, retrying' : 'cannot refresh backends, keeping the last good set', {
        error,
        retryIn: this.#retryInterval,
      });
    } else {
      this.#log.debug('cannot refresh backends', { error, failures: this.#failures });
    }
    if (set !== undefined && !set.stale && now >= this.#expiresAt) {
      // RFC 8767 §4: past its TTL with no fresh answer, the data is stale; served so for up to staleMax.
      this.#log.warn('backend set is stale: refreshing fails', {
        error,
        status: set.status,
        backends: set.backends.length,
        staleMax: this.#staleMax,
      });
      this.#publish(Object.freeze({ ...set, stale: true }));
    }
    if (set !== undefined && !this.#expiredLogged && now > this.#expiresAt + this.#staleMax) {
      this.#expiredLogged = true;
      this.#log.error('last good backend set is older than --stale-max, not used any more', { error, staleMax: this.#staleMax });
    }
    let delay = this.#retryInterval;
    // Be there at expiry, so that the set turns stale (or is renewed) on time.
    if (set !== undefined && !this.#set?.stale) delay = Math.min(delay, Math.max(1, this.#expiresAt - now));
    this.#schedule(delay);
  }

  #schedule(delay: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    // Kept referenced: a running source is a long-lived part, and close() always clears it.
    this.#timer = setTimeout(() => void this.#refresh(), Math.min(MAX_TIMER_MS, Math.max(0, delay)));
  }

  #publish(set: BackendSet): void {
    this.#set = set;
    for (const listener of [...this.#listeners]) {
      try {
        listener(set);
      } catch (err) {
        this.#log.error('backend set listener failed', { error: errorMessage(err) });
      }
    }
  }

  /** The set to hand out now, or the reason there is none. */
  #usable(): BackendSet {
    if (this.#closed) throw this.#error('discovery is closed');
    const set = this.#set;
    if (set === undefined) {
      if (this.#lastError === undefined) throw this.#error('no answer yet');
      throw this.#error(`resolving fails: ${errorMessage(this.#lastError)}`, this.#lastError);
    }
    if (this.#now() > this.#expiresAt + this.#staleMax) {
      const why = this.#lastError === undefined ? 'the refresh in progress has not answered' : errorMessage(this.#lastError);
      throw this.#error(
        `the last good answer is older than --stale-max (${formatDuration(this.#staleMax)}) and refreshing fails: ${why}`,
        this.#lastError,
      );
    }
    if (set.status === 'nxdomain') throw this.#error('the name does not exist (NXDOMAIN)');
    if (set.status === 'nodata') throw this.#error('the name has no SRV records');
    if (set.backends.length === 0 && this.#portless > 0) throw this.#error(`every srv record has port 0 (${this.#portless} skipped)`);
    if (set.backends.length === 0) throw this.#error('the service is decidedly not available (SRV target ".", RFC 2782)');
    return set;
  }

  #error(why: string, cause?: unknown): SrvlinkError {
    return new SrvlinkError('ERR_DISCOVERY', `no backends for "${this.#name}": ${why}`, cause === undefined ? undefined : { cause });
  }
}

/** A duration option in ms: finite, within [min, max]. */
function checkMs(option: string, value: number, min: number, max = MAX_TIMER_MS): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    const range = min === 0 ? 'a number of milliseconds ≥ 0' : `a number of milliseconds ≥ ${min}`;
    throw new InvalidArgumentError(`invalid dns discovery option "${option}": ${String(value)}, expected ${range} and ≤ ${max}`);
  }
  return value;
}

/** A stable order for comparing and logging; RFC 2782 ordering is the forwarder's (orderBackends). */
function compareBackends(a: Backend, b: Backend): number {
  return a.priority - b.priority || (a.target < b.target ? -1 : a.target > b.target ? 1 : 0) || a.port - b.port || a.weight - b.weight;
}

function sameContents(a: BackendSet, b: BackendSet): boolean {
  if (a.status !== b.status || a.backends.length !== b.backends.length) return false;
  return a.backends.every((backend, i) => {
    const other = b.backends[i];
    return other !== undefined && describeBackend(backend) === describeBackend(other);
  });
}
