import { randomBytes } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { Rcode, createReply, decodeMessage, encodeMessage, type DnsMessage } from '../../src/dns/codec.js';
import { createStub } from '../../src/stub/create-stub.js';
import { STALE_TTL } from '../../src/stub/dns-cache.js';
import { startFakeDnsServer } from '../helpers/fake-dns-server.js';
import { RawTcpClient } from '../helpers/raw-dns.js';
import { waitFor } from '../helpers/wait-for.js';
import { aRecord, ask, manualClock, query, resolverFor, soaRecord, startStub, startUpstream, type Upstream } from '../helpers/stub-fixtures.js';

/** Upstreams that answer every A question with one address of their own, TTL 300. */
async function twoUpstreams(): Promise<{ cluster: Upstream; upstream: Upstream }> {
  const answerWith = (address: string) => (q: DnsMessage) => {
    const name = q.questions[0]?.name ?? '';
    return createReply(q, { flags: { aa: true, ra: false }, answers: q.questions[0]?.type === 'A' ? [aRecord(name, address)] : [] });
  };
  return { cluster: await startUpstream(answerWith('10.0.0.53')), upstream: await startUpstream(answerWith('192.0.2.53')) };
}

const ALIASES = new Map([
  ['zookeeper', { ipv4: '127.0.0.2' }],
  ['zookeeper.env1.skydns.local', { ipv4: '127.0.0.2' }],
  ['dual', { ipv4: '127.0.0.3', ipv6: '::1' }],
]);

