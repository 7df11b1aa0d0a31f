/**
 * `srvlink dns`'s wire cache answers exactly what the zone answers without
 * it: for a table of raw queries (spellings, types, NXDOMAIN and NODATA,
 * EDNS sizes, DO, RD/AD/CD, UDP and TCP, a reply cut to 512 bytes) a server
 * with the cache and one without, on the same store and clock, give the
 * same bytes (same ID), also as the clock passes a second (the SOA serial)
 * and a lease's TTL steps down; a change of the store, a reload of a
 * records file and an etcd put are seen at once; dig and dnsmasq, as a
 * client and a forwarder we did not write, get the same answers from both.
 */
import { once } from 'node:events';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Etcd3 } from 'etcd3';
import type { HostPort } from '../../src/core/host-port.js';
import { Rcode, createReply, decodeMessage } from '../../src/dns/codec.js';
import { createQueryCheckHandler } from '../../src/dns/query-check.js';
import { DnsServer } from '../../src/dns/server.js';
import type { WireReplyCache } from '../../src/dns/wire-reply-cache.js';
import { EtcdZoneStore } from '../../src/skydns/etcd-zone-store.js';
import { MemoryZoneStore } from '../../src/skydns/memory-zone-store.js';
import { RecordsFileStore } from '../../src/skydns/records-file-store.js';
import { createZoneHandler } from '../../src/skydns/zone-handler.js';
import { createZoneReplyCache } from '../../src/skydns/zone-reply-cache.js';
import type { ZoneStore } from '../../src/skydns/zone-store.js';
import { dig, digBatch, type DigRecord, type DigResult } from '../helpers/dig.js';
import { startDnsmasq } from '../helpers/dnsmasq.js';
import { startEtcd } from '../helpers/etcd.js';
import { QUERY_SHAPES, rawExchange, rawQuery, type RawQuery } from '../helpers/raw-dns.js';
import { manualClock, type ManualClock } from '../helpers/stub-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

const ENV = '/skydns/local/skydns/env1';
const ZK = `${ENV}/_tcp/_zookeeper`;
/** A whole second and a bit: the first steps of the table stay within it. */
const START = 1_700_000_000_100;

const RECORDS: Record<string, string> = {
  [`${ZK}/zk1`]: '{"host":"10.0.0.11","port":31001}',
  [`${ZK}/zk2`]: '{"host":"10.0.0.12","port":31002,"weight":50}',
  [`${ZK}/zk3`]: '{"host":"10.0.0.13","port":31003,"priority":20,"ttl":60}',
  [`${ENV}/v6`]: '{"host":"2001:db8::10"}',
  [`${ENV}/alias`]: '{"host":"zk1._zookeeper._tcp.env1.skydns.local"}',
  [`${ENV}/outside`]: '{"host":"www.example.com"}',
  [`${ENV}/txt`]: '{"text":"hello world"}',
  [`${ENV}/mx`]: '{"host":"10.0.0.25","mail":true,"priority":5}',
  [`${ENV}/_tcp/_named/n1`]: '{"host":"alias.env1.skydns.local","port":8080}',
  '/skydns/local/skydns/dns/ns/ns1': '{"host":"10.0.0.53"}',
  ...Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`${ENV}/_tcp/_big/b${i}`, `{"host":"10.0.1.${i}","port":${9000 + i}}`])),
};

