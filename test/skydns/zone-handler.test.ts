import { describe, expect, it, onTestFinished } from 'vitest';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { Rcode, createMessage, decodeMessage, encodeMessage, type DnsMessage, type DnsQuestion } from '../../src/dns/codec.js';
import type { DnsRequest } from '../../src/dns/handler.js';
import { runChain } from '../../src/dns/handler.js';
import { createQueryCheckHandler } from '../../src/dns/query-check.js';
import { DnsServer } from '../../src/dns/server.js';
import { MemoryZoneStore } from '../../src/skydns/memory-zone-store.js';
import { createZoneHandler } from '../../src/skydns/zone-handler.js';
import { dig } from '../helpers/dig.js';
import { formatRecord } from './format-record.js';

const NOW = Date.UTC(2024, 0, 1);
const ZK = '/skydns/local/skydns/env1/_tcp/_zookeeper';

const store = MemoryZoneStore.fromValues({
  [`${ZK}/zk1`]: '{"host":"10.0.0.11","port":31001}',
  [`${ZK}/zk2`]: '{"host":"10.0.0.12","port":31002,"weight":50}',
  [`${ZK}/zk3`]: '{"host":"10.0.0.13","port":31003,"priority":20}',
  '/skydns/local/other/a': '{"host":"10.1.0.1"}',
});

function request(questions: DnsQuestion[], fields: Partial<DnsMessage> = {}): DnsRequest {
  return {
    message: createMessage({ id: 4242, questions, flags: { aa: false, tc: false, rd: true, ra: false, ad: false, cd: false }, ...fields }),
    client: { address: '127.0.0.1', port: 5353, transport: 'udp' },
  };
}

/** The chain as `srvlink dns` runs it, with a last handler that marks what fell through. */
function serve(handler: ReturnType<typeof createZoneHandler>, req: DnsRequest): Promise<DnsMessage> {
  return runChain([createQueryCheckHandler(), handler], req, (r) => Promise.resolve(createMessage({ id: r.message.id, response: true, rcode: Rcode.REFUSED })));
}

