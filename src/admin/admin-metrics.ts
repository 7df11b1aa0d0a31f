import { rcodeName } from '../dns/codec.js';
import type { AdminSnapshot, AdminSource, UpstreamSnapshot } from './admin-source.js';
import type { MetricsPage, MetricsRegistry } from './metrics-registry.js';
import { ObservedCounter } from './observed-counter.js';
import { ObservedHistogram } from './observed-histogram.js';

export type { MetricsPage } from './metrics-registry.js';

/** Options of `AdminMetrics`. */
export interface AdminMetricsOptions {
  /** Also export prom-client's process and Node.js metrics. Default true. */
  processMetrics?: boolean;
  /** Wall clock, ms since the epoch (for the upstreams' `lastAt`). Default `Date.now`. */
  now?: () => number;
}

/** Dial and upstream latencies, seconds: loopback dials take well under 1 ms, a dial timeout seconds. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * Query types with a label of their own; any other type counts as `other`,
 * so a client sending every type number cannot grow the series without bound.
 */
const DNS_TYPES: ReadonlySet<string> = new Set(['A', 'AAAA', 'SRV', 'CNAME', 'TXT', 'MX', 'NS', 'SOA', 'PTR', 'ANY', 'HTTPS', 'SVCB', 'CAA', 'DS', 'DNSKEY', 'NAPTR']);

/**
 * Rcodes with a label of their own; any other (an upstream may send any of
 * the 4096 extended rcodes of RFC 6891) counts as `other`.
 */
