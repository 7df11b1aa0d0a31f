import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { rcodeName } from '../dns/codec.js';
import type { AdminSnapshot, AdminSource, UpstreamSnapshot } from './admin-source.js';

/** Options of `AdminMetrics`. */
export interface AdminMetricsOptions {
  /** Also export prom-client's process and Node.js metrics. Default true. */
  processMetrics?: boolean;
  /** Wall clock, ms since the epoch (for the upstreams' `lastAt`). Default `Date.now`. */
  now?: () => number;
}

/** A rendered scrape. */
export interface MetricsPage {
  contentType: string;
  body: string;
}

type Labels = Record<string, string>;
type Sample = readonly [Labels, number];

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

/** prom-client defaults that are gauges with a counter's `_total` suffix. */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** The states of a registration, each a series of `srvlink_registration_state`. */
const REGISTRATION_STATES = ['idle', 'unhealthy', 'waiting-for-etcd', 'registered', 'closed'] as const;

/**
 * srvlink's Prometheus metrics (docs/architecture.md §4.7), on a registry of its
 * own. Most values are read at scrape time from a snapshot of the counters
 * the parts keep anyway (each metric's `collect()` fills it from the
 * snapshot, so backends that left their set leave the output with it);
 * histograms and the DNS rcode counter are observed where the decision is
 * made, through the `observe*` methods the composition root wires to the
 * parts' hooks. Every label is bounded: mappings, upstreams and
 * registrations come from the configuration, backends from the current
 * sets, query types from a fixed list; never a client address.
 */
export class AdminMetrics {
  /** Every metric; rendered by `render`. */
  readonly registry = new Registry();
  readonly #now: () => number;
  readonly #dial: Histogram<'mapping'>;
  readonly #dnsQueries: Counter<'listener' | 'type' | 'rcode'>;
  readonly #upstreamDuration: Histogram<'upstream' | 'role'>;
  readonly #upstreamFailures: Counter<'upstream' | 'role' | 'reason'>;
  readonly #upstreams = new Map<string, UpstreamSnapshot>();
  /** Counters by their names: OpenMetrics rendering renames them (see `render`). */
  readonly #counterNames = new Map<{ name: string }, string>();
  #snapshot: AdminSnapshot | undefined;
  /** Scrapes one after the other: the registry's output type is switched per scrape. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: AdminMetricsOptions = {}) {
    this.#now = options.now ?? Date.now;
    const registers = [this.registry];
    if (options.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      // Gauges named like counters (`_total`): Prometheus's own lint (`promtool check metrics`) refuses them.
      for (const name of MISNAMED_DEFAULTS) this.registry.removeSingleMetric(name);
    }
    this.#dial = new Histogram({
      name: 'srvlink_dial_duration_seconds',
      help: 'Time to connect to a backend, successful dials, per mapping.',
      labelNames: ['mapping'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#dnsQueries = new Counter({
      name: 'srvlink_dns_queries_total',
      help: 'DNS replies sent, by listener (stub, dns), question type and rcode.',
      labelNames: ['listener', 'type', 'rcode'],
      registers,
    });
    this.#upstreamDuration = new Histogram({
      name: 'srvlink_dns_upstream_duration_seconds',
      help: 'Time of one exchange with one upstream DNS server, by server and by the role of the client asking it (cluster, upstream, discovery).',
      labelNames: ['upstream', 'role'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#upstreamFailures = new Counter({
      name: 'srvlink_dns_upstream_failures_total',
      help: 'Exchanges with an upstream DNS server that gave no usable answer, by reason (timeout, network, invalid, server-failure).',
      labelNames: ['upstream', 'role', 'reason'],
      registers,
    });
    this.#defineSnapshotMetrics();
    for (const metric of this.registry.getMetricsAsArray()) {
      if (metric instanceof Counter) this.#counterNames.set(metric as unknown as { name: string }, (metric as unknown as { name: string }).name);
    }
  }

  /** A successful dial of a backend of `mapping`, after `ms`. */
  observeDial(mapping: string, ms: number): void {
    this.#dial.observe({ mapping }, ms / 1000);
  }

