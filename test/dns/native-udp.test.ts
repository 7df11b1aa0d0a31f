/**
 * The native UDP fast path of the stub (native/src/udp-plane.c) answers
 * what the chain answers: dnsmasq upstream, the same raw queries (spellings,
 * RD/AD/CD, EDNS sizes and DO) answered byte for byte alike by the chain
 * and by the table (the client's ID in it, the TTLs within the second the
 * chain would give), TTLs aged as dig sees them, the TC bit of a reply cut
 * to 512 bytes, an entry gone with its source, allow-from still refusing
 * clients it does not name (IPv6 clients and IPv4 ones on a dual-stack
 * socket alike), dnsperf answered every query, and junk
 * datagrams never costing an answer.
 * `srvlink dns`'s zone answers alike natively and without any cache, and
 * a change of the store is seen by the very next dig.
 */
import { createSocket } from 'node:dgram';
import { execFile } from 'node:child_process';
import { closeSync, constants, openSync, readdirSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import type { HostPort } from '../../src/core/host-port.js';
import { loadNativeAddon } from '../../src/core/native-addon.js';
import { Rcode, createReply, decodeMessage } from '../../src/dns/codec.js';
import { createQueryCheckHandler } from '../../src/dns/query-check.js';
import { DnsServer } from '../../src/dns/server.js';
import { MemoryZoneStore } from '../../src/skydns/memory-zone-store.js';
import { createZoneHandler } from '../../src/skydns/zone-handler.js';
import { createZoneReplyCache } from '../../src/skydns/zone-reply-cache.js';
import { openNativeUdp, udpHandle, type NativeUdpReader } from '../../src/dns/native-udp.js';
import { recordTtlOffsets } from '../../src/dns/record-ttls.js';
import type { StubServer } from '../../src/stub/create-stub.js';
import { dig } from '../helpers/dig.js';
import { startDnsmasq, type Dnsmasq } from '../helpers/dnsmasq.js';
import { QUERY_SHAPES, rawExchange, rawQuery, type RawQuery } from '../helpers/raw-dns.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { resolverFor, startStub } from '../helpers/stub-fixtures.js';
import { createStub } from '../../src/stub/create-stub.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const run = promisify(execFile);

const native = openNativeUdp('native', () => loadNativeAddon());
const skip = native.unavailable === undefined ? undefined : `skipped: ${native.unavailable}`;
const nativeUdp = native.addon;

let stubs: StubServer[] = [];
let upstreams: Dnsmasq[] = [];
afterEach(async () => {
  await Promise.all(stubs.map((stub) => stub.close()));
  await Promise.all(upstreams.map((upstream) => upstream.stop()));
  stubs = [];
  upstreams = [];
});

async function upstream(): Promise<Dnsmasq> {
  const dnsmasq = await startDnsmasq({
    localZones: ['fast.test'],
    hosts: [
      { name: 'www.fast.test', address: '192.0.2.10' },
      { name: 'v6.fast.test', address: '2001:db8::10' },
      // Forty addresses: 656 bytes of answer, cut to 512 without EDNS.
      ...Array.from({ length: 40 }, (_, i) => ({ name: 'many.fast.test', address: `192.0.2.${100 + i}` })),
    ],
    srv: [{ name: '_svc._tcp.fast.test', target: 'www.fast.test', port: 8080, priority: 10, weight: 5 }],
    extraArgs: ['--txt-record=txt.fast.test,hello', '--cname=alias.fast.test,www.fast.test'],
  });
  upstreams.push(dnsmasq);
  return dnsmasq;
}

/** Who reads the stub's socket natively in the tests of a `describe.each` over `READERS`. */
let reader: NativeUdpReader = 'thread';
const READERS: readonly NativeUdpReader[] = ['thread', 'loop'];

async function nativeStub(dnsmasq: Dnsmasq, options: Partial<Parameters<typeof startStub>[0]> = {}): Promise<StubServer> {
  if (nativeUdp === undefined) throw new Error('no native udp path');
  const stub = await startStub({ upstreamResolver: resolverFor(dnsmasq.address, 2000), server: { nativeUdp, nativeUdpReader: reader }, ...options });
  stubs.push(stub);
  return stub;
}

/** `wire` with every record's TTL zeroed, and the TTLs. */
function withoutTtls(wire: Buffer): { bytes: Buffer; ttls: number[] } {
  const bytes = Buffer.from(wire);
  const offsets = recordTtlOffsets(bytes) ?? [];
  const ttls = offsets.map((at) => bytes.readUInt32BE(at));
  for (const at of offsets) bytes.writeUInt32BE(0, at);
  return { bytes, ttls };
}

const NAMES = ['www.fast.test', 'WWW.Fast.Test', 'alias.fast.test', '_svc._tcp.fast.test', 'txt.fast.test', 'v6.fast.test', 'many.fast.test', 'nosuch.fast.test'];
const TYPE_OF: Record<string, RawQuery['type']> = { '_svc._tcp.fast.test': 'SRV', 'txt.fast.test': 'TXT', 'v6.fast.test': 'AAAA' };

describe.skipIf(skip !== undefined).each(READERS)(`the native UDP fast path, read on its %s ${skip ?? ''}`, (readBy) => {
  beforeEach(() => {
    reader = readBy;
  });

  it('answers byte for byte what the chain answers, with the client ID, for every UDP query shape', async () => {
    const stub = await nativeStub(await upstream());
    const server = stub.address();
    let natively = 0;
    let sent = 0;
    for (const name of NAMES) {
      for (const shape of QUERY_SHAPES.filter((s) => (s.transport ?? 'udp') === 'udp')) {
        const q: RawQuery = { name, type: TYPE_OF[name.toLowerCase()] ?? 'A', ...shape };
        const what = JSON.stringify(q);
        // Upstream, then the chain from the answer cache (kept encoded), then the table.
        await rawExchange(server, rawQuery(0x1234, q), 'udp');
        const fromChain = await rawExchange(server, rawQuery(0x1234, q), 'udp');
        const before = stub.nativeUdp?.hits ?? 0;
        const fromTable = await rawExchange(server, rawQuery(0xbeef, q), 'udp');
        const cacheable = decodeMessage(fromChain).answers.length > 0;
        expect((stub.nativeUdp?.hits ?? 0) - before, `native hit for ${what}`).toBe(cacheable ? 1 : 0);
        expect(fromTable.readUInt16BE(0), what).toBe(0xbeef);
        const chain = withoutTtls(fromChain);
        const table = withoutTtls(fromTable);
        table.bytes.writeUInt16BE(0x1234, 0);
        expect(table.bytes.equals(chain.bytes), `${what}\nchain ${fromChain.toString('hex')}\ntable ${fromTable.toString('hex')}`).toBe(true);
        // The same second or the next: never more than the chain gave.
        table.ttls.forEach((ttl, i) => expect(ttl).toBeGreaterThanOrEqual((chain.ttls[i] ?? 0) - 1));
        table.ttls.forEach((ttl, i) => expect(ttl).toBeLessThanOrEqual(chain.ttls[i] ?? 0));
        if (cacheable) natively++;
        sent += 3;
      }
    }
    expect(natively).toBeGreaterThan(30);
    // The hits are counted as the chain's would be: queries, cache hits, the wire cache's own.
    stub.countNativeHits();
    expect(stub.stats.queries).toBe(sent);
    expect(stub.wireCache?.hits).toBeGreaterThanOrEqual(natively);
  });

  it('sends the TC bit of a reply cut to 512 bytes, and dig retries over TCP', async () => {
    const stub = await nativeStub(await upstream());
    const server = stub.address();
    const q: RawQuery = { name: 'many.fast.test', type: 'A' };
    await rawExchange(server, rawQuery(1, q), 'udp');
    await rawExchange(server, rawQuery(2, q), 'udp');
    const hits = stub.nativeUdp?.hits ?? 0;
    const cut = await rawExchange(server, rawQuery(3, q), 'udp');
    expect(stub.nativeUdp?.hits).toBe(hits + 1);
    expect(cut.length).toBeLessThanOrEqual(512);
    expect(cut.readUInt16BE(2) & 0x0200).toBe(0x0200);
    const answer = await dig(server, 'many.fast.test', 'A', ['+noedns']);
    expect(answer.status).toBe('NOERROR');
    expect(answer.answer).toHaveLength(40);
    await waitFor(() => {
      stub.countNativeHits();
      return stub.stats.truncated >= 2;
    });
  });

  it('ages the TTLs as dig sees them, and drops an entry with its source', async () => {
    const stub = await nativeStub(await upstream());
    const server = stub.address();
    const first = await dig(server, 'www.fast.test', 'A');
    const ttl = first.answer[0]?.ttl ?? 0;
    expect(ttl).toBeGreaterThan(2);
    await dig(server, 'www.fast.test', 'A');
    const hits = stub.nativeUdp?.hits ?? 0;
    // Two whole seconds later the table answers with a TTL two lower.
    await waitFor(async () => ((await dig(server, 'www.fast.test', 'A')).answer[0]?.ttl ?? ttl) <= ttl - 2, { timeout: 10_000 });
    expect(stub.nativeUdp?.hits).toBeGreaterThan(hits);
    const aged = (await dig(server, 'www.fast.test', 'A')).answer[0]?.ttl ?? 0;
    expect(aged).toBeGreaterThanOrEqual(ttl - 4);
    // The answer cache dropped: the table's copy goes with it, and the next query goes upstream.
    stub.cache.clear();
    expect(stub.nativeUdp?.entries).toBe(0);
    const misses = stub.stubStats.cacheMisses;
    const again = await dig(server, 'www.fast.test', 'A');
    expect(again.answer[0]?.ttl).toBe(ttl);
    expect(stub.stubStats.cacheMisses).toBe(misses + 1);
  });

  it('still refuses a client allow-from does not name, after the table answered an allowed one', async () => {
    const stub = await nativeStub(await upstream(), { allowFrom: ['127.0.0.2/32'] });
    const server = stub.address();
    for (let i = 0; i < 3; i++) expect((await dig(server, 'www.fast.test', 'A', ['-b', '127.0.0.2'])).status).toBe('NOERROR');
    expect(stub.nativeUdp?.hits).toBeGreaterThan(0);
    for (let i = 0; i < 3; i++) expect((await dig(server, 'www.fast.test', 'A', ['-b', '127.0.0.3'])).status).toBe('REFUSED');
    const hits = stub.nativeUdp?.hits ?? 0;
    expect((await dig(server, 'www.fast.test', 'A', ['-b', '127.0.0.2'])).status).toBe('NOERROR');
    expect(stub.nativeUdp?.hits).toBe(hits + 1);
  });

  it.each([
    { listen: '::1', allowFrom: undefined, client: '::1', status: 'NOERROR' },
    { listen: '::1', allowFrom: ['::1/128'], client: '::1', status: 'NOERROR' },
    { listen: '::1', allowFrom: ['127.0.0.1/32'], client: '::1', status: 'REFUSED' },
    // A dual-stack socket sees the IPv4 client as ::ffff:127.0.0.1: allow-from's IPv4 network still names it.
    { listen: '::', allowFrom: ['127.0.0.1/32'], client: '127.0.0.1', status: 'NOERROR' },
    { listen: '::', allowFrom: ['127.0.0.1/32'], client: '::1', status: 'REFUSED' },
  ])('on $listen, allow-from $allowFrom: a client at $client is answered $status, from the table when it may be', async ({ listen, allowFrom, client, status }) => {
    if (nativeUdp === undefined) throw new Error('no native udp path');
    const dnsmasq = await upstream();
    const stub = createStub({ listen: { host: listen, port: 0 }, upstreamResolver: resolverFor(dnsmasq.address, 2000), server: { nativeUdp }, ...(allowFrom ? { allowFrom } : {}) });
    await stub.start();
    stubs.push(stub);
    const server = { host: client, port: stub.address().port };
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await dig(server, 'www.fast.test', 'A'));
    expect(answers.map((answer) => answer.status)).toEqual([status, status, status, status]);
    if (status === 'NOERROR') {
      expect(answers.map((answer) => answer.answer.map((record) => record.data))).toEqual(Array(4).fill(['192.0.2.10']));
      // The first asked the chain, the second found the wire cache (which put it in the table): the table answered the rest, back to the client's own address family.
      await waitFor(() => (stub.nativeUdp?.hits ?? 0) >= 2, { what: 'the table\'s hits' });
    } else {
      expect(stub.nativeUdp?.hits ?? 0).toBe(0);
    }
  });

  it('closes its duplicate of the socket with the server: the port can be bound again, no descriptor left', async () => {
    const fds = (): number => readdirSync('/proc/self/fd').length;
    const dnsmasq = await upstream();
    const before = fds();
    for (let i = 0; i < 20; i++) {
      const stub = await nativeStub(dnsmasq);
      await dig(stub.address(), 'www.fast.test', 'A');
      await dig(stub.address(), 'www.fast.test', 'A');
      const { port } = stub.address();
      await stub.close();
      stubs = stubs.filter((s) => s !== stub);
      const again = createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        again.once('error', reject);
        again.bind({ port, address: '127.0.0.1', exclusive: true }, () => resolve());
      });
      await new Promise<void>((resolve) => again.close(() => resolve()));
    }
    await waitFor(() => fds() <= before + 2, { what: 'the descriptors of 20 closed stubs to go' });
  });

  it('refuses bad arguments with a TypeError, and a closed handle does nothing', () => {
    if (nativeUdp === undefined) throw new Error('no native udp path');
    expect(() => nativeUdp.udpOpen(-1, 10, 1000, () => undefined)).toThrow(TypeError);
    expect(() => nativeUdp.udpOpen(0, 0, 1000, () => undefined)).toThrow(TypeError);
    expect(() => nativeUdp.udpOpen(0, 10, 1000, 'nope' as unknown as () => void)).toThrow(TypeError);
    // A descriptor that is no socket: the thread's first read fails and it stops; the handle still closes.
    const fd = openSync('/dev/null', 'r');
    onTestFinished(() => closeSync(fd));
    const handle = nativeUdp.udpOpen(fd, 10, 1000, () => undefined);
    const key = Buffer.alloc(20);
    const reply = Buffer.alloc(40);
    expect(() => nativeUdp.udpPut({}, 1, key, reply, [], [], -1, 0)).toThrow(TypeError);
    expect(() => nativeUdp.udpPut(handle, 1, key, reply, [12], [], -1, 0)).toThrow(TypeError);
    expect(() => nativeUdp.udpPut(handle, 1, 'key' as unknown as Buffer, reply, [], [], -1, 0)).toThrow(TypeError);
    expect(() => nativeUdp.udpAllow(handle, Buffer.alloc(17))).toThrow(TypeError);
    expect(() => nativeUdp.udpAllow(handle, Buffer.from([5, 0, ...new Array<number>(16).fill(0)]))).toThrow(TypeError);
    expect(() => nativeUdp.udpAllow(handle, Buffer.from([4, 33, ...new Array<number>(16).fill(0)]))).toThrow(TypeError);
    // Offsets outside the reply, a key too short: not kept.
    expect(nativeUdp.udpPut(handle, 1, key, reply, [38], [1], -1, Date.now() + 1000)).toBe(false);
    expect(nativeUdp.udpPut(handle, 1, Buffer.alloc(3), reply, [], [], -1, Date.now() + 1000)).toBe(false);
    expect(nativeUdp.udpPut(handle, 1, key, reply, [12], [1], -1, Date.now() + 1000)).toBe(true);
    expect(nativeUdp.udpStats(handle)).toMatchObject({ entries: 1 });
    nativeUdp.udpClose(handle);
    nativeUdp.udpClose(handle);
    expect(nativeUdp.udpPut(handle, 2, key, reply, [], [], -1, Date.now() + 1000)).toBe(false);
    nativeUdp.udpDelete(handle, key);
    nativeUdp.udpClear(handle);
    expect(nativeUdp.udpTakeHits(handle)).toEqual([]);
    expect(nativeUdp.udpStats(handle)).toMatchObject({ entries: 0 });
  });

  it('answers dnsperf, every query, nearly all from the table', async () => {
    const stub = await nativeStub(await upstream());
    const { host, port } = stub.address();
    const file = join(tempDir(), 'queries.txt');
    writeFileSync(file, ['www.fast.test A', 'v6.fast.test AAAA', 'txt.fast.test TXT', '_svc._tcp.fast.test SRV', 'many.fast.test A'].join('\n') + '\n');
    // A steady rate well below any ceiling: the figures are in make bench, this is about every answer.
    const { stdout } = await run('dnsperf', ['-s', host, '-p', String(port), '-d', file, '-l', '2', '-Q', '1000', '-c', '2', '-t', '5'], { timeout: 60_000 });
    const sent = Number(/Queries sent:\s+(\d+)/.exec(stdout)?.[1]);
    const completed = Number(/Queries completed:\s+(\d+)/.exec(stdout)?.[1]);
    expect(sent, stdout).toBeGreaterThan(1000);
    expect(completed, stdout).toBe(sent);
    expect(stdout).toMatch(/NOERROR \d+ \(100\.00%\)/);
    // The first of each name goes upstream and the second to the chain; the rest is the table's.
    expect(stub.nativeUdp?.hits ?? 0).toBeGreaterThan(completed - 100);
  });

  it('survives junk datagrams and still answers from the table and the chain', async () => {
    const stub = await nativeStub(await upstream());
    const server = stub.address();
    await dig(server, 'www.fast.test', 'A');
    await dig(server, 'www.fast.test', 'A');
    const random = seededRandom(11);
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    const valid = rawQuery(7, { name: 'www.fast.test', type: 'A' });
    for (let i = 0; i < 3000; i++) {
      let datagram: Buffer;
      if (i % 3 === 0) {
        // A valid query with bytes flipped: near the table's keys.
        datagram = Buffer.from(valid);
        for (let n = 0; n < 3; n++) datagram[Math.floor(random() * datagram.length)] = Math.floor(random() * 256);
      } else {
        datagram = Buffer.alloc(Math.floor(random() * (i % 7 === 0 ? 5000 : 64)));
        for (let n = 0; n < datagram.length; n++) datagram[n] = Math.floor(random() * 256);
      }
      socket.send(datagram, server.port, server.host);
    }
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    expect((await dig(server, 'www.fast.test', 'A')).answer[0]?.data).toBe('192.0.2.10');
    expect((await dig(server, 'txt.fast.test', 'TXT')).status).toBe('NOERROR');
    expect(stub.nativeUdp?.misses).toBeGreaterThan(0);
  });
});

