import { Counter, Gauge, Registry, collectDefaultMetrics, type Histogram } from 'prom-client';
import type { AdminSnapshot } from './admin-source.js';
import type { Labels, ObservedCounter } from './observed-counter.js';
import type { ObservedHistogram } from './observed-histogram.js';

type Sample = readonly [Labels, number];

/** A metric srvlink observes itself (see `AdminMetrics`), rendered from its recorder. */
export type ObservedMetric =
  | { kind: 'counter'; name: string; help: string; labelNames: string[]; counter: ObservedCounter }
  | { kind: 'histogram'; name: string; help: string; histogram: ObservedHistogram };

/** Options of `MetricsRegistry`. */
export interface MetricsRegistryOptions {
  /** Also export prom-client's process and Node.js metrics (counted from the moment the registry is made). */
  processMetrics: boolean;
  /** The observed metrics, in page order. */
  observed: readonly ObservedMetric[];
  /** The snapshot of the scrape under way, read by the metrics that reflect the parts' own counters; undefined between scrapes. */
  snapshot: () => AdminSnapshot | undefined;
}

/** A rendered scrape. */
export interface MetricsPage {
  contentType: string;
  body: string;
}

/** prom-client defaults that are gauges with a counter's `_total` suffix. */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** The states of a registration, each a series of `srvlink_registration_state`. */
const REGISTRATION_STATES = ['idle', 'unhealthy', 'waiting-for-etcd', 'registered', 'closed'] as const;

/**
 * srvlink's metrics on a prom-client registry of their own
 * (docs/architecture.md §4.7). Made at the first scrape: prom-client and the
 * process metrics are loaded only for a process that is scraped. Every
 * metric reads its values at scrape time, from the observed recorders or
 * from the scrape's snapshot (reset first, so that series of what is gone
 * disappear).
 */
export class MetricsRegistry {
  readonly #registry = new Registry();
  readonly #snapshot: () => AdminSnapshot | undefined;
  /** Counters by their names: OpenMetrics rendering renames them (see `render`). */
  readonly #counterNames = new Map<{ name: string }, string>();