/** One name per kind of answer the zone gives, in several spellings. */
const QUESTIONS: Pick<RawQuery, 'name' | 'type' | 'class'>[] = [
  { name: '_zookeeper._tcp.env1.skydns.local', type: 'SRV' },
  { name: '_ZooKeeper._TCP.Env1.SkyDNS.Local', type: 'SRV' },
  { name: '_ZOOKEEPER._TCP.ENV1.SKYDNS.LOCAL', type: 'SRV' },
  { name: 'zk1._zookeeper._tcp.env1.skydns.local', type: 'A' },
  { name: 'Zk1._ZooKeeper._tcp.env1.skydns.local', type: 'A' },
  { name: 'zk1._zookeeper._tcp.env1.skydns.local', type: 'TXT' },
  { name: 'v6.env1.skydns.local', type: 'AAAA' },
  { name: 'V6.ENV1.skydns.local', type: 'A' },
  { name: 'alias.env1.skydns.local', type: 'A' },
  { name: 'alias.env1.skydns.local', type: 'CNAME' },
  { name: 'outside.env1.skydns.local', type: 'A' },
  { name: 'txt.env1.skydns.local', type: 'TXT' },
  { name: 'mx.env1.skydns.local', type: 'MX' },
  { name: '_named._tcp.env1.skydns.local', type: 'SRV' },
  { name: '*._tcp.env1.skydns.local', type: 'SRV' },
  { name: '_big._tcp.env1.skydns.local', type: 'SRV' },
  { name: 'skydns.local', type: 'SOA' },
  { name: 'SkyDNS.Local', type: 'NS' },
  { name: 'nosuch.env1.skydns.local', type: 'A' },
  { name: 'NoSuch.Env1.SkyDNS.local', type: 'SRV' },
  { name: 'env1.skydns.local', type: 'PTR' },
  // Not the zone's to answer: never kept.
  { name: 'example.com', type: 'A' },
  { name: 'skydns.local', type: 'AXFR' },
  { name: 'skydns.local', type: 'SOA', class: 3 },
];


interface Served {
  address: HostPort;
  cache: WireReplyCache | undefined;
}

/** A `DnsServer` as `srvlink dns` builds it, on 127.0.0.1:0, with or without the wire cache; closed when the test ends. */
async function serveZone(store: ZoneStore, clock: ManualClock | undefined, cached: boolean): Promise<Served> {
  const now = clock?.now ?? Date.now;
  const zone = createZoneHandler({ zones: ['skydns.local.'], store, now });
  const cache = cached ? createZoneReplyCache(zone, { now }) : undefined;
  const server = new DnsServer({
    listen: { host: '127.0.0.1', port: 0 },
    handlers: [createQueryCheckHandler(), zone],
    fallback: (request) => Promise.resolve(createReply(request.message, { rcode: Rcode.REFUSED })),
    ...(cache === undefined ? {} : { replyCache: cache }),
  });
  await server.start();
  onTestFinished(() => server.close());
  return { address: server.address(), cache };
}

/** Whether a reply is the zone's own (kept by the cache): an authoritative answer. */
function authoritative(wire: Buffer): boolean {
  return (wire.readUInt16BE(2) & 0x0400) !== 0;
}

function hex(wire: Buffer): string {
  return wire.toString('hex');
}