/** Threads of this process now. */
function threads(): number {
  return readdirSync('/proc/self/task').length;
}

describe.skipIf(skip !== undefined)(`where the native UDP fast path reads ${skip ?? ''}`, () => {
  it('on a thread of its own, or on the event loop with no thread', async () => {
    if (nativeUdp === undefined) throw new Error('no native udp path');
    for (const [onLoop, more] of [
      [false, 1],
      [true, 0],
    ] as const) {
      const socket = createSocket('udp4');
      socket.bind(0, '127.0.0.1');
      await once(socket, 'listening');
      onTestFinished(() => {
      socket.close();
    });
      const fd = udpHandle(socket)?.fd as number;
      const before = threads();
      const handle = nativeUdp.udpOpen(fd, 10, 1000, () => undefined, onLoop);
      expect(threads() - before, onLoop ? 'loop' : 'thread').toBe(more);
      nativeUdp.udpClose(handle);
      await waitFor(() => threads() === before, { what: 'the reader thread to end' });
    }
  });

  it('on the loop, hands misses to the callback and stops reading a descriptor that is no socket, without spinning', async () => {
    if (nativeUdp === undefined) throw new Error('no native udp path');
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    onTestFinished(() => {
      socket.close();
    });
    const misses: (Buffer | string | number)[][] = [];
    const handle = nativeUdp.udpOpen(udpHandle(socket)?.fd as number, 10, 1000, (batch) => misses.push(batch), true);
    // Node reading too would take datagrams from it.
    udpHandle(socket)?.recvStop?.();
    onTestFinished(() => nativeUdp.udpClose(handle));
    const client = createSocket('udp4');
    onTestFinished(() => {
      client.close();
    });
    const { port } = socket.address();
    // As many as the socket's default receive buffer surely holds.
    for (let i = 0; i < 100; i++) client.send(Buffer.from(`query ${i}`), port, '127.0.0.1');
    const datagrams = (): Buffer[] => misses.flat().filter((item): item is Buffer => Buffer.isBuffer(item));
    await waitFor(() => datagrams().length === 100, { what: '100 misses' });
    expect(datagrams().map((d) => d.toString())).toEqual(Array.from({ length: 100 }, (_, i) => `query ${i}`));
    expect(nativeUdp.udpStats(handle)).toMatchObject({ hits: 0, misses: 100 });

    // A pipe with bytes in it is readable for ever and no socket: the first read fails with ENOTSOCK and reading stops.
    const fifo = join(tempDir(), 'fifo');
    await run('mkfifo', [fifo]);
    // Read and write on one descriptor (Linux opens a FIFO so without waiting for a peer).
    const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    onTestFinished(() => closeSync(fd));
    const notSocket = nativeUdp.udpOpen(fd, 10, 1000, () => undefined, true);
    onTestFinished(() => nativeUdp.udpClose(notSocket));
    writeSync(fd, 'x');
    const cpu = process.cpuUsage();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const used = process.cpuUsage(cpu);
    // A handle called again and again would keep this thread busy for the whole 300 ms.
    expect((used.user + used.system) / 1000).toBeLessThan(150);
  });
});

