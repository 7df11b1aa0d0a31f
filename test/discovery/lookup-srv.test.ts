import { afterEach, describe, expect, it } from 'vitest';
import { Rcode, createReply, type DnsRecord } from '../../src/dns/codec.js';
import { DnsClient } from '../../src/dns/client.js';
import type { DnsHandler } from '../../src/dns/handler.js';
import { DnsServer } from '../../src/dns/server.js';
import { lookupSrv } from '../../src/discovery/lookup-srv.js';

const SRV = '_svc._tcp.env1.example';

/** Zone data for a real DnsServer: name → records per type, plus the additional section for SRV. */
interface Zone {
  srv?: DnsRecord[];
  glue?: DnsRecord[];
  addresses?: Record<string, DnsRecord[]>;
  nxdomain?: boolean;
  soaTtl?: number;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function serve(zone: Zone): Promise<{ client: DnsClient; asked: string[] }> {
  const asked: string[] = [];
  const soa: DnsRecord = { name: 'env1.example', type: 'SOA', ttl: zone.soaTtl ?? 60, data: { mname: 'ns.env1.example', rname: 'hostmaster.env1.example', minimum: 30 } };
  const handler: DnsHandler = {
    name: 'zone',
    handle: async ({ message }) => {
      const q = message.questions[0];
      if (!q) return createReply(message, { rcode: Rcode.FORMERR });
      asked.push(`${q.name} ${q.type}`);
      if (zone.nxdomain) return createReply(message, { rcode: Rcode.NXDOMAIN, authorities: [soa] });
      if (q.type === 'SRV') return createReply(message, { answers: zone.srv ?? [], additionals: zone.glue ?? [], authorities: zone.srv?.length ? [] : [soa] });
      const answers = (zone.addresses?.[q.name.toLowerCase()] ?? []).filter((rr) => rr.type === q.type || rr.type === 'CNAME');
      return createReply(message, { answers });
    },
  };
  const server = new DnsServer({ listen: { host: '127.0.0.1', port: 0 }, handlers: [handler] });
  await server.start();
  cleanups.push(() => server.close());
  return { client: new DnsClient({ servers: [server.address()], timeout: 2000 }), asked };
}

const srv = (target: string, port: number, priority = 10, weight = 10, ttl = 120): DnsRecord => ({
  name: SRV,
  type: 'SRV',
  ttl,
  data: { priority, weight, port, target },
});
const a = (name: string, address: string, ttl = 120): DnsRecord => ({ name, type: 'A', ttl, data: address });

describe('lookupSrv', () => {
  it('matches additional records to targets by owner name, never by position', async () => {
    const { client, asked } = await serve({
      srv: [srv('one.env1.example', 1001), srv('two.env1.example', 1002)],
      // Out of order, with an unrelated record and case differences.
      glue: [a('unrelated.env1.example', '192.0.2.99'), a('TWO.env1.example', '192.0.2.2'), a('one.env1.example', '192.0.2.1'), a('one.env1.example', '192.0.2.11')],
    });
    const result = await lookupSrv(client, SRV);
    expect(result.status).toBe('found');
    expect(result.targets.map((t) => [t.port, t.addresses, t.addressSource])).toEqual([
      [1001, ['192.0.2.1', '192.0.2.11'], 'additional'],
      [1002, ['192.0.2.2'], 'additional'],
    ]);
    expect(asked).toEqual([`${SRV} SRV`]);
  });

  it('asks A and AAAA for targets without glue, once per target, following a CNAME', async () => {
    const { client, asked } = await serve({
      srv: [srv('alias.env1.example', 1001, 10), srv('alias.env1.example', 1002, 20), srv('none.env1.example', 1003, 30)],
      addresses: {
        'alias.env1.example': [
          { name: 'alias.env1.example', type: 'CNAME', ttl: 50, data: 'real.env1.example' },
          a('real.env1.example', '192.0.2.7', 40),
        ],
      },
    });
    const result = await lookupSrv(client, SRV);
    expect(result.targets.map((t) => [t.port, t.addresses, t.addressSource])).toEqual([
      [1001, ['192.0.2.7'], 'lookup'],
      [1002, ['192.0.2.7'], 'lookup'],
      [1003, [], 'none'],
    ]);
    expect(asked.filter((q) => q.startsWith('alias')).sort()).toEqual(['alias.env1.example A', 'alias.env1.example AAAA']);
    // The smallest TTL among the records used.
    expect(result.ttl).toBe(40);
  });

  it('leaves out targets of "." (service decidedly not available, RFC 2782)', async () => {
    const { client } = await serve({ srv: [srv('.', 0), srv('one.env1.example', 1001)], glue: [a('one.env1.example', '192.0.2.1')] });
    expect((await lookupSrv(client, SRV)).targets.map((t) => t.port)).toEqual([1001]);
  });

  it('reports NXDOMAIN and NODATA as authoritative "no backends", with the negative TTL (RFC 2308)', async () => {
    const missing = await serve({ nxdomain: true, soaTtl: 60 });
    expect(await lookupSrv(missing.client, SRV)).toEqual({ name: `${SRV}.`, status: 'nxdomain', targets: [], ttl: 30 });
    const empty = await serve({ srv: [], soaTtl: 10 });
    expect(await lookupSrv(empty.client, SRV)).toEqual({ name: `${SRV}.`, status: 'nodata', targets: [], ttl: 10 });
  });

  it('ignores SRV records of another owner', async () => {
    const { client } = await serve({ srv: [{ ...srv('one.env1.example', 1001), name: '_other._tcp.env1.example' }] });
    expect((await lookupSrv(client, SRV)).status).toBe('nodata');
  });
});