  /** A DNS reply of `listener` to a question of `type` (undefined: unreadable), with `rcode`. */
  observeDnsReply(listener: string, type: string | undefined, rcode: number): void {
    const label = type === undefined ? 'none' : DNS_TYPES.has(type) ? type : 'other';
    const name = rcodeName(rcode);
    this.#dnsQueries.inc({ listener, type: label, rcode: RCODES.has(name) ? name : 'other' });
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
      this.#snapshot = await source.snapshot();
      const contentType = openMetrics ? Registry.OPENMETRICS_CONTENT_TYPE : Registry.PROMETHEUS_CONTENT_TYPE;
      this.registry.setContentType(contentType as typeof Registry.PROMETHEUS_CONTENT_TYPE);
      try {
        return { contentType, body: await this.registry.metrics() };
      } finally {
        // prom-client drops `_total` from counter names for OpenMetrics (the
        // family name) and keeps it so: give them back their names.
        for (const [metric, name] of this.#counterNames) metric.name = name;
        this.registry.setContentType(Registry.PROMETHEUS_CONTENT_TYPE);
        this.#snapshot = undefined;
      }
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #defineSnapshotMetrics(): void {
    const mappings = (read: (m: AdminSnapshot['mappings'][number]) => number) => (s: AdminSnapshot): Sample[] =>
      s.mappings.map((m) => [{ mapping: m.srvName }, read(m)] as const);
    const backends = (read: (b: AdminSnapshot['mappings'][number]['backends'][number]) => number) => (s: AdminSnapshot): Sample[] =>
      s.mappings.flatMap((m) => m.backends.map((b) => [{ mapping: m.srvName, backend: b.address }, read(b)] as const));
    const listeners = (read: (l: AdminSnapshot['dnsListeners'][number]) => number) => (s: AdminSnapshot): Sample[] =>
      s.dnsListeners.map((l) => [{ listener: l.name }, read(l)] as const);
    // Parts a command may not have carry a label, so that an absent part exports no series (prom-client gives label-less metrics a 0).
    const stub = (read: (stub: NonNullable<AdminSnapshot['stub']>) => number) => (s: AdminSnapshot): Sample[] => (s.stub ? [[{ listener: 'stub' }, read(s.stub)]] : []);
    const zone = (read: (zone: NonNullable<AdminSnapshot['zone']>) => number) => (s: AdminSnapshot): Sample[] => (s.zone ? [[{ prefix: s.zone.prefix }, read(s.zone)]] : []);
    const M = ['mapping'];
    const B = ['mapping', 'backend'];
    const L = ['listener'];
    const Z = ['prefix'];

    // Connections per mapping.
    this.#counter('srvlink_connections_accepted_total', 'Client connections accepted, per mapping.', M, mappings((m) => m.connections.accepted));
    this.#gauge('srvlink_connections_active', 'Client connections open now (dialing or forwarding), per mapping.', M, mappings((m) => m.connections.active));
    this.#counter('srvlink_connections_rejected_total', 'Client connections closed at once because --max-conns were open, per mapping.', M, mappings((m) => m.connections.rejected));
    this.#counter('srvlink_connections_forwarded_total', 'Client connections connected to a backend, per mapping.', M, mappings((m) => m.connections.forwarded));
    this.#counter('srvlink_connections_failed_total', 'Client connections closed because no backend could be used, per mapping.', M, mappings((m) => m.connections.failed));
    this.#counter('srvlink_no_backend_closes_total', 'Client connections closed without a backend, by reason: discovery (no usable set), empty (a set without addresses), unreachable (every dial failed), deadline (--dial-deadline ran out first).', ['mapping', 'reason'], (s) =>
      s.mappings.flatMap((m) => {
        const c = m.connections;
        return [
          [{ mapping: m.srvName, reason: 'discovery' }, c.discoveryErrors],
          [{ mapping: m.srvName, reason: 'empty' }, c.noBackend],
          [{ mapping: m.srvName, reason: 'unreachable' }, Math.max(0, c.failed - c.discoveryErrors - c.noBackend - c.deadlineCloses)],
          [{ mapping: m.srvName, reason: 'deadline' }, c.deadlineCloses],
        ] as const;
      }),
    );
    this.#counter('srvlink_connect_failures_total', 'Backend dials that failed, per mapping.', M, mappings((m) => m.connections.connectFailures));
    this.#counter('srvlink_failovers_total', 'Failed dials after which the next backend was tried, per mapping.', M, mappings((m) => m.connections.failovers));
    this.#counter('srvlink_ejections_total', 'Backends ejected after consecutive connect failures, per mapping.', M, mappings((m) => m.connections.ejections));
    this.#counter('srvlink_backend_probes_total', 'Half-open probes: the one trial connection let through to a backend whose ejection ran out, by outcome (success re-admits it, failure ejects it again for twice as long), per mapping.', ['mapping', 'outcome'], (s) =>
      s.mappings.flatMap((m) => [
        [{ mapping: m.srvName, outcome: 'success' }, m.connections.probeSuccesses],
        [{ mapping: m.srvName, outcome: 'failure' }, m.connections.probeFailures],
      ] as const),
    );
    this.#counter('srvlink_idle_timeouts_total', 'Forwarded connections closed by --idle-timeout, per mapping.', M, mappings((m) => m.connections.idleTimeouts));
    this.#counter('srvlink_received_bytes_total', 'Bytes from clients forwarded to backends, per mapping.', M, mappings((m) => m.connections.bytesIn));
    this.#counter('srvlink_sent_bytes_total', 'Bytes from backends forwarded to clients, per mapping.', M, mappings((m) => m.connections.bytesOut));