const ENV = '/skydns/local/skydns/env1';
const ZONE_RECORDS: Record<string, string> = {
  [`${ENV}/_tcp/_zookeeper/zk1`]: '{"host":"10.0.0.11","port":31001}',
  [`${ENV}/_tcp/_zookeeper/zk2`]: '{"host":"10.0.0.12","port":31002,"weight":50}',
  [`${ENV}/v6`]: '{"host":"2001:db8::10"}',
  [`${ENV}/alias`]: '{"host":"zk1._zookeeper._tcp.env1.skydns.local"}',
  [`${ENV}/txt`]: '{"text":"hello world"}',
  ...Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`${ENV}/_tcp/_big/b${i}`, `{"host":"10.0.1.${i}","port":${9000 + i}}`])),
};
const ZONE_QUESTIONS: Pick<RawQuery, 'name' | 'type'>[] = [
  { name: '_zookeeper._tcp.env1.skydns.local', type: 'SRV' },
  { name: '_ZooKeeper._TCP.Env1.SkyDNS.Local', type: 'SRV' },
  { name: 'zk1._zookeeper._tcp.env1.skydns.local', type: 'A' },
  { name: 'v6.env1.skydns.local', type: 'AAAA' },
  { name: 'alias.env1.skydns.local', type: 'A' },
  { name: 'txt.env1.skydns.local', type: 'TXT' },
  { name: '_big._tcp.env1.skydns.local', type: 'SRV' },
  { name: 'nosuch.env1.skydns.local', type: 'A' },
  { name: 'skydns.local', type: 'SOA' },
];

