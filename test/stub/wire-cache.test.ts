/**
 * The stub's wire cache answers exactly what the full path answers: for a
 * table of raw queries (spellings, EDNS sizes, DO, RD/AD/CD, UDP and TCP)
 * to dnsmasq through the stub, the reply served from the wire cache is
 * byte for byte the reply the chain gives from the answer cache (same ID),
 * also after the clock moved (TTLs aged alike); it goes with its source
 * entry, with the alias table, at expiry, and never answers a client
 * allow-from refuses. Alias answers the same for every client are kept too,
 * until the alias table changes.
 */
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Rcode, createReply, decodeMessage } from '../../src/dns/codec.js';
import { dig } from '../helpers/dig.js';
import { startDnsmasq } from '../helpers/dnsmasq.js';
import { QUERY_SHAPES, rawExchange, rawQuery, type RawQuery } from '../helpers/raw-dns.js';
import { manualClock, resolverFor, soaRecord, startStub, startUpstream } from '../helpers/stub-fixtures.js';

/** The TTL of every record of a reply, in order. */
function ttls(wire: Buffer): number[] {
  const reply = decodeMessage(wire);
  return [...reply.answers, ...reply.authorities, ...reply.additionals].map((r) => r.ttl ?? -1);
}

const NAMES = ['www.wire.test', 'WWW.Wire.Test', 'wWw.WiRe.TeSt', 'alias.wire.test', 'ALIAS.wire.test', '_svc._tcp.wire.test', '_SVC._TCP.WIRE.TEST', 'txt.wire.test', 'wire.test', 'v6.wire.test', 'nosuch.wire.test'];
const TYPE_OF: Record<string, RawQuery['type']> = { 'alias.wire.test': 'A', '_svc._tcp.wire.test': 'SRV', 'txt.wire.test': 'TXT', 'wire.test': 'MX', 'v6.wire.test': 'AAAA' };