    // Per backend of the current sets.
    this.#counter('srvlink_backend_connections_total', 'Connections forwarded to a backend of a current set.', B, backends((b) => b.connections));
    this.#gauge('srvlink_backend_connections_active', 'Connections open to a backend now.', B, backends((b) => b.active));
    this.#counter('srvlink_backend_connect_failures_total', 'Dials of a backend that failed.', B, backends((b) => b.connectFailures));
    this.#counter('srvlink_backend_received_bytes_total', 'Bytes from clients forwarded to a backend.', B, backends((b) => b.bytesIn));
    this.#counter('srvlink_backend_sent_bytes_total', 'Bytes from a backend forwarded to clients.', B, backends((b) => b.bytesOut));
    this.#gauge('srvlink_backend_ejected', '1 while a backend is ejected (skipped unless every backend is), else 0.', B, backends((b) => (b.ejectedUntil === undefined ? 0 : 1)));
    this.#counter('srvlink_backend_ejections_total', 'Ejections of a backend in a row (reset by a successful dial).', B, backends((b) => b.ejections));
    this.#gauge('srvlink_backend_priority', 'RFC 2782 priority of a backend (lower is tried first).', B, backends((b) => b.priority));

    // Backend sets.
    this.#gauge('srvlink_backend_set_backends', 'Backends (addresses) in the current set of a mapping.', M, mappings((m) => m.backends.length));
    this.#gauge('srvlink_backend_set_age_seconds', 'Seconds since the set of a mapping was last confirmed by its source.', M, (s) =>
      s.mappings.flatMap((m) => (m.set.age === undefined ? [] : [[{ mapping: m.srvName }, m.set.age] as const])),
    );
    this.#gauge('srvlink_backend_set_usable', '1 when a new connection of a mapping finds a backend set to use, else 0.', M, mappings((m) => (m.set.usable ? 1 : 0)));
    this.#gauge('srvlink_backend_set_stale', '1 while a mapping uses its last good set because refreshing fails.', M, mappings((m) => (m.set.stale ? 1 : 0)));
    this.#counter('srvlink_backend_set_refreshes_total', 'Lookups of a mapping\'s backend set finished (answered or failed).', M, mappings((m) => m.set.refreshes));
    this.#counter('srvlink_backend_set_refresh_failures_total', 'Lookups of a mapping\'s backend set that failed.', M, mappings((m) => m.set.refreshFailures));
    this.#gauge('srvlink_listener_up', '1 while the listener of a mapping is bound.', M, mappings((m) => (m.bound ? 1 : 0)));

    // DNS servers (the stub, `srvlink dns`).
    this.#counter('srvlink_dns_malformed_packets_total', 'DNS packets that could not be decoded: answered FORMERR, or TCP connections closed for a bad frame.', L, listeners((l) => l.formerr + l.badFrames));
    this.#counter('srvlink_dns_dropped_packets_total', 'DNS packets dropped unanswered (no header, a response, over the in-flight limit).', L, listeners((l) => l.dropped));
    this.#counter('srvlink_dns_truncated_total', 'UDP replies sent truncated.', L, listeners((l) => l.truncated));

    // The stub's cache.
    this.#counter('srvlink_dns_cache_hits_total', 'Forwarded questions answered from a fresh cache entry.', L, stub((x) => x.cacheHits));
    this.#counter('srvlink_dns_cache_misses_total', 'Forwarded questions that had to go upstream.', L, stub((x) => x.cacheMisses));
    this.#counter('srvlink_dns_cache_stale_total', 'Questions answered with an expired entry because upstreams failed (RFC 8767).', L, stub((x) => x.staleServed));
    this.#gauge('srvlink_dns_cache_entries', 'Answers in the stub\'s cache.', L, stub((x) => x.cacheEntries));
    this.#counter('srvlink_dns_alias_answers_total', 'Questions answered from a mapping\'s alias.', L, stub((x) => x.aliasAnswers));
    this.#counter('srvlink_dns_coalesced_total', 'Cache misses that joined an identical query already upstream.', L, stub((x) => x.coalesced));
    this.#counter('srvlink_dns_shed_total', 'Questions not sent upstream because too many exchanges were in flight.', L, stub((x) => x.shed));

    // etcd.
    this.#gauge('srvlink_etcd_zone_revision', 'etcd revision the in-memory zone reflects.', Z, zone((z) => z.revision));
    this.#gauge('srvlink_etcd_connected', '1 while the etcd watch of the zone is connected.', Z, zone((z) => (z.connected ? 1 : 0)));
    this.#gauge('srvlink_etcd_zone_records', 'Records in the in-memory zone.', Z, zone((z) => z.records));
    this.#gauge('srvlink_etcd_malformed_values', 'etcd values of the zone skipped as malformed.', Z, zone((z) => z.malformed));

    // Registrations.
    this.#gauge('srvlink_registration_state', '1 for the current state of a registration (idle, unhealthy, waiting-for-etcd, registered, closed).', ['key', 'state'], (s) =>
      s.registrations.flatMap((r) => REGISTRATION_STATES.map((state) => [{ key: r.key, state }, r.state === state ? 1 : 0] as const)),
    );
    this.#counter('srvlink_registration_lease_renewals_total', 'Keepalives of a registration\'s lease acknowledged by etcd.', ['key'], (s) =>
      s.registrations.map((r) => [{ key: r.key }, r.renewals] as const),
    );

    // The supervised child.
    this.#gauge('srvlink_child_uptime_seconds', 'Seconds the supervised child has been running (label: its pid).', ['pid'], (s) =>
      s.child?.pid === undefined || s.child.state === 'exited' ? [] : [[{ pid: String(s.child.pid) }, s.child.uptime]],
    );
  }

  #counter(name: string, help: string, labelNames: string[], read: (snapshot: AdminSnapshot) => Iterable<Sample>): void {
    this.#fromSnapshot('counter', name, help, labelNames, read);
  }

  #gauge(name: string, help: string, labelNames: string[], read: (snapshot: AdminSnapshot) => Iterable<Sample>): void {
    this.#fromSnapshot('gauge', name, help, labelNames, read);
  }

  /** A metric whose `collect()` refills it from the scrape's snapshot: reset first, so series of what is gone disappear. */
  #fromSnapshot(kind: 'counter' | 'gauge', name: string, help: string, labelNames: string[], read: (snapshot: AdminSnapshot) => Iterable<Sample>): void {
    const snapshot = (): AdminSnapshot | undefined => this.#snapshot;
    const collect = function (this: Counter | Gauge): void {
      this.reset();
      const s = snapshot();
      if (!s) return;
      for (const [labels, value] of read(s)) {
        if (this instanceof Gauge) this.set(labels, value);
        else this.inc(labels, value);
      }
    };
    const config = { name, help, labelNames, registers: [this.registry], collect };
    if (kind === 'counter') new Counter(config);
    else new Gauge(config);
  }
}