/** A `DnsServer` as `srvlink dns` builds it on 127.0.0.1:0: with the wire cache and the native path, or with neither. */
async function serveZone(store: MemoryZoneStore, fast: boolean): Promise<{ address: HostPort; server: DnsServer }> {
  const zone = createZoneHandler({ zones: ['skydns.local.'], store });
  const server = new DnsServer({
    listen: { host: '127.0.0.1', port: 0 },
    handlers: [createQueryCheckHandler(), zone],
    fallback: (request) => Promise.resolve(createReply(request.message, { rcode: Rcode.REFUSED })),
    ...(fast && nativeUdp !== undefined ? { replyCache: createZoneReplyCache(zone), nativeUdp } : {}),
  });
  await server.start();
  onTestFinished(() => server.close());
  return { address: server.address(), server };
}

describe.skipIf(skip !== undefined)(`srvlink dns on the native UDP fast path ${skip ?? ''}`, () => {
  it('answers byte for byte what the zone answers without any cache, with the client ID', async () => {
    const store = MemoryZoneStore.fromValues(ZONE_RECORDS);
    const plain = await serveZone(store, false);
    const fast = await serveZone(store, true);
    let id = 1;
    let natively = 0;
    for (const question of ZONE_QUESTIONS) {
      for (const shape of QUERY_SHAPES.filter((s) => (s.transport ?? 'udp') === 'udp')) {
        const q: RawQuery = { ...question, ...shape };
        const what = JSON.stringify(q);
        await rawExchange(fast.address, rawQuery(id++, q), 'udp');
        const before = fast.server.nativeUdp?.hits ?? 0;
        // The SOA serial is the time in seconds: a second boundary between the two asks once more.
        let fromTable: Buffer = Buffer.alloc(0);
        let fromZone: Buffer = Buffer.alloc(0);
        for (let attempt = 0; attempt < 3 && (attempt === 0 || !fromTable.equals(fromZone)); attempt++) {
          const queryId = id++ & 0xffff;
          fromTable = await rawExchange(fast.address, rawQuery(queryId, q), 'udp');
          fromZone = await rawExchange(plain.address, rawQuery(queryId, q), 'udp');
        }
        expect(fromTable.toString('hex'), what).toBe(fromZone.toString('hex'));
        if ((fast.server.nativeUdp?.hits ?? 0) > before) natively++;
      }
    }
    // Every zone answer but the SOA (new each second) and refusals comes from the table at the second ask.
    expect(natively).toBeGreaterThan(40);
    fast.server.countNativeHits();
    expect(fast.server.stats.queries).toBeGreaterThan(natively);
  });

  it('sees a put and a delete of the store at the very next dig', async () => {
    const store = MemoryZoneStore.fromValues(ZONE_RECORDS);
    const { address, server } = await serveZone(store, true);
    const srv = async (): Promise<string[]> => (await dig(address, '_zookeeper._tcp.env1.skydns.local', 'SRV')).answer.map((r) => r.data).sort();
    expect(await srv()).toHaveLength(2);
    expect(await srv()).toHaveLength(2);
    const hits = server.nativeUdp?.hits ?? 0;
    expect(await srv()).toHaveLength(2);
    expect(server.nativeUdp?.hits).toBe(hits + 1);
    store.put(`${ENV}/_tcp/_zookeeper/zk3`, '{"host":"10.0.0.13","port":31003}');
    expect(server.nativeUdp?.entries).toBe(0);
    expect(await srv()).toHaveLength(3);
    expect(await srv()).toHaveLength(3);
    store.delete(`${ENV}/_tcp/_zookeeper/zk1`);
    const after = await srv();
    expect(after).toHaveLength(2);
    expect(after.join(' ')).not.toContain('zk1');
  });
});