const RCODES: ReadonlySet<string> = new Set(['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'BADVERS']);

/** Upstreams remembered for `/status` and their series: past it, the one heard from longest ago is dropped (reloads that change upstreams, over and over). */
const MAX_UPSTREAMS = 256;

/** Reasons of `srvlink_dns_upstream_failures_total` (the exchange outcomes other than `answer`). */
const FAILURE_REASONS = ['timeout', 'network', 'invalid', 'server-failure'];

/**
 * srvlink's Prometheus metrics (docs/architecture.md §4.7). Most values are
 * read at scrape time from a snapshot of the counters the parts keep anyway
 * (backends that left their set leave the output with it); histograms and
 * the DNS counters are observed where the decision is made, through the
 * `observe*` methods the composition root wires to the parts' hooks, into
 * plain recorders. prom-client, which renders the page, is loaded at the
 * first scrape (`MetricsRegistry`): a process nobody scrapes never loads it,
 * and its process metrics count from that first scrape. Every label is
 * bounded: mappings, upstreams and registrations come from the
 * configuration, backends from the current sets, query types from a fixed
 * list; never a client address.
 */
export class AdminMetrics {
  readonly #now: () => number;
  readonly #processMetrics: boolean;
  readonly #dial = new ObservedHistogram(['mapping'], LATENCY_BUCKETS);
  readonly #dnsQueries = new ObservedCounter(['listener', 'type', 'rcode']);
  readonly #upstreamDuration = new ObservedHistogram(['upstream', 'role'], LATENCY_BUCKETS);
  readonly #upstreamFailures = new ObservedCounter(['upstream', 'role', 'reason']);
  readonly #upstreams = new Map<string, UpstreamSnapshot>();
  /** The registry, made at the first scrape. */
  #registry: Promise<MetricsRegistry> | undefined;
  #snapshot: AdminSnapshot | undefined;
  /** Scrapes one after the other: the registry's output type is switched per scrape. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: AdminMetricsOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#processMetrics = options.processMetrics ?? true;
  }

  /** A successful dial of a backend of `mapping`, after `ms`. */
  observeDial(mapping: string, ms: number): void {
    this.#dial.observe({ mapping }, ms / 1000);
  }

  /** A DNS reply of `listener` to a question of `type` (undefined: unreadable), with `rcode`. */
  observeDnsReply(listener: string, type: string | undefined, rcode: number, count = 1): void {
    const label = type === undefined ? 'none' : DNS_TYPES.has(type) ? type : 'other';
    const name = rcodeName(rcode);
    this.#dnsQueries.inc({ listener, type: label, rcode: RCODES.has(name) ? name : 'other' }, count);
  }

  /** One exchange of the client in `role` (cluster, upstream, discovery) with `upstream`; `outcome` other than `answer` is a failure. */
  observeExchange(role: string, upstream: string, outcome: string, ms: number): void {
    this.#upstreamDuration.observe({ upstream, role }, ms / 1000);
    const key = `${role} ${upstream}`;
    const entry = this.#upstreams.get(key) ?? { address: upstream, role, state: 'unknown', exchanges: 0, failures: 0 };
    // Most recently heard from last: the first is the one to drop.
    this.#upstreams.delete(key);
    this.#upstreams.set(key, entry);
    if (this.#upstreams.size > MAX_UPSTREAMS) this.#forgetUpstream(this.#upstreams.keys().next().value as string);
    entry.exchanges++;
    entry.lastAt = new Date(this.#now()).toISOString();
    entry.lastOutcome = outcome;
    if (outcome === 'answer') {
      entry.state = 'up';
    } else {
      entry.state = 'failing';
      entry.failures++;
      this.#upstreamFailures.inc({ upstream, role, reason: outcome });
    }
  }

  /** Drop an upstream's entry and its series. */
  #forgetUpstream(key: string): void {
    const entry = this.#upstreams.get(key);
    if (!entry) return;
    this.#upstreams.delete(key);
    this.#upstreamDuration.remove({ upstream: entry.address, role: entry.role });
    for (const reason of FAILURE_REASONS) this.#upstreamFailures.remove({ upstream: entry.address, role: entry.role, reason });
  }

  /** What the observed exchanges say of each upstream (for `/status`). */
  upstreams(): UpstreamSnapshot[] {
    return [...this.#upstreams.values()].map((entry) => ({ ...entry }));
  }

  /**
   * One scrape: a fresh snapshot from `source`, then every metric. OpenMetrics
   * when `accept` asks for it (Prometheus does), else the text format 0.0.4.
   */
  render(source: AdminSource, accept = ''): Promise<MetricsPage> {
    const openMetrics = /application\/openmetrics-text/i.test(accept);
    const run = this.#queue.then(async () => {
      const registry = await (this.#registry ??= this.#makeRegistry());
      this.#snapshot = await source.snapshot();
      try {
        return await registry.render(openMetrics);
      } finally {
        this.#snapshot = undefined;
      }
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** prom-client's registry over the recorders, the metrics in the order the page has always shown them. */
  async #makeRegistry(): Promise<MetricsRegistry> {
    const { MetricsRegistry } = await import('./metrics-registry.js');
    return new MetricsRegistry({
      processMetrics: this.#processMetrics,
      snapshot: () => this.#snapshot,
      observed: [
        { kind: 'histogram', name: 'srvlink_dial_duration_seconds', help: 'Time to connect to a backend, successful dials, per mapping.', histogram: this.#dial },
        {
          kind: 'counter',
          name: 'srvlink_dns_queries_total',
          help: 'DNS replies sent, by listener (stub, dns), question type and rcode.',
          labelNames: ['listener', 'type', 'rcode'],
          counter: this.#dnsQueries,
        },
        {
          kind: 'histogram',
          name: 'srvlink_dns_upstream_duration_seconds',
          help: 'Time of one exchange with one upstream DNS server, by server and by the role of the client asking it (cluster, upstream, discovery).',
          histogram: this.#upstreamDuration,
        },
        {
          kind: 'counter',
          name: 'srvlink_dns_upstream_failures_total',
          help: 'Exchanges with an upstream DNS server that gave no usable answer, by reason (timeout, network, invalid, server-failure).',
          labelNames: ['upstream', 'role', 'reason'],
          counter: this.#upstreamFailures,
        },
      ],
    });
  }
}
