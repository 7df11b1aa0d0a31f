import { execFile } from 'node:child_process';
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AdminMetrics } from '../../src/admin/admin-metrics.js';
import type { AdminSnapshot } from '../../src/admin/admin-source.js';
import { sample } from './admin-fixtures.js';
import { backendSnapshot, fullSnapshot, mappingSnapshot } from './snapshot-fixtures.js';

const ZK = '_zookeeper._tcp.env1.skydns.local.';

/** A source that hands out whatever snapshot the test holds now. */
function holder(initial: AdminSnapshot): { source: { snapshot: () => Promise<AdminSnapshot> }; set(next: AdminSnapshot): void } {
  let current = initial;
  return { source: { snapshot: () => Promise.resolve(current) }, set: (next) => (current = next) };
}

function promtool(page: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = execFile('promtool', ['check', 'metrics'], (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }));
    child.stdin?.end(page);
  });
}

describe('AdminMetrics', () => {
  it('reads counters at scrape time and drops a backend label once the backend left its set', async () => {
    const metrics = new AdminMetrics({ processMetrics: false });
    const snap = holder(
      fullSnapshot([mappingSnapshot(ZK, [backendSnapshot('10.0.0.1:2181', { connections: 5 }), backendSnapshot('10.0.0.2:2181', { connections: 2, ejectedUntil: new Date(1e12).toISOString() })])]),
    );
    let page = (await metrics.render(snap.source)).body;
    expect(sample(page, 'srvlink_backend_connections_total', { mapping: ZK, backend: '10.0.0.1:2181' })).toBe(5);
    expect(sample(page, 'srvlink_backend_ejected', { mapping: ZK, backend: '10.0.0.2:2181' })).toBe(1);
    snap.set(fullSnapshot([mappingSnapshot(ZK, [backendSnapshot('10.0.0.1:2181', { connections: 9 })])]));
    page = (await metrics.render(snap.source)).body;
    expect(sample(page, 'srvlink_backend_connections_total', { mapping: ZK, backend: '10.0.0.1:2181' })).toBe(9);
    expect(page).not.toContain('10.0.0.2:2181');
  });

  it('exports an absent part as no series at all (no etcd zone, no child: no zeros that look like "disconnected")', async () => {
    const metrics = new AdminMetrics({ processMetrics: false });
    const page = (await metrics.render({ snapshot: () => Promise.resolve({ ...fullSnapshot([]), zone: undefined, child: undefined, stub: undefined }) })).body;
    for (const name of ['srvlink_etcd_connected', 'srvlink_child_uptime_seconds', 'srvlink_dns_cache_hits_total']) expect(sample(page, name)).toBeUndefined();
    const full = (await metrics.render({ snapshot: () => Promise.resolve(fullSnapshot([])) })).body;
    expect(sample(full, 'srvlink_etcd_connected', { prefix: '/skydns' })).toBe(1);
    expect(sample(full, 'srvlink_child_uptime_seconds', { pid: '43' })).toBe(10);
    expect(sample(full, 'srvlink_registration_state', { key: '/skydns/local/skydns/env1/_tcp/_web/w1', state: 'registered' })).toBe(1);
    expect(sample(full, 'srvlink_registration_state', { key: '/skydns/local/skydns/env1/_tcp/_web/w1', state: 'unhealthy' })).toBe(0);
  });

  it('keeps query types bounded: an unusual type counts as "other"', async () => {
    const metrics = new AdminMetrics({ processMetrics: false });
    metrics.observeDnsReply('stub', 'SRV', 3);
    metrics.observeDnsReply('stub', 'TYPE65280', 0);
    metrics.observeDnsReply('stub', 'ZONEMD', 0);
    metrics.observeDnsReply('stub', undefined, 1);
    const page = (await metrics.render({ snapshot: () => Promise.resolve(fullSnapshot([])) })).body;
    expect(sample(page, 'srvlink_dns_queries_total', { listener: 'stub', type: 'SRV', rcode: 'NXDOMAIN' })).toBe(1);
    expect(sample(page, 'srvlink_dns_queries_total', { listener: 'stub', type: 'other', rcode: 'NOERROR' })).toBe(2);
    expect(sample(page, 'srvlink_dns_queries_total', { listener: 'stub', type: 'none', rcode: 'FORMERR' })).toBe(1);
    expect(page).not.toContain('TYPE65280');
  });

  it('serves OpenMetrics when asked, and the text format with its _total names afterwards', async () => {
    const metrics = new AdminMetrics({ processMetrics: false });
    const snap = holder(fullSnapshot([mappingSnapshot(ZK, [], { connections: { ...mappingSnapshot(ZK, []).connections, accepted: 7 } })]));
    const open = await metrics.render(snap.source, 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5');
    expect(open.contentType).toMatch(/^application\/openmetrics-text/);
    expect(open.body).toMatch(/# TYPE srvlink_connections_accepted counter\n/);
    expect(open.body.endsWith('# EOF\n')).toBe(true);
    const text = await metrics.render(snap.source, 'text/plain');
    expect(text.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(text.body).toMatch(/# TYPE srvlink_connections_accepted_total counter\n/);
    expect(sample(text.body, 'srvlink_connections_accepted_total', { mapping: ZK })).toBe(7);
  });

  it('passes promtool check metrics, process metrics included', async () => {
    const metrics = new AdminMetrics();
    metrics.observeDial(ZK, 1.5);
    metrics.observeExchange('cluster', '10.0.0.2:53', 'timeout', 2000);
    const page = (await metrics.render({ snapshot: () => Promise.resolve(fullSnapshot([mappingSnapshot(ZK, [backendSnapshot('10.0.0.1:2181')])])) })).body;
    expect(sample(page, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(sample(page, 'srvlink_dns_upstream_failures_total', { upstream: '10.0.0.2:53', role: 'cluster', reason: 'timeout' })).toBe(1);
    expect(await promtool(page)).toEqual({ code: 0, out: '' });
    expect(metrics.upstreams()).toEqual([expect.objectContaining({ address: '10.0.0.2:53', role: 'cluster', state: 'failing', failures: 1, lastOutcome: 'timeout' })]);
  });
});

describe('AdminMetrics, rendered from its own recorders', () => {
  const OBSERVED = ['srvlink_dial_duration_seconds', 'srvlink_dns_queries_total', 'srvlink_dns_upstream_duration_seconds', 'srvlink_dns_upstream_failures_total'];
  const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

  /** The families `names` of a page, as text (HELP, TYPE and samples), in page order. */
  function families(page: string, names: readonly string[]): string {
    return page
      .split(/\n(?=# HELP )/)
      .filter((block) => names.some((name) => block.startsWith(`# HELP ${name} `) || block.startsWith(`# HELP ${name.replace(/_total$/, '')} `)))
      .map((block) => block.replace(/\n# EOF\n?$/, '').trimEnd())
      .join('\n');
  }

  it.each([
    ['the text format', ''],
    ['OpenMetrics', 'application/openmetrics-text;version=1.0.0'],
  ])('renders %s as prom-client histograms and counters fed the same observations do', async (_format, accept) => {
    // The reference: prom-client's own metrics, defined as srvlink defined them when it fed them directly.
    const reference = new Registry();
    const registers = [reference];
    const dial = new Histogram({ name: OBSERVED[0] as string, help: 'Time to connect to a backend, successful dials, per mapping.', labelNames: ['mapping'], buckets: BUCKETS, registers });
    const queries = new Counter({ name: OBSERVED[1] as string, help: 'DNS replies sent, by listener (stub, dns), question type and rcode.', labelNames: ['listener', 'type', 'rcode'], registers });
    const upstream = new Histogram({
      name: OBSERVED[2] as string,
      help: 'Time of one exchange with one upstream DNS server, by server and by the role of the client asking it (cluster, upstream, discovery).',
      labelNames: ['upstream', 'role'],
      buckets: BUCKETS,
      registers,
    });
    const failures = new Counter({
      name: OBSERVED[3] as string,
      help: 'Exchanges with an upstream DNS server that gave no usable answer, by reason (timeout, network, invalid, server-failure).',
      labelNames: ['upstream', 'role', 'reason'],
      registers,
    });
    const metrics = new AdminMetrics({ processMetrics: false });
    // Values on bucket bounds, between them, above every bound and at zero; sums that do not add up exactly in binary.
    const dials: [string, number][] = [[ZK, 0.4], [ZK, 1], [ZK, 0.1], ['_pg._tcp.env1.skydns.local.', 7000], [ZK, 0], [ZK, 2.5], [ZK, 0.3], ['_pg._tcp.env1.skydns.local.', 12.5]];
    for (const [mapping, ms] of dials) {
      metrics.observeDial(mapping, ms);
      dial.observe({ mapping }, ms / 1000);
    }
    const replies: [string, string, string][] = [['stub', 'A', 'NOERROR'], ['stub', 'AAAA', 'NOERROR'], ['stub', 'A', 'NOERROR'], ['dns', 'SRV', 'NXDOMAIN']];
    for (const [listener, type, rcode] of replies) {
      metrics.observeDnsReply(listener, type, rcode === 'NOERROR' ? 0 : 3);
      queries.inc({ listener, type, rcode });
    }
    const exchanges: [string, string, string, number][] = [['cluster', '10.0.0.2:53', 'answer', 0.7], ['cluster', '10.0.0.2:53', 'timeout', 2000], ['upstream', '[fd00::1]:53', 'answer', 3.3], ['cluster', '10.0.0.2:53', 'timeout', 2000.1]];
    for (const [role, server, outcome, ms] of exchanges) {
      metrics.observeExchange(role, server, outcome, ms);
      upstream.observe({ upstream: server, role }, ms / 1000);
      if (outcome !== 'answer') failures.inc({ upstream: server, role, reason: outcome });
    }
    reference.setContentType((accept === '' ? Registry.PROMETHEUS_CONTENT_TYPE : Registry.OPENMETRICS_CONTENT_TYPE) as typeof Registry.PROMETHEUS_CONTENT_TYPE);
    const expected = await reference.metrics();
    const page = await metrics.render({ snapshot: () => Promise.resolve(fullSnapshot([])) }, accept);
    expect(page.contentType).toBe(reference.contentType);
    expect(families(page.body, OBSERVED)).toBe(families(expected, OBSERVED));
    expect(families(page.body, OBSERVED).split('\n').filter((line) => !line.startsWith('#'))).toHaveLength(2 * 16 + 3 + 2 * 16 + 1);
  });
});
