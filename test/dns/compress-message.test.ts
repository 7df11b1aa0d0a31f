/**
 * Name compression on encode (RFC 1035 §4.1.4) and cutting a reply to its
 * transport: round trips through our decoder, through dig, and through
 * dnsmasq as a forwarder (both decode compressed names their own way).
 */
import * as packet from 'dns-packet';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { Rcode, createMessage, createReply, decodeMessage, encodeMessage, type DnsMessage, type DnsRecord } from '../../src/dns/codec.js';
import type { DnsHandler } from '../../src/dns/handler.js';
import { DnsServer } from '../../src/dns/server.js';
import { dig } from '../helpers/dig.js';
import { startDnsmasq } from '../helpers/dnsmasq.js';

const SERVICE = '_zookeeper._tcp.env1.skydns.local';

/** An SRV reply as `srvlink dns` builds it: one SRV per instance, A glue for each target. */
function srvReply(count: number, fields: Partial<DnsMessage> = {}): DnsMessage {
  const target = (i: number): string => `zk${i}.${SERVICE}`;
  return createMessage({
    id: 1,
    response: true,
    flags: { aa: true },
    questions: [{ name: SERVICE, type: 'SRV', class: 'IN' }],
    answers: Array.from({ length: count }, (_, i): DnsRecord => ({
      name: SERVICE,
      type: 'SRV',
      class: 'IN',
      ttl: 300,
      data: { priority: 10, weight: 1, port: 30000 + i, target: target(i) },
    })),
    additionals: Array.from({ length: count }, (_, i): DnsRecord => ({
      name: target(i),
      type: 'A',
      class: 'IN',
      ttl: 300,
      data: `10.0.${i >> 8}.${i & 0xff}`,
    })),
    ...fields,
  });
}

/** dns-packet's own encoding: no compression at all. */
function uncompressedSize(message: DnsMessage): number {
  return packet.encode({ type: 'response', id: 1, questions: message.questions, answers: message.answers, additionals: message.additionals }).length;
}