  constructor(options: MetricsRegistryOptions) {
    this.#snapshot = options.snapshot;
    if (options.processMetrics) {
      collectDefaultMetrics({ register: this.#registry });
      // Gauges named like counters (`_total`): Prometheus's own lint (`promtool check metrics`) refuses them.
      for (const name of MISNAMED_DEFAULTS) this.#registry.removeSingleMetric(name);
    }
    for (const metric of options.observed) {
      if (metric.kind === 'counter') this.#metric('counter', metric.name, metric.help, metric.labelNames, () => metric.counter.samples());
      else this.#registry.registerMetric(histogramMetric(metric.name, metric.help, metric.histogram));
    }
    this.#defineSnapshotMetrics();
    for (const metric of this.#registry.getMetricsAsArray()) {
      if (metric instanceof Counter) this.#counterNames.set(metric as unknown as { name: string }, (metric as unknown as { name: string }).name);
    }
  }

  /** The page: OpenMetrics with `openMetrics`, else the text format 0.0.4. One at a time: the registry's output type is switched per page. */
  async render(openMetrics: boolean): Promise<MetricsPage> {
    const contentType = openMetrics ? Registry.OPENMETRICS_CONTENT_TYPE : Registry.PROMETHEUS_CONTENT_TYPE;
    this.#registry.setContentType(contentType as typeof Registry.PROMETHEUS_CONTENT_TYPE);
    try {
      return { contentType, body: await this.#registry.metrics() };
    } finally {
      // prom-client drops `_total` from counter names for OpenMetrics (the
      // family name) and keeps it so: give them back their names.
      for (const [metric, name] of this.#counterNames) metric.name = name;
      this.#registry.setContentType(Registry.PROMETHEUS_CONTENT_TYPE);
    }
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

    // The native data plane (label plane="native": a process forwarding in JavaScript exports no series).
    const plane = (read: (p: NonNullable<AdminSnapshot['nativePlane']>) => number) => (s: AdminSnapshot): Sample[] => (s.nativePlane ? [[{ plane: 'native' }, read(s.nativePlane)]] : []);
    const P = ['plane'];
    this.#gauge('srvlink_data_plane_pairs', 'Connection pairs the native data plane moves bytes for now.', P, plane((p) => p.pairs));
    this.#gauge('srvlink_data_plane_pipes_open', 'Pipes the native data plane holds open (moving bytes or pooled).', P, plane((p) => p.pipesOpen));
    this.#gauge('srvlink_data_plane_pipes_max', 'Pipes the native data plane opens at most (from the open-file limit and fs.pipe-user-pages-soft).', P, plane((p) => p.maxPipes));
    this.#gauge('srvlink_data_plane_pipe_bytes', 'Bytes of pipe buffer the native data plane holds open.', P, plane((p) => p.pipeBytes));
    this.#counter('srvlink_data_plane_copied_bytes_total', 'Bytes the native data plane copied through user space because every pipe was in use (it splices otherwise): a steady rise means more pairs move bytes at once than pipes allow.', P, plane((p) => p.copiedBytes));

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

  /** A metric filled from the scrape's snapshot. */
  #fromSnapshot(kind: 'counter' | 'gauge', name: string, help: string, labelNames: string[], read: (snapshot: AdminSnapshot) => Iterable<Sample>): void {
    this.#metric(kind, name, help, labelNames, () => {
      const snapshot = this.#snapshot();
      return snapshot ? read(snapshot) : [];
    });
  }

  /** A metric whose `collect()` refills it from `read` at each scrape: reset first, so series of what is gone disappear. */
  #metric(kind: 'counter' | 'gauge', name: string, help: string, labelNames: string[], read: () => Iterable<Sample>): void {
    const collect = function (this: Counter | Gauge): void {
      this.reset();
      for (const [labels, value] of read()) {
        if (this instanceof Gauge) this.set(labels, value);
        else this.inc(labels, value);
      }
    };
    const config = { name, help, labelNames, registers: [this.#registry], collect };
    if (kind === 'counter') new Counter(config);
    else new Gauge(config);
  }
}

/** One line of a metric as prom-client's registry renders it: `labels` first, then the series' `sharedLabels`. */
interface RenderedValue {
  labels: Record<string, string | number>;
  sharedLabels: Labels;
  value: number;
  metricName: string;
}

/**
 * An `ObservedHistogram` as a metric of prom-client's registry, which reads
 * a metric's name, help, type and values (`getForPromString`, the shape of
 * prom-client's own histograms: cumulative buckets with `le` first, `+Inf`,
 * `_sum`, `_count`), so the page is the one a prom-client histogram fed the
 * same observations renders.
 */
function histogramMetric(name: string, help: string, histogram: ObservedHistogram): Histogram {
  const values = (): RenderedValue[] =>
    [...histogram.series()].flatMap((series) => {
      let cumulative = 0;
      const buckets = histogram.bounds.map((bound, i): RenderedValue => {
        cumulative += series.buckets[i] ?? 0;
        return { labels: { le: bound }, sharedLabels: series.labels, value: cumulative, metricName: `${name}_bucket` };
      });
      return [
        ...buckets,
        { labels: { le: '+Inf' }, sharedLabels: series.labels, value: series.count, metricName: `${name}_bucket` },
        { labels: {}, sharedLabels: series.labels, value: series.sum, metricName: `${name}_sum` },
        { labels: {}, sharedLabels: series.labels, value: series.count, metricName: `${name}_count` },
      ];
    });
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    getForPromString: () => Promise.resolve({ name, help, type: 'histogram', aggregator: 'sum', values: values() }),
    get: () => Promise.resolve({ name, help, type: 'histogram', aggregator: 'sum', values: values().map(({ labels, sharedLabels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } })) }),
    reset: () => undefined,
  };
  return metric as unknown as Histogram;
}
