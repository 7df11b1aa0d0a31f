import { describe, expect, it } from 'vitest';
import { createReply } from '../../src/dns/codec.js';
import { STALE_TTL } from '../../src/stub/dns-cache.js';
import { dig } from '../helpers/dig.js';
import { startDnsmasq } from '../helpers/dnsmasq.js';
import { aRecord, manualClock, resolverFor, startStub, startUpstream } from '../helpers/stub-fixtures.js';

/**
 * The stub between two programs we did not write: dnsmasq serving the
 * cluster domain, dig asking as an application's resolver would, over UDP
 * and TCP.
 */
describe('stub with dnsmasq as the cluster DNS, asked by dig', () => {
  async function setUp(): Promise<{
    stub: Awaited<ReturnType<typeof startStub>>;
    dnsmasq: Awaited<ReturnType<typeof startDnsmasq>>;
    clock: ReturnType<typeof manualClock>;
    upstream: Awaited<ReturnType<typeof startUpstream>>;
  }> {
    const dnsmasq = await startDnsmasq({
      localZones: ['skydns.local'],
      ttl: 30,
      hosts: [{ name: 'db.env1.skydns.local', address: '10.1.2.3' }],
      srv: [{ name: '_postgres._tcp.env1.skydns.local', target: 'db.env1.skydns.local', port: 31432, priority: 10, weight: 50 }],
    });
    const upstream = await startUpstream((q) => createReply(q, { answers: q.questions[0]?.type === 'A' ? [aRecord(q.questions[0].name, '192.0.2.80', 120)] : [] }));
    const clock = manualClock();
    const stub = await startStub({
      aliases: new Map([
        ['postgres', { ipv4: '127.0.0.2' }],
        ['postgres.env1.skydns.local', { ipv4: '127.0.0.2' }],
      ]),
      clusterDomain: 'skydns.local',
      clusterResolver: resolverFor(dnsmasq.address, 1_000),
      upstreamResolver: resolverFor(upstream.address, 1_000),
      now: clock.now,
      staleMax: 3_600_000,
    });
    return { stub, dnsmasq, clock, upstream };
  }

  it.each([[[]], [['+tcp']]])('answers cluster names from dnsmasq, then from the cache (dig %j)', async (extra) => {
    const { stub, clock } = await setUp();
    const first = await dig(stub.address(), 'db.env1.skydns.local', 'A', extra);
    expect(first.status).toBe('NOERROR');
    expect(first.flags).toEqual(expect.arrayContaining(['qr', 'rd', 'ra']));
    expect(first.answer).toEqual([{ name: 'db.env1.skydns.local.', ttl: 30, type: 'A', data: '10.1.2.3' }]);

    clock.advance(12_000);
    const second = await dig(stub.address(), 'DB.env1.skydns.local', 'A', extra);
    expect(second.answer).toEqual([{ name: 'DB.env1.skydns.local.', ttl: 18, type: 'A', data: '10.1.2.3' }]);
    expect(second.flags).not.toContain('aa');
    expect(stub.stubStats).toMatchObject({ cacheHits: 1, cacheMisses: 1 });

    const srv = await dig(stub.address(), '_postgres._tcp.env1.skydns.local', 'SRV', extra);
    expect(srv.answer[0]).toMatchObject({ type: 'SRV', data: '10 50 31432 db.env1.skydns.local.' });

    // dnsmasq sends NXDOMAIN without an SOA: relayed, not cached (RFC 2308 §5).
    const missing = await dig(stub.address(), 'nothing.env1.skydns.local', 'A', extra);
    expect(missing.status).toBe('NXDOMAIN');
    await dig(stub.address(), 'nothing.env1.skydns.local', 'A', extra);
    expect(stub.stubStats.cacheMisses).toBe(4);
  });

  it.each([[[]], [['+tcp']]])('answers aliases itself and other names from the upstream (dig %j)', async (extra) => {
    const { stub, upstream } = await setUp();
    const alias = await dig(stub.address(), 'Postgres', 'A', extra);
    expect(alias.status).toBe('NOERROR');
    expect(alias.flags).toEqual(expect.arrayContaining(['aa', 'ra']));
    expect(alias.answer).toEqual([{ name: 'Postgres.', ttl: 30, type: 'A', data: '127.0.0.2' }]);
    const nodata = await dig(stub.address(), 'postgres.env1.skydns.local', 'AAAA', extra);
    expect(nodata.status).toBe('NOERROR');
    expect(nodata.answer).toEqual([]);

    const other = await dig(stub.address(), 'www.example.org', 'A', extra);
    expect(other.answer).toEqual([{ name: 'www.example.org.', ttl: 120, type: 'A', data: '192.0.2.80' }]);
    expect(upstream.queries.map((q) => q.questions[0]?.name)).toEqual(['www.example.org']);
  });

  it('keeps answering a known name when dnsmasq is gone (stale), SERVFAIL for an unknown one', async () => {
    const { stub, dnsmasq, clock } = await setUp();
    expect((await dig(stub.address(), 'db.env1.skydns.local', 'A')).answer[0]?.data).toBe('10.1.2.3');
    clock.advance(31_000);
    await dnsmasq.stop();

    for (const extra of [[], ['+tcp']]) {
      const stale = await dig(stub.address(), 'db.env1.skydns.local', 'A', extra);
      expect(stale.status).toBe('NOERROR');
      expect(stale.answer).toEqual([{ name: 'db.env1.skydns.local.', ttl: STALE_TTL, type: 'A', data: '10.1.2.3' }]);
    }
    const started = performance.now();
    const unknown = await dig(stub.address(), 'other.env1.skydns.local', 'A', ['+tries=1']);
    expect(unknown.status).toBe('SERVFAIL');
    // dig's own timeout is 5 s: the stub answered before it.
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(stub.stubStats.staleServed).toBe(2);
    expect(stub.stats.servfail).toBe(1);
  });
});
