/**
 * Every map and set that grows with input, under churn: names, keys, leases,
 * backends and label values that come and go by the thousand leave at most a
 * cap (or what is current) behind. One block per site.
 */
import { describe, expect, it } from 'vitest';
import { AdminMetrics } from '../src/admin/admin-metrics.js';
import { LogThrottle } from '../src/core/log-throttle.js';
import { Rcode, createMessage, createReply, type DnsMessage, type DnsRecord, type RecordType } from '../src/dns/codec.js';
import { DnsBackendSource } from '../src/discovery/dns-backend-source.js';
import type { Resolver } from '../src/discovery/lookup-srv.js';
import { LeaseTracker } from '../src/skydns/lease-tracker.js';
import { MemoryZoneStore } from '../src/skydns/memory-zone-store.js';
import { DnsCache } from '../src/stub/dns-cache.js';
import { sample } from './admin/admin-fixtures.js';
import { startForwarder } from './helpers/start-forwarder.js';
import { TestSource, backend } from './helpers/test-source.js';
import { expectReset, unusedPort } from './helpers/tcp-backends.js';
import { waitFor } from './helpers/wait-for.js';

const CHURN = 10_000;
const SRV = '_svc._tcp.env1.example.';

describe('bounded state under churn', () => {
  it('DnsBackendSource: warnings about 10,000 departed address-less targets are forgotten; one huge answer stays within the cap', async () => {
    // The cluster DNS answers a new batch of 100 targets without addresses each time (plus one good target).
    let round = 0;
    let batch = 100;
    const resolver: Resolver = {
      query: (name: string, type: RecordType): Promise<DnsMessage> => {
        const q = createMessage({ questions: [{ name, type, class: 'IN' }] });
        if (type !== 'SRV') return Promise.resolve(createReply(q, { rcode: Rcode.NXDOMAIN }));
        const answers: DnsRecord[] = [{ name: SRV, type: 'SRV', class: 'IN', ttl: 60, data: { priority: 10, weight: 1, port: 80, target: 'good.env1.example.' } }];
        for (let i = 0; i < batch; i++) {
          answers.push({ name: SRV, type: 'SRV', class: 'IN', ttl: 60, data: { priority: 10, weight: 1, port: 80, target: `gone-${round}-${i}.env1.example.` } });
        }
        return Promise.resolve(createReply(q, { answers, additionals: [{ name: 'good.env1.example.', type: 'A', class: 'IN', ttl: 60, data: '192.0.2.1' }] }));
      },
    };
    const source = new DnsBackendSource({ srvName: SRV, resolver, ttlMin: 60_000, ttlMax: 60_000 });
    try {
      let updates = 0;
      source.onUpdate(() => updates++);
      await source.start();
      await source.current();
      for (round = 1; round < CHURN / batch; round++) {
        const seen = updates;
        source.refreshNow();
        await waitFor(() => source.state().refreshes === round + 1, { what: `refresh ${round}` });
        expect(updates).toBe(seen);
        // Only this round's 100 targets are remembered.
        expect(source.state().warnings).toBeLessThanOrEqual(batch);
      }
      // One answer with more address-less targets than the cap: memory stays at the cap.
      batch = 5000;
      source.refreshNow();
      await waitFor(() => source.state().refreshes === round + 1, { what: 'the huge refresh', timeout: 30_000 });
      expect(source.state().warnings).toBe(1024);
    } finally {
      await source.close();
    }
  });

  it('LeaseTracker: 10,000 leases attached and detached leave nothing, nor do leases whose key went while they were looked up', async () => {
    const gone = new Set<string>();
    const tracker = new LeaseTracker({ query: (lease) => Promise.resolve(gone.has(lease) ? -1 : 60), now: Date.now, onRefresh: () => undefined, minRefreshMs: 1 });
    try {
      for (let i = 0; i < CHURN; i++) {
        const lease = `lease-${i}`;
        if (i % 2 === 0) gone.add(lease);
        await tracker.ensure([lease]);
        tracker.attach(lease, `/skydns/x/${i}`, '{}');
        tracker.detach(`/skydns/x/${i}`);
        expect(tracker.size).toBe(0);
      }
      // Looked up for keys deleted meanwhile (no key ever attached), as the zone store does before applying a batch: pruned after it.
      const orphans = Array.from({ length: CHURN }, (_, i) => `orphan-${i}`);
      orphans.forEach((lease, i) => i % 2 === 0 && gone.add(lease));
      await tracker.ensure(orphans);
      expect(tracker.size).toBe(CHURN);
      tracker.prune();
      expect(tracker.size).toBe(0);
      // Expired or revoked leases no key is attached to go by themselves too, without a prune.
      await tracker.ensure(Array.from({ length: CHURN }, (_, i) => (gone.add(`expired-${i}`), `expired-${i}`)));
      await waitFor(() => tracker.size === 0, { what: 'expired orphan leases to be forgotten' });
    } finally {
      tracker.close();
    }
  });

  it('Forwarder: health and stats of 10,000 departed backends are forgotten; what is kept follows the current set', async () => {
    const port = await unusedPort();
    const source = new TestSource([]);
    const { forwarder, address } = await startForwarder({ source, ejectAfter: 1, connectTimeout: 1000 }, 'error');
    const perSet = 100;
    for (let round = 0; round < CHURN / perSet; round++) {
      // 100 new backends, each refusing: one client dials them all, each gets a failure on record and is ejected.
      source.set(Array.from({ length: perSet }, (_, i) => backend(`127.1.${round}.${i + 1}`, port)));
      await expectReset(address);
      await waitFor(() => forwarder.activeConnections === 0, { what: `round ${round} to finish` });
      expect(forwarder.health().length).toBeLessThanOrEqual(perSet);
      expect(forwarder.stats.backends.size).toBeLessThanOrEqual(perSet);
    }
    expect(forwarder.stats.connectFailures).toBe(CHURN);
    expect(forwarder.stats.ejections).toBe(CHURN);
    source.set([]);
    expect(forwarder.health()).toEqual([]);
    expect(forwarder.stats.backends.size).toBe(0);
  });

  it('LogThrottle: 10,000 distinct causes (error texts, names) leave at most maxCauses', () => {
    const throttle = new LogThrottle({ interval: Number.POSITIVE_INFINITY, now: () => 0 });
    for (let i = 0; i < CHURN; i++) expect(throttle.take(`cannot resolve "name-${i}"`)).toBe(0);
    expect(throttle.size).toBe(1000);
  });

  it('DnsCache: 10,000 distinct names keep at most maxEntries answers', () => {
    const cache = new DnsCache({ maxEntries: 500, now: () => 0 });
    for (let i = 0; i < CHURN; i++) {
      const q = createMessage({ id: i, flags: { rd: true }, questions: [{ name: `n${i}.example.`, type: 'A', class: 'IN' }] });
      cache.set(q, createReply(q, { flags: { ra: true }, answers: [{ name: `n${i}.example.`, type: 'A', class: 'IN', ttl: 300, data: '192.0.2.1' }] }));
      expect(cache.size).toBeLessThanOrEqual(500);
    }
    expect(cache.evictions).toBe(CHURN - 500);
  });

  it('MemoryZoneStore: 10,000 malformed etcd keys put and deleted leave no malformed entry behind', () => {
    const store = new MemoryZoneStore();
    for (let i = 0; i < CHURN; i++) {
      const key = `/skydns/example/env1/_tcp/_svc/bad${i}`;
      expect(store.put(key, '{"host": 42')).toBeDefined();
      expect(store.malformed).toBe(1);
      store.delete(key);
    }
    expect(store.malformed).toBe(0);
    expect(store.size).toBe(0);
  });

  it('AdminMetrics: rcodes an upstream makes up, and upstreams that reloads keep changing, stay within bounded label sets', async () => {
    const metrics = new AdminMetrics({ processMetrics: false });
    // Extended rcodes are 12 bits (RFC 6891): 4096 values an upstream may send.
    for (let rcode = 0; rcode < 4096; rcode++) metrics.observeDnsReply('stub', 'A', rcode);
    for (let i = 0; i < CHURN; i++) metrics.observeExchange('upstream', `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:53`, i % 2 === 0 ? 'answer' : 'timeout', 1);
    expect(metrics.upstreams()).toHaveLength(256);
    const page = (await metrics.render({ snapshot: () => Promise.resolve({ command: 'run', pid: 1, uptime: 1, mappings: [], dnsListeners: [], registrations: [] }) })).body;
    const series = (name: string): string[] => page.split('\n').filter((line) => line.startsWith(`${name}{`));
    expect(series('srvlink_dns_queries_total').map((line) => /rcode="([^"]+)"/.exec(line)?.[1]).sort()).toEqual(
      ['BADVERS', 'FORMERR', 'NOERROR', 'NOTIMP', 'NXDOMAIN', 'REFUSED', 'SERVFAIL', 'other'],
    );
    expect(sample(page, 'srvlink_dns_queries_total', { rcode: 'other' })).toBe(4096 - 7);
    expect(series('srvlink_dns_upstream_duration_seconds_count')).toHaveLength(256);
    expect(series('srvlink_dns_upstream_failures_total').length).toBeLessThanOrEqual(256);
  });
});