describe('createZoneHandler', () => {
  const handler = createZoneHandler({ zones: ['skydns.local.'], store, now: () => NOW });

  it('answers the worked example authoritatively, and the reply survives the wire', async () => {
    const reply = await serve(handler, request([{ name: '_zookeeper._tcp.env1.skydns.local', type: 'SRV' }]));
    const wire = decodeMessage(encodeMessage(reply));
    expect(wire).toMatchObject({ id: 4242, response: true, rcode: Rcode.NOERROR, flags: { aa: true, rd: true, ra: false } });
    expect(wire.questions).toEqual([{ name: '_zookeeper._tcp.env1.skydns.local', type: 'SRV', class: 'IN' }]);
    expect(wire.answers.map(formatRecord)).toEqual([
      '_zookeeper._tcp.env1.skydns.local 300 SRV 10 66 31001 zk1._zookeeper._tcp.env1.skydns.local',
      '_zookeeper._tcp.env1.skydns.local 300 SRV 10 33 31002 zk2._zookeeper._tcp.env1.skydns.local',
      '_zookeeper._tcp.env1.skydns.local 300 SRV 20 100 31003 zk3._zookeeper._tcp.env1.skydns.local',
    ]);
    expect(wire.additionals.map(formatRecord)).toEqual([
      'zk1._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.11',
      'zk2._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.12',
      'zk3._zookeeper._tcp.env1.skydns.local 300 A 10.0.0.13',
    ]);
  });

  it('answers NXDOMAIN with the SOA in authority', async () => {
    const reply = await serve(handler, request([{ name: 'nothere.skydns.local', type: 'A' }]));
    const wire = decodeMessage(encodeMessage(reply));
    expect(wire.rcode).toBe(Rcode.NXDOMAIN);
    expect(wire.flags.aa).toBe(true);
    expect(wire.authorities.map(formatRecord)).toEqual([
      `skydns.local 30 SOA ns.dns.skydns.local hostmaster.skydns.local ${NOW / 1000} 7200 1800 86400 30`,
    ]);
  });

  it('passes questions outside its zones to the next handler', async () => {
    const reply = await serve(handler, request([{ name: 'example.com', type: 'A' }]));
    expect(reply.rcode).toBe(Rcode.REFUSED);
    expect(reply.flags.aa).toBe(false);
  });

  it('answers NOTIMP to an opcode other than QUERY', async () => {
    const reply = await serve(handler, request([{ name: 'skydns.local', type: 'SOA' }], { opcode: 4 }));
    expect(reply).toMatchObject({ id: 4242, response: true, opcode: 4, rcode: Rcode.NOTIMP, answers: [] });
  });

  it.each([
    ['no question', []],
    [
      'two questions',
      [
        { name: 'skydns.local', type: 'SOA' },
        { name: 'skydns.local', type: 'NS' },
      ],
    ],
  ] as [string, DnsQuestion[]][])('answers FORMERR to a query with %s', async (_what, questions) => {
    const reply = await serve(handler, request(questions));
    expect(reply).toMatchObject({ id: 4242, response: true, rcode: Rcode.FORMERR, answers: [] });
  });

  it('answers from the longest matching zone', async () => {
    const both = createZoneHandler({ zones: ['local', 'skydns.local.', 'SKYDNS.local'], store, now: () => NOW });
    const inner = await serve(both, request([{ name: 'nothere.skydns.local', type: 'A' }]));
    expect(inner.authorities.map((record) => record.name)).toEqual(['skydns.local']);
    const outer = await serve(both, request([{ name: 'a.other.local', type: 'A' }]));
    expect(outer.answers.map(formatRecord)).toEqual(['a.other.local 300 A 10.1.0.1']);
  });

  it('measures leases with the injected clock', async () => {
    const leased = new MemoryZoneStore();
    leased.put(`${ZK}/zk1`, '{"host":"10.0.0.11","port":31001}', NOW + 20_000);
    let now = NOW;
    const clocked = createZoneHandler({ zones: ['skydns.local'], store: leased, now: () => now });
    const ask = async (): Promise<number | undefined> =>
      (await serve(clocked, request([{ name: 'zk1._zookeeper._tcp.env1.skydns.local', type: 'A' }]))).answers[0]?.ttl;
    expect(await ask()).toBe(20);
    now += 15_000;
    expect(await ask()).toBe(5);
  });

  it('refuses to start without a zone', () => {
    expect(() => createZoneHandler({ zones: [], store })).toThrow(InvalidArgumentError);
  });

  it('answers dig, a client we did not write, over UDP and TCP', async () => {
    const server = new DnsServer({ listen: { host: '127.0.0.1', port: 0 }, handlers: [handler] });
    onTestFinished(() => server.close());
    await server.start();
    for (const transport of [[], ['+tcp']]) {
      const srv = await dig(server.address(), '_zookeeper._tcp.env1.skydns.local', 'SRV', transport);
      expect(srv.status).toBe('NOERROR');
      expect(srv.flags).toContain('aa');
      expect(srv.answer.map((r) => `${r.name} ${r.ttl} ${r.type} ${r.data}`)).toEqual([
        '_zookeeper._tcp.env1.skydns.local. 300 SRV 10 66 31001 zk1._zookeeper._tcp.env1.skydns.local.',
        '_zookeeper._tcp.env1.skydns.local. 300 SRV 10 33 31002 zk2._zookeeper._tcp.env1.skydns.local.',
        '_zookeeper._tcp.env1.skydns.local. 300 SRV 20 100 31003 zk3._zookeeper._tcp.env1.skydns.local.',
      ]);
      expect(srv.additional.map((r) => `${r.name} ${r.ttl} ${r.type} ${r.data}`)).toEqual([
        'zk1._zookeeper._tcp.env1.skydns.local. 300 A 10.0.0.11',
        'zk2._zookeeper._tcp.env1.skydns.local. 300 A 10.0.0.12',
        'zk3._zookeeper._tcp.env1.skydns.local. 300 A 10.0.0.13',
      ]);
    }
    const missing = await dig(server.address(), 'nothere.skydns.local', 'A');
    expect(missing.status).toBe('NXDOMAIN');
    expect(missing.authority.map((r) => `${r.name} ${r.ttl} ${r.type} ${r.data}`)).toEqual([
      `skydns.local. 30 SOA ns.dns.skydns.local. hostmaster.skydns.local. ${NOW / 1000} 7200 1800 86400 30`,
    ]);
    const nodata = await dig(server.address(), 'zk1._zookeeper._tcp.env1.skydns.local', 'TXT');
    expect(nodata.status).toBe('NOERROR');
    expect(nodata.answer).toEqual([]);
    expect(nodata.authority.map((r) => r.type)).toEqual(['SOA']);
  });
});