describe('the stub wire cache', () => {
  it('answers byte for byte what the full path answers, dnsmasq upstream, before and after the TTLs age', async () => {
    const dnsmasq = await startDnsmasq({
      localZones: ['wire.test'],
      hosts: [
        { name: 'www.wire.test', address: '192.0.2.10' },
        { name: 'v6.wire.test', address: '2001:db8::10' },
      ],
      srv: [{ name: '_svc._tcp.wire.test', target: 'www.wire.test', port: 8080, priority: 10, weight: 5 }],
      extraArgs: ['--txt-record=txt.wire.test,hello', '--mx-host=wire.test,mail.wire.test,10', '--cname=alias.wire.test,www.wire.test'],
    });
    const clock = manualClock();
    const stub = await startStub({ upstreamResolver: resolverFor(dnsmasq.address, 2000), now: clock.now });
    const wire = stub.wireCache;
    if (wire === undefined) throw new Error('wire cache off');
    const server = stub.address();
    let compared = 0;
    let cachedShapes = 0;
    for (const name of NAMES) {
      for (const shape of QUERY_SHAPES) {
        const q: RawQuery = { name, type: TYPE_OF[name.toLowerCase()] ?? 'A', ...shape };
        const transport = q.transport ?? 'udp';
        const bytes = rawQuery(0x1234, q);
        const what = JSON.stringify(q);
        // The first time may go upstream; the second is answered by the chain from the answer cache.
        await rawExchange(server, bytes, transport);
        const fromChain = await rawExchange(server, bytes, transport);
        const hits = wire.hits;
        const fromWire = await rawExchange(server, bytes, transport);
        const cacheable = decodeMessage(fromChain).answers.length > 0;
        expect(wire.hits - hits, `wire cache hit for ${what}`).toBe(cacheable ? 1 : 0);
        expect(fromWire.equals(fromChain), `${what}\nchain ${fromChain.toString('hex')}\nwire  ${fromWire.toString('hex')}`).toBe(true);
        compared++;
        if (cacheable) cachedShapes++;
      }
    }
    // Time passes: served from the wire cache, the TTLs are aged as the chain ages them.
    clock.advance(2500);
    for (const name of NAMES) {
      for (const shape of QUERY_SHAPES) {
        const q: RawQuery = { name, type: TYPE_OF[name.toLowerCase()] ?? 'A', ...shape };
        const transport = q.transport ?? 'udp';
        const bytes = rawQuery(0x4321, q);
        const fromWire = await rawExchange(server, bytes, transport);
        wire.clear();
        const fromChain = await rawExchange(server, bytes, transport);
        expect(fromWire.equals(fromChain), `${JSON.stringify(q)} after 2.5 s\nchain ${fromChain.toString('hex')}\nwire  ${fromWire.toString('hex')}`).toBe(true);
        if (decodeMessage(fromChain).answers.length > 0) expect(ttls(fromWire).every((ttl) => ttl === 28)).toBe(true);
        compared++;
      }
    }
    expect(cachedShapes).toBeGreaterThan(60);
    console.log(JSON.stringify({ compared, cachedShapes, wireHits: wire.hits, wireEntries: wire.size, wireBytes: wire.bytes }));
  });

  it('goes with its source entry, with the alias table and at expiry; never answers a client allow-from refuses', async () => {
    const upstream = await startUpstream((q) =>
      q.questions[0]?.name.toLowerCase().startsWith('nosuch')
        ? createReply(q, { rcode: Rcode.NXDOMAIN, flags: { ra: true }, authorities: [soaRecord('Wire.Test', 60, 60)] })
        : createReply(q, { flags: { ra: true }, answers: [{ name: q.questions[0]?.name ?? '', type: 'A', class: 'IN', ttl: 30, data: '192.0.2.20' }] }),
    );
    const clock = manualClock();
    const stub = await startStub({ upstreamResolver: resolverFor(upstream.address), now: clock.now, allowFrom: ['127.0.0.1/32'] });
    const wire = stub.wireCache as NonNullable<typeof stub.wireCache>;
    const server = stub.address();
    const fill = async (q: RawQuery): Promise<Buffer> => {
      const bytes = rawQuery(7, q);
      await rawExchange(server, bytes, 'udp');
      await rawExchange(server, bytes, 'udp');
      return bytes;
    };

    // A negative answer whose SOA owner shares a suffix with the question: each spelling its own entry,
    // each byte for byte the chain's (name compression compares bytes, so spellings differ in length).
    for (const name of ['nosuch.wire.test', 'NOSUCH.WIRE.TEST', 'nosuch.Wire.Test']) {
      const bytes = await fill({ name, type: 'A' });
      const hits = wire.hits;
      const fromWire = await rawExchange(server, bytes, 'udp');
      expect(wire.hits).toBe(hits + 1);
      wire.clear();
      expect(fromWire.equals(await rawExchange(server, bytes, 'udp')), name).toBe(true);
    }

    // The source entry goes (cleared, here): the wire entry goes with it.
    const www = await fill({ name: 'www.wire.test', type: 'A' });
    stub.cache.clear();
    let hits = wire.hits;
    const asked = upstream.count('www.wire.test');
    await rawExchange(server, www, 'udp');
    expect(wire.hits).toBe(hits);
    expect(upstream.count('www.wire.test')).toBe(asked + 1);

    // The name becomes an alias: answered as one at once.
    await fill({ name: 'www.wire.test', type: 'A' });
    stub.setAliases(new Map([['www.wire.test', { ipv4: '127.0.0.9' }]]));
    const alias = decodeMessage(await rawExchange(server, www, 'udp'));
    expect(alias.answers.map((r) => r.data)).toEqual(['127.0.0.9']);
    stub.setAliases(new Map());

    // Expiry: past the TTL the full path answers (and asks upstream again).
    await fill({ name: 'www.wire.test', type: 'A' });
    clock.advance(30_000);
    hits = wire.hits;
    await rawExchange(server, www, 'udp');
    expect(wire.hits).toBe(hits);

    // A client allow-from refuses is refused, entry or not.
    await fill({ name: 'www.wire.test', type: 'A' });
    const outsider = createSocket('udp4');
    outsider.bind(0, '127.0.0.2');
    await once(outsider, 'listening');
    hits = wire.hits;
    outsider.send(www, server.port, server.host);
    const [refused] = (await once(outsider, 'message')) as [Buffer];
    outsider.close();
    expect(decodeMessage(refused).rcode).toBe(Rcode.REFUSED);
    expect(wire.hits).toBe(hits);
  });

  it('keeps alias answers that are the same for every client until the alias table changes, and counts their hits as alias answers', async () => {
    const stub = await startStub({ aliases: new Map([['zk.wire.test', { ipv4: '127.0.0.9', ipv6: '::1' }], ['any.wire.test', { ipv4: '0.0.0.0' }]]) });
    const wire = stub.wireCache as NonNullable<typeof stub.wireCache>;
    const server = stub.address();
    for (const type of ['A', 'AAAA'] as const) {
      const bytes = rawQuery(9, { name: 'zk.wire.test', type });
      const fromChain = await rawExchange(server, bytes, 'udp');
      const hits = wire.hits;
      const answered = stub.stubStats.aliasAnswers;
      const fromWire = await rawExchange(server, bytes, 'udp');
      expect(wire.hits, type).toBe(hits + 1);
      expect(fromWire.equals(fromChain), type).toBe(true);
      // Counted as the chain would have: an alias answer, not a cache hit.
      expect(stub.stubStats.aliasAnswers).toBe(answered + 1);
    }
    expect(stub.stubStats.cacheHits).toBe(0);
    // dig, a client we did not write, reads the same answer however often it asks.
    for (let i = 0; i < 3; i++) expect((await dig(server, 'zk.wire.test', 'A')).answer.map((r) => [r.data, r.ttl])).toEqual([['127.0.0.9', 30]]);

    // A wildcard listener's alias gives each client the address it reached: never kept.
    const anyQuery = rawQuery(10, { name: 'any.wire.test', type: 'A' });
    await rawExchange(server, anyQuery, 'udp');
    let hits = wire.hits;
    await rawExchange(server, anyQuery, 'udp');
    expect(wire.hits).toBe(hits);

    // A new table: the kept answer goes at once.
    stub.setAliases(new Map([['zk.wire.test', { ipv4: '127.0.0.10' }]]));
    hits = wire.hits;
    expect((await dig(server, 'zk.wire.test', 'A')).answer.map((r) => r.data)).toEqual(['127.0.0.10']);
    expect(wire.hits).toBe(hits);
  });
});