describe("srvlink dns's wire cache", () => {
  it('answers byte for byte what the zone answers without it, as the clock passes a second and a lease steps down', async () => {
    const clock = manualClock(START);
    const store = MemoryZoneStore.fromValues(RECORDS);
    // A leased record: its TTL is what is left of the lease (10.5 s: 10), below its own ttl.
    store.put(`${ENV}/leased`, '{"host":"10.0.0.99","ttl":300}', START + 10_500);
    const plain = await serveZone(store, clock, false);
    const cached = await serveZone(store, clock, true);
    const cache = cached.cache as WireReplyCache;
    const questions = [...QUESTIONS, { name: 'leased.env1.skydns.local', type: 'A' as const }];
    let id = 1;
    const compare = async (when: string, expectHit: boolean | undefined): Promise<number> => {
      let kept = 0;
      for (const question of questions) {
        for (const shape of QUERY_SHAPES) {
          const q: RawQuery = { ...question, ...shape };
          const transport = q.transport ?? 'udp';
          const bytes = rawQuery(id++ & 0xffff, q);
          const what = `${when} ${JSON.stringify(q)}`;
          const hits = cache.hits;
          const fromCache = await rawExchange(cached.address, bytes, transport);
          const hit = cache.hits - hits === 1;
          const fromZone = await rawExchange(plain.address, bytes, transport);
          expect(hex(fromCache), what).toBe(hex(fromZone));
          if (!authoritative(fromZone)) expect(hit, `${what} is not the zone's answer: never kept`).toBe(false);
          else if (expectHit !== undefined) expect(hit, `${what} hit`).toBe(expectHit);
          // Once more: now it is in the cache (or may not be kept).
          const again = await rawExchange(cached.address, bytes, transport);
          expect(hex(again), `${what} again`).toBe(hex(fromZone));
          if (authoritative(fromZone)) kept++;
        }
      }
      return kept;
    };
    const kept = await compare('cold', false);
    expect(kept).toBeGreaterThan(150);
    // A truncated reply (30 SRV records in 512 bytes) is among them, and so are NXDOMAIN and NODATA.
    const big = decodeMessage(await rawExchange(cached.address, rawQuery(7, { name: '_big._tcp.env1.skydns.local', type: 'SRV' })));
    expect(big.flags.tc).toBe(true);

    // Within the same second and lease step: every zone answer comes from the cache.
    clock.advance(300);
    await compare('+0.3 s', undefined);
    // The next second: a new SOA serial, a lease one second shorter; the rest still from the cache.
    clock.advance(700);
    const before = cache.hits;
    await compare('+1 s', undefined);
    expect(cache.hits - before).toBeGreaterThan(kept);
    const leased = decodeMessage(await rawExchange(cached.address, rawQuery(8, { name: 'leased.env1.skydns.local', type: 'A' })));
    expect(leased.answers.map((r) => r.ttl)).toEqual([9]);
    // Past the lease's end: TTL 0 until the store drops the key.
    clock.advance(10_000);
    await compare('+11 s', undefined);
    expect(decodeMessage(await rawExchange(cached.address, rawQuery(9, { name: 'leased.env1.skydns.local', type: 'A' }))).answers.map((r) => r.ttl)).toEqual([0]);
    // The clock going back is no reason to serve what was made later.
    clock.advance(-5_000);
    await compare('-5 s', undefined);
    console.log(JSON.stringify({ kept, hits: cache.hits, entries: cache.size, bytes: cache.bytes }));
  });

  it('sees a change of the store at once: a put, a delete, a moved lease end', async () => {
    const clock = manualClock(START);
    const store = MemoryZoneStore.fromValues(RECORDS);
    const plain = await serveZone(store, clock, false);
    const cached = await serveZone(store, clock, true);
    const cache = cached.cache as WireReplyCache;
    const ask = async (server: Served): Promise<string> => hex(await rawExchange(server.address, rawQuery(42, { name: '_zookeeper._tcp.env1.skydns.local', type: 'SRV' })));
    const first = await ask(cached);
    expect(await ask(cached)).toBe(first);
    expect(cache.hits).toBe(1);
    const changes: [string, () => void][] = [
      ['put', () => store.put(`${ZK}/zk4`, '{"host":"10.0.0.14","port":31004}')],
      ['same value put again', () => store.put(`${ZK}/zk4`, '{"host":"10.0.0.14","port":31004}')],
      ['lease end', () => store.put(`${ZK}/zk4`, '{"host":"10.0.0.14","port":31004}', START + 20_000)],
      ['delete', () => store.delete(`${ZK}/zk1`)],
      ['malformed', () => store.put(`${ZK}/zk2`, '{"host":12}')],
    ];
    for (const [what, change] of changes) {
      const version = store.version;
      change();
      expect(store.version, what).toBeGreaterThan(version);
      const hits = cache.hits;
      expect(await ask(cached), what).toBe(await ask(plain));
      expect(cache.hits, `${what}: not from the cache`).toBe(hits);
      expect(await ask(cached), `${what}, then from the cache`).toBe(await ask(plain));
      expect(cache.hits).toBe(hits + 1);
    }
    expect(await ask(cached)).not.toBe(first);
  });

  it('follows a records file as it is rewritten', async () => {
    const file = join(tempDir(), 'records.yaml');
    writeFileSync(file, `${ZK}/zk1: {host: 10.0.0.11, port: 31001}\n`);
    const store = new RecordsFileStore(file, { debounceMs: 10 });
    onTestFinished(() => store.close());
    await store.start();
    const cached = await serveZone(store, undefined, true);
    const ports = async (): Promise<string[]> => (await dig(cached.address, '_zookeeper._tcp.env1.skydns.local', 'SRV')).answer.map((r) => r.data.split(' ')[2] ?? '');
    expect(await ports()).toEqual(['31001']);
    expect(await ports()).toEqual(['31001']);
    expect(cached.cache?.hits).toBe(1);
    for (const port of [31002, 31003]) {
      const version = store.version;
      const reloaded = new Promise<void>((resolve) => store.once('reload', () => resolve()));
      writeFileSync(`${file}.new`, `${ZK}/zk1: {host: 10.0.0.11, port: ${port}}\n`);
      renameSync(`${file}.new`, file);
      await reloaded;
      expect(store.version).toBeGreaterThan(version);
      expect(await ports()).toEqual([String(port)]);
    }
  });

  it('follows etcd: a put or delete seen by the watch ends the cached answer', async () => {
    const cluster = await startEtcd();
    const etcd = new Etcd3({ hosts: cluster.endpoints, dialTimeout: 3000 });
    onTestFinished(() => etcd.close());
    await etcd.put(`${ZK}/zk1`).value('{"host":"10.0.0.11","port":31001}');
    const store = new EtcdZoneStore({ client: etcd });
    onTestFinished(() => store.close());
    await store.start();
    const cached = await serveZone(store, undefined, true);
    const plain = await serveZone(store, undefined, false);
    const srv = async (server: Served): Promise<string[]> =>
      (await dig(server.address, '_ZooKeeper._tcp.env1.skydns.local', 'SRV')).answer.map((r) => `${r.name} ${r.data}`).sort();
    expect(await srv(cached)).toEqual(await srv(plain));
    expect(await srv(cached)).toEqual(['_ZooKeeper._tcp.env1.skydns.local. 10 100 31001 zk1._zookeeper._tcp.env1.skydns.local.']);
    expect(cached.cache?.hits).toBeGreaterThan(0);
    const version = store.version;
    const put = once(store, 'change');
    await etcd.put(`${ZK}/zk2`).value('{"host":"10.0.0.12","port":31002}');
    await put;
    expect(store.version).toBeGreaterThan(version);
    expect(await srv(cached)).toHaveLength(2);
    expect(await srv(cached)).toEqual(await srv(plain));
    const deleted = once(store, 'change');
    await etcd.delete().key(`${ZK}/zk1`);
    await deleted;
    expect(await srv(cached)).toEqual(['_ZooKeeper._tcp.env1.skydns.local. 10 100 31002 zk2._zookeeper._tcp.env1.skydns.local.']);
  });

  it('gives dig and dnsmasq, a client and a forwarder we did not write, what the zone gives without it', async () => {
    const store = MemoryZoneStore.fromValues(RECORDS);
    const plain = await serveZone(store, undefined, false);
    const cached = await serveZone(store, undefined, true);
    // dnsmasq forwards the zone to each server, caching nothing: every query reaches srvlink.
    const forward = async (server: HostPort): Promise<HostPort> =>
      (await startDnsmasq({ localZones: [], extraArgs: [`--server=/skydns.local/${server.host}#${server.port}`, '--cache-size=0'] })).address;
    const viaPlain = await forward(plain.address);
    const viaCached = await forward(cached.address);
    // The SOA serial is the second the answer was made in: left out.
    const noSerial = (records: DigRecord[]): DigRecord[] => records.map((r) => (r.type === 'SOA' ? { ...r, data: r.data.split(' ').filter((_, i) => i !== 2).join(' ') } : r));
    const shown = (result: DigResult): string =>
      JSON.stringify({ status: result.status, flags: result.flags, answer: noSerial(result.answer), authority: noSerial(result.authority), additional: result.additional });
    const OPTIONS = [[], ['+norec'], ['+dnssec'], ['+bufsize=512'], ['+noedns'], ['+tcp'], ['+adflag', '+cdflag']];
    const questions = QUESTIONS.filter((q) => q.class === undefined && q.type !== 'AXFR' && q.name !== '*._tcp.env1.skydns.local').map((q) => [q.name, q.type] as const);
    for (const options of OPTIONS) {
      // Twice from the cached server: the second answers are the cache's.
      await digBatch(cached.address, questions, options);
      const hits = cached.cache?.hits ?? 0;
      const direct = await digBatch(cached.address, questions, options);
      expect((cached.cache?.hits ?? 0) - hits, `${options.join(' ')}: from the cache`).toBeGreaterThan(questions.length / 2);
      const zone = await digBatch(plain.address, questions, options);
      const forwarded = await digBatch(viaCached, questions, options);
      const forwardedZone = await digBatch(viaPlain, questions, options);
      questions.forEach(([name, type], i) => {
        const what = `${name} ${type} ${options.join(' ')}`;
        expect(shown(direct[i] as DigResult), what).toBe(shown(zone[i] as DigResult));
        expect(shown(forwarded[i] as DigResult), `${what} through dnsmasq`).toBe(shown(forwardedZone[i] as DigResult));
      });
    }
    expect(cached.cache?.hits).toBeGreaterThan(100);
  });
});