describe('createStub', () => {
  describe('aliases', () => {
    it.each(['udp', 'tcp'] as const)('answers A with the listener address, AA, the name as asked (%s)', async (transport) => {
      const { cluster, upstream } = await twoUpstreams();
      const stub = await startStub({
        aliases: ALIASES,
        clusterDomain: 'skydns.local',
        clusterResolver: resolverFor(cluster.address),
        upstreamResolver: resolverFor(upstream.address),
      });
      // On the wire every name is absolute: `zookeeper.` decodes as `zookeeper`.
      for (const [asked, name] of [['ZooKeeper', 'ZooKeeper'], ['zookeeper.', 'zookeeper'], ['ZOOKEEPER.Env1.SkyDNS.local', 'ZOOKEEPER.Env1.SkyDNS.local']]) {
        const q = query(asked ?? '');
        const reply = await ask(stub.address(), q, transport);
        expect(reply).toMatchObject({ id: q.id, rcode: Rcode.NOERROR, flags: { aa: true, rd: true, ra: true }, questions: [{ name }] });
        expect(reply.answers).toEqual([{ name, type: 'A', class: 'IN', ttl: 30, flush: false, data: '127.0.0.2' }]);
      }
      // Aliases never leave the container, even those inside the cluster domain.
      expect(cluster.queries).toHaveLength(0);
      expect(upstream.queries).toHaveLength(0);
      expect(stub.stubStats.aliasAnswers).toBe(3);
    });

    it('answers AAAA with NODATA when the listener has no IPv6 address, and other types with NODATA', async () => {
      const { upstream } = await twoUpstreams();
      const stub = await startStub({ aliases: ALIASES, upstreamResolver: resolverFor(upstream.address) });
      for (const type of ['AAAA', 'MX', 'TXT', 'SRV'] as const) {
        const reply = await ask(stub.address(), query('zookeeper', type));
        expect(reply).toMatchObject({ rcode: Rcode.NOERROR, flags: { aa: true }, answers: [] });
      }
      const v6 = await ask(stub.address(), query('Dual', 'AAAA'));
      expect(v6.answers).toEqual([{ name: 'Dual', type: 'AAAA', class: 'IN', ttl: 30, flush: false, data: '::1' }]);
      const v4 = await ask(stub.address(), query('dual', 'A'));
      expect(v4.answers[0]?.data).toBe('127.0.0.3');
      expect(upstream.queries).toHaveLength(0);
    });

    it('passes a name below an alias on (zookeeper.example is not zookeeper)', async () => {
      const { upstream } = await twoUpstreams();
      const stub = await startStub({ aliases: ALIASES, upstreamResolver: resolverFor(upstream.address) });
      const reply = await ask(stub.address(), query('zookeeper.example'));
      expect(reply.answers[0]?.data).toBe('192.0.2.53');
      expect(upstream.count('zookeeper.example')).toBe(1);
    });
  });

  describe('routing', () => {
    it('sends cluster-domain names to the cluster DNS only, other names to the upstream only', async () => {
      const { cluster, upstream } = await twoUpstreams();
      const stub = await startStub({
        clusterDomain: 'skydns.local.',
        clusterResolver: resolverFor(cluster.address),
        upstreamResolver: resolverFor(upstream.address),
      });
      const cases: [string, string][] = [
        ['db.env1.skydns.local', '10.0.0.53'],
        ['SKYDNS.LOCAL', '10.0.0.53'],
        ['_zookeeper._tcp.env2.skydns.local', '10.0.0.53'],
        ['example.com', '192.0.2.53'],
        // Same suffix, another zone: a label boundary decides (RFC 1034 §3.1).
        ['notskydns.local', '192.0.2.53'],
        ['local', '192.0.2.53'],
      ];
      for (const [name, address] of cases) {
        const reply = await ask(stub.address(), query(name));
        expect(reply.answers.map((r) => r.data), name).toEqual([address]);
      }
      expect(cluster.queries.map((q) => q.questions[0]?.name)).toEqual(['db.env1.skydns.local', 'SKYDNS.LOCAL', '_zookeeper._tcp.env2.skydns.local']);
      expect(upstream.queries.map((q) => q.questions[0]?.name)).toEqual(['example.com', 'notskydns.local', 'local']);
    });

    it('relays the upstream rcode and AA, sets RA, and asks upstream with RD even when the client did not', async () => {
      const zone = await startUpstream((q) =>
        createReply(q, { rcode: Rcode.NXDOMAIN, flags: { aa: true }, authorities: [soaRecord('example.net', 300, 60)] }),
      );
      const stub = await startStub({ upstreamResolver: resolverFor(zone.address) });
      const q = query('nothing.example.net', 'A', { flags: { rd: false, aa: false, tc: false, ra: false, ad: false, cd: false } });
      const reply = await ask(stub.address(), q);
      expect(reply).toMatchObject({ id: q.id, rcode: Rcode.NXDOMAIN, flags: { aa: true, ra: true, rd: false } });
      // Relayed as the zone sent it; the client derives the negative TTL itself (RFC 2308 §5).
      expect(reply.authorities[0]).toMatchObject({ type: 'SOA', ttl: 300, data: { minimum: 60 } });
      expect(zone.queries[0]?.flags.rd).toBe(true);
    });

    it('REFUSES names outside the cluster domain when there is no upstream', async () => {
      const { cluster } = await twoUpstreams();
      const stub = await startStub({ clusterDomain: 'skydns.local', clusterResolver: resolverFor(cluster.address) });
      expect((await ask(stub.address(), query('example.com'))).rcode).toBe(Rcode.REFUSED);
      expect((await ask(stub.address(), query('db.skydns.local'))).answers[0]?.data).toBe('10.0.0.53');
      expect(stub.stubStats.refused).toBe(1);
    });

    it('sends cluster names upstream when there is no cluster resolver', async () => {
      const { upstream } = await twoUpstreams();
      const stub = await startStub({ clusterDomain: 'skydns.local', upstreamResolver: resolverFor(upstream.address) });
      expect((await ask(stub.address(), query('db.skydns.local'))).answers[0]?.data).toBe('192.0.2.53');
    });

    it('refuses a cluster resolver without a cluster domain', () => {
      expect(() => createStub({ listen: { host: '127.0.0.1', port: 0 }, clusterResolver: resolverFor({ host: '127.0.0.1', port: 53 }) })).toThrow(InvalidArgumentError);
    });
  });

  describe('query checks', () => {
    it.each<[string, DnsMessage, number]>([
      ['opcode STATUS → NOTIMP', query('example.com', 'A', { opcode: 2 }), Rcode.NOTIMP],
      ['opcode NOTIFY → NOTIMP', query('example.com', 'SOA', { opcode: 4 }), Rcode.NOTIMP],
      [
        'two questions → FORMERR',
        query('example.com', 'A', { questions: [{ name: 'a.example', type: 'A', class: 'IN' }, { name: 'b.example', type: 'A', class: 'IN' }] }),
        Rcode.FORMERR,
      ],
      ['no question → FORMERR', query('example.com', 'A', { questions: [] }), Rcode.FORMERR],
      ['class CH → REFUSED', query('version.bind', 'TXT', { questions: [{ name: 'version.bind', type: 'TXT', class: 'CH' }] }), Rcode.REFUSED],
      ['AXFR → REFUSED', query('skydns.local', 'AXFR'), Rcode.REFUSED],
    ])('%s, upstream never asked', async (_title, message, rcode) => {
      const { cluster, upstream } = await twoUpstreams();
      const stub = await startStub({
        clusterDomain: 'skydns.local',
        clusterResolver: resolverFor(cluster.address),
        upstreamResolver: resolverFor(upstream.address),
      });
      const reply = await ask(stub.address(), message);
      expect(reply).toMatchObject({ id: message.id, response: true, rcode });
      expect(cluster.queries).toHaveLength(0);
      expect(upstream.queries).toHaveLength(0);
    });
  });

  describe('cache', () => {
    it('answers a second identical query from the cache with the TTL decreased', async () => {
      const clock = manualClock();
      const { upstream } = await twoUpstreams();
      const stub = await startStub({ upstreamResolver: resolverFor(upstream.address), now: clock.now });
      const first = await ask(stub.address(), query('www.example.org'));
      expect(first.answers[0]).toMatchObject({ data: '192.0.2.53', ttl: 300 });
      clock.advance(10_000);
      const second = await ask(stub.address(), query('WWW.example.org'), 'tcp');
      expect(second.answers[0]).toMatchObject({ name: 'WWW.example.org', data: '192.0.2.53', ttl: 290 });
      // A cached answer is not authoritative.
      expect(second.flags).toMatchObject({ aa: false, ra: true });
      expect(upstream.count('www.example.org')).toBe(1);
      expect(stub.stubStats).toMatchObject({ cacheHits: 1, cacheMisses: 1 });
      // Another type is another question.
      await ask(stub.address(), query('www.example.org', 'AAAA'));
      expect(upstream.queries).toHaveLength(2);
    });

    it('keeps NXDOMAIN for min(SOA TTL, MINIMUM) (RFC 2308), then asks again', async () => {
      const clock = manualClock();
      const zone = await startUpstream((q) => createReply(q, { rcode: Rcode.NXDOMAIN, authorities: [soaRecord('example.net', 300, 5)] }));
      const stub = await startStub({ upstreamResolver: resolverFor(zone.address), now: clock.now });
      expect((await ask(stub.address(), query('gone.example.net'))).rcode).toBe(Rcode.NXDOMAIN);
      clock.advance(4_000);
      const cached = await ask(stub.address(), query('gone.example.net'));
      expect(cached.rcode).toBe(Rcode.NXDOMAIN);
      expect(cached.authorities[0]).toMatchObject({ type: 'SOA', ttl: 1 });
      expect(zone.queries).toHaveLength(1);
      clock.advance(1_000);
      expect((await ask(stub.address(), query('gone.example.net'))).rcode).toBe(Rcode.NXDOMAIN);
      expect(zone.queries).toHaveLength(2);
    });

    it('never caches SERVFAIL: each query goes upstream again', async () => {
      const broken = await startUpstream((q) => createReply(q, { rcode: Rcode.SERVFAIL }));
      const stub = await startStub({ upstreamResolver: resolverFor(broken.address) });
      for (let i = 1; i <= 3; i++) {
        expect((await ask(stub.address(), query('broken.example'))).rcode).toBe(Rcode.SERVFAIL);
        expect(broken.queries).toHaveLength(i);
      }
      expect(stub.stubStats.upstreamFailures).toBe(3);
    });

    it('sends one upstream query for identical questions asked at once', async () => {
      let release: () => void = () => undefined;
      const released = new Promise<void>((resolve) => (release = resolve));
      const slow = await startUpstream(async (q) => {
        await released;
        return createReply(q, { answers: [aRecord(q.questions[0]?.name ?? '', '192.0.2.7')] });
      });
      const stub = await startStub({ upstreamResolver: resolverFor(slow.address, 10_000) });
      const tcp = await RawTcpClient.open(stub.address());
      const ids = [101, 102, 103, 104, 105];
      for (const id of ids) tcp.send(encodeMessage(query('Same.Example', 'A', { id })));
      await waitFor(() => stub.stubStats.cacheMisses === ids.length, { what: 'five misses' });
      release();
      const replies = await Promise.all(ids.map(() => tcp.receive().then(decodeMessage)));
      tcp.close();
      expect(replies.map((r) => r.id).sort()).toEqual(ids);
      for (const reply of replies) expect(reply.answers[0]?.data).toBe('192.0.2.7');
      expect(slow.queries).toHaveLength(1);
      expect(stub.stubStats.coalesced).toBe(4);
    });
  });

  describe('when upstreams fail', () => {
    it(`serves a name answered before from the cache, stale with TTL ${STALE_TTL} (RFC 8767), and SERVFAIL for an unknown one`, async () => {
      const clock = manualClock();
      const upstream = await startUpstream((q) => createReply(q, { answers: [aRecord(q.questions[0]?.name ?? '', '192.0.2.8', 60)] }));
      const stub = await startStub({ upstreamResolver: resolverFor(upstream.address, 300), now: clock.now, staleMax: 3_600_000 });
      expect((await ask(stub.address(), query('known.example'))).answers[0]?.ttl).toBe(60);
      clock.advance(61_000);
      await upstream.server.close();

      const stale = await ask(stub.address(), query('Known.Example'));
      expect(stale).toMatchObject({ rcode: Rcode.NOERROR, questions: [{ name: 'Known.Example' }] });
      expect(stale.answers[0]).toMatchObject({ data: '192.0.2.8', ttl: STALE_TTL });

      const started = performance.now();
      expect((await ask(stub.address(), query('unknown.example'))).rcode).toBe(Rcode.SERVFAIL);
      // Well within the client's own timeout (dig: 5 s, glibc: 5 s).
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(stub.stubStats).toMatchObject({ staleServed: 1, upstreamFailures: 2 });
    });

    it('answers SERVFAIL within the client timeout when the upstream is silent', async () => {
      const silent = await startFakeDnsServer({ script: () => [] });
      onTestFinished(() => silent.close());
      const stub = await startStub({ upstreamResolver: resolverFor(silent.address, 300) });
      const started = performance.now();
      const reply = await ask(stub.address(), query('slow.example'));
      expect(reply.rcode).toBe(Rcode.SERVFAIL);
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(silent.queries.length).toBeGreaterThanOrEqual(1);
    });

    it('close() ends the upstream exchanges in flight at once', async () => {
      const silent = await startFakeDnsServer({ script: () => [] });
      onTestFinished(() => silent.close());
      const stub = createStub({ listen: { host: '127.0.0.1', port: 0 }, upstreamResolver: resolverFor(silent.address, 30_000) });
      await stub.start();
      const tcp = await RawTcpClient.open(stub.address());
      tcp.send(encodeMessage(query('pending.example')));
      await silent.waitForQueries(1);
      const started = performance.now();
      await stub.close();
      await stub.close();
      await tcp.closed();
      expect(performance.now() - started).toBeLessThan(5_000);
    });
  });

  describe('allow-from', () => {
    it('REFUSES a client outside the allowed networks, answers one inside', async () => {
      const { upstream } = await twoUpstreams();
      const outside = await startStub({ upstreamResolver: resolverFor(upstream.address), allowFrom: ['10.0.0.0/8', 'fd00::/8'] });
      expect((await ask(outside.address(), query('example.com'))).rcode).toBe(Rcode.REFUSED);
      expect((await ask(outside.address(), query('example.com'), 'tcp')).rcode).toBe(Rcode.REFUSED);
      expect(outside.stubStats.refused).toBe(2);
      expect(upstream.queries).toHaveLength(0);

      const inside = await startStub({ upstreamResolver: resolverFor(upstream.address), allowFrom: ['127.0.0.0/8'] });
      expect((await ask(inside.address(), query('example.com'))).answers[0]?.data).toBe('192.0.2.53');
    });

    it('rejects a bad network when built', () => {
      expect(() => createStub({ listen: { host: '127.0.0.1', port: 0 }, allowFrom: ['10.0.0.0/33'] })).toThrow(/invalid --allow-from "10\.0\.0\.0\/33"/);
    });
  });

  it(
    'keeps the cache within its bound under a flood of 20,000 distinct random names',
    async () => {
      const upstream = await startUpstream((q) => createReply(q, { answers: [aRecord(q.questions[0]?.name ?? '', '192.0.2.99')] }));
      const stub = await startStub({ upstreamResolver: resolverFor(upstream.address, 5_000), cacheSize: 500 });
      const tcp = await RawTcpClient.open(stub.address());
      const total = 20_000;
      const batch = 200;
      let largest = 0;
      for (let sent = 0; sent < total; sent += batch) {
        for (let i = 0; i < batch; i++) {
          tcp.send(encodeMessage(query(`${randomBytes(8).toString('hex')}.flood.example`, 'A', { id: i })));
        }
        for (let i = 0; i < batch; i++) expect(decodeMessage(await tcp.receive()).rcode).toBe(Rcode.NOERROR);
        largest = Math.max(largest, stub.cache.size);
      }
      tcp.close();
      expect(largest).toBeLessThanOrEqual(500);
      expect(stub.cache.size).toBe(500);
      expect(stub.stubStats.cacheMisses).toBe(total);
      expect(stub.cache.evictions).toBe(total - 500);
    },
    180_000,
  );
});

describe('createStub under many questions in flight', () => {
  it('holds dozens of upstream exchanges at once without a listener-leak warning', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning.name);
    process.on('warning', onWarning);
    onTestFinished(() => void process.off('warning', onWarning));
    // An upstream that answers only once every question has arrived.
    const pending: (() => void)[] = [];
    const upstream = await startUpstream(
      (message) =>
        new Promise<DnsMessage>((resolve) => {
          pending.push(() => resolve(createReply(message, { answers: [aRecord(message.questions[0]?.name ?? '', '192.0.2.1')] })));
          if (pending.length === 30) for (const release of pending) release();
        }),
    );
    const stub = await startStub({ upstreamResolver: resolverFor(upstream.address, 5000) });
    const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => ask(stub.address(), query(`n${i}.example`))));
    expect(replies.every((reply) => reply.rcode === Rcode.NOERROR)).toBe(true);
    // Warnings are emitted on the next tick.
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings).toEqual([]);
  });
});