/** Keep what survives the wire: dns-packet adds `flush` and reads TXT as buffers. */
function comparable(message: DnsMessage): unknown {
  const strip = (r: DnsRecord): unknown => ({ ...r, flush: undefined, class: r.class ?? 'IN' });
  return {
    ...message,
    questions: message.questions.map((q) => ({ ...q, class: q.class ?? 'IN' })),
    answers: message.answers.map(strip),
    authorities: message.authorities.map(strip),
    additionals: message.additionals.map(strip),
  };
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(handler: DnsHandler['handle']): Promise<DnsServer> {
  const server = new DnsServer({ listen: { host: '127.0.0.1', port: 0 }, handlers: [{ name: 'test', handle: handler }] });
  await server.start();
  cleanups.push(() => server.close());
  return server;
}

describe('name compression', () => {
  it('round-trips messages whose names share suffixes: encode → decode → same message, and the same bytes again (property)', () => {
    const label = fc.stringMatching(/^[a-zA-Z0-9_-]{1,12}$/);
    const suffix = fc.constantFrom('skydns.local', 'env1.skydns.local', 'Example.COM', 'example.com', 'a.b.c.d.e.f');
    const name = fc.tuple(fc.array(label, { maxLength: 3 }), suffix).map(([labels, zone]) => [...labels, zone].join('.'));
    const record: fc.Arbitrary<DnsRecord> = fc.oneof(
      fc.record({ name, ttl: fc.nat(86400), target: name, port: fc.nat(65535) }).map(({ name: n, ttl, target, port }): DnsRecord => ({
        name: n, type: 'SRV', class: 'IN', ttl, data: { priority: 10, weight: 5, port, target },
      })),
      fc.record({ name, ttl: fc.nat(86400), data: name }).map(({ name: n, ttl, data }): DnsRecord => ({ name: n, type: 'CNAME', class: 'IN', ttl, data })),
      fc.record({ name, ttl: fc.nat(86400), data: name }).map(({ name: n, ttl, data }): DnsRecord => ({ name: n, type: 'NS', class: 'IN', ttl, data })),
      fc.record({ name, ttl: fc.nat(86400), data: name }).map(({ name: n, ttl, data }): DnsRecord => ({ name: n, type: 'PTR', class: 'IN', ttl, data })),
      fc.record({ name, exchange: name }).map(({ name: n, exchange }): DnsRecord => ({ name: n, type: 'MX', class: 'IN', ttl: 60, data: { preference: 10, exchange } })),
      fc.record({ name, mname: name, rname: name }).map(({ name: n, mname, rname }): DnsRecord => ({
        name: n, type: 'SOA', class: 'IN', ttl: 30,
        data: { mname, rname, serial: 7, refresh: 1, retry: 2, expire: 3, minimum: 30 },
      })),
      fc.record({ name, ip: fc.ipV4() }).map(({ name: n, ip }): DnsRecord => ({ name: n, type: 'A', class: 'IN', ttl: 60, data: ip })),
      fc.record({ name, ip: fc.constantFrom('2001:db8::1', 'fd00::53', '::1') }).map(({ name: n, ip }): DnsRecord => ({ name: n, type: 'AAAA', class: 'IN', ttl: 60, data: ip })),
    );
    fc.assert(
      fc.property(name, fc.array(record, { maxLength: 12 }), fc.array(record, { maxLength: 4 }), fc.array(record, { maxLength: 12 }), (qname, answers, authorities, additionals) => {
        const message = createMessage({ id: 9, response: true, questions: [{ name: qname, type: 'A', class: 'IN' }], answers, authorities, additionals });
        const wire = encodeMessage(message);
        const decoded = decodeMessage(wire);
        expect(comparable(decoded)).toEqual(comparable(message));
        expect(encodeMessage(decoded)).toEqual(wire);
        // Never larger than without compression.
        expect(wire.length).toBeLessThanOrEqual(packet.encode({ type: 'response', questions: message.questions, answers, authorities, additionals }).length);
      }),
      { numRuns: 300, seed: 1035 },
    );
  });

  it('keeps the case each name was written in (a pointer only to the same bytes, RFC 4343)', () => {
    const message = createMessage({
      response: true,
      questions: [{ name: 'ZK1.Env1.skydns.local', type: 'A' }],
      answers: [
        { name: 'zk1.env1.skydns.local', type: 'CNAME', ttl: 1, data: 'ZK2.ENV1.skydns.local' },
        { name: 'ZK2.ENV1.skydns.local', type: 'A', ttl: 1, data: '192.0.2.1' },
      ],
    });
    const decoded = decodeMessage(encodeMessage(message));
    expect(decoded.questions[0]?.name).toBe('ZK1.Env1.skydns.local');
    expect(decoded.answers.map((r) => r.name)).toEqual(['zk1.env1.skydns.local', 'ZK2.ENV1.skydns.local']);
    expect(decoded.answers[0]?.data).toBe('ZK2.ENV1.skydns.local');
  });

  it('writes SRV targets in full when the reply fits, and compresses them only when it would not', () => {
    const small = encodeMessage(srvReply(3));
    // RFC 2782: the targets are whole label sequences in the answer; the glue owners point at them.
    const inFull = Buffer.concat([...`zk1.${SERVICE}`.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
    expect(small.includes(inFull)).toBe(true);

    const big = srvReply(1000);
    const wire = encodeMessage(big);
    const decoded = decodeMessage(wire);
    expect(decoded.flags.tc).toBe(false);
    expect(decoded.answers).toHaveLength(1000);
    expect(decoded.additionals).toHaveLength(1000);
    expect(comparable(decoded)).toEqual(comparable(big));
    const sizes = [10, 100, 1000].map((n) => `${n} SRV+A: ${uncompressedSize(srvReply(n))} → ${encodeMessage(srvReply(n)).length} bytes`);
    console.log(`compression: ${sizes.join(', ')}`);
    expect(wire.length).toBeLessThan(65535);
    expect(uncompressedSize(big)).toBeGreaterThan(65535);
  });
});

describe('cutting a reply to its transport', () => {
  it('leaves the additional section out first, without TC (RFC 2181 §9)', () => {
    // 30 SRV records fit in 1232 bytes, their glue does not.
    const reply = srvReply(30, { edns: { udpPayloadSize: 1232, version: 0, dnssecOk: false } });
    const wire = encodeMessage(reply, { maxSize: 1232 });
    expect(wire.length).toBeLessThanOrEqual(1232);
    const decoded = decodeMessage(wire);
    expect(decoded.flags.tc).toBe(false);
    expect(decoded.answers).toHaveLength(30);
    expect(decoded.additionals.length).toBeLessThan(30);
    // The OPT record stays whatever is cut (RFC 6891 §7).
    expect(decoded.edns).toEqual({ udpPayloadSize: 1232, version: 0, dnssecOk: false });
  });

  it.each([
    [512, 1000],
    [1232, 1000],
    [65535, 3000],
  ])('cuts to %i bytes with TC when answers must go, whole records only', (maxSize, count) => {
    const reply = srvReply(count);
    const wire = encodeMessage(reply, { maxSize });
    expect(wire.length).toBeLessThanOrEqual(maxSize);
    const decoded = decodeMessage(wire);
    expect(decoded.flags.tc).toBe(true);
    expect(decoded.answers.length).toBeGreaterThan(0);
    expect(decoded.answers.length).toBeLessThan(count);
    expect(decoded.additionals).toEqual([]);
    expect(decoded.answers).toEqual(decodeMessage(encodeMessage(reply)).answers.slice(0, decoded.answers.length));
  });

  it('keeps an extended rcode through the OPT record (BADVERS, RFC 6891 §6.1.3)', () => {
    const reply = createMessage({ response: true, rcode: Rcode.BADVERS, questions: [{ name: 'a.test', type: 'A' }], edns: { udpPayloadSize: 1232, version: 0, dnssecOk: false } });
    const wire = encodeMessage(reply);
    // Header rcode 0, OPT's extended rcode 1: 1 << 4 | 0 = 16.
    expect(wire.readUInt16BE(2) & 0xf).toBe(0);
    expect(decodeMessage(wire).rcode).toBe(Rcode.BADVERS);
  });

  it('serves 1000 SRV records with glue to dig: truncated over UDP, whole over TCP (dig retries itself)', async () => {
    const server = await serve(async (request) => createReply(request.message, { flags: { aa: true }, answers: srvReply(1000).answers, additionals: srvReply(1000).additionals }));
    const result = await dig(server.address(), SERVICE, 'SRV');
    expect(result.status).toBe('NOERROR');
    expect(result.raw).toMatch(/Truncated, retrying in TCP mode/);
    expect(result.answer).toHaveLength(1000);
    expect(result.additional.filter((r) => r.type === 'A')).toHaveLength(1000);
    expect(result.answer[999]?.data).toBe(`10 1 30999 zk999.${SERVICE}.`);
    expect(server.stats.truncated).toBe(1);
  });

  it('is read by dnsmasq as a forwarder: it caches the compressed CNAME chain and answers it again itself', async () => {
    let asked = 0;
    const server = await serve(async (request) => {
      const name = request.message.questions[0]?.name ?? '';
      // dnsmasq's readiness probe (ready.check.invalid) comes through too: count only ours.
      if (name === 'www.example.test') asked += 1;
      return createReply(request.message, {
        flags: { aa: true },
        answers: [
          { name, type: 'CNAME', ttl: 300, data: `web.${'svc.example.test'}` },
          ...Array.from({ length: 20 }, (_, i): DnsRecord => ({ name: 'web.svc.example.test', type: 'A', ttl: 300, data: `192.0.2.${i + 1}` })),
        ],
      });
    });
    const dnsmasq = await startDnsmasq({ localZones: [], extraArgs: [`--server=127.0.0.1#${server.address().port}`, '--cache-size=100'] });
    for (let round = 0; round < 2; round++) {
      const result = await dig(dnsmasq.address, 'www.example.test', 'A');
      expect(result.status).toBe('NOERROR');
      expect(result.answer[0]).toMatchObject({ type: 'CNAME', data: 'web.svc.example.test.' });
      expect(result.answer.filter((r) => r.type === 'A').map((r) => r.data).sort()).toEqual(
        Array.from({ length: 20 }, (_, i) => `192.0.2.${i + 1}`).sort(),
      );
    }
    // The second answer came from dnsmasq's cache: it decoded every compressed name.
    expect(asked).toBe(1);
  });
});
