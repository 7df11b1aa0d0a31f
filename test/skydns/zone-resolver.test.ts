import { describe, expect, it } from 'vitest';
import { lookupSrv } from '../../src/discovery/lookup-srv.js';
import { MemoryZoneStore } from '../../src/skydns/memory-zone-store.js';
import { createZoneResolver } from '../../src/skydns/zone-resolver.js';

const ZK = '/skydns/local/skydns/env1/_tcp/_zookeeper';
const store = MemoryZoneStore.fromValues({
  [`${ZK}/zk1`]: { host: '10.0.0.11', port: 31001 },
  [`${ZK}/zk2`]: { host: '10.0.0.12', port: 31002, weight: 50 },
  [`${ZK}/zk3`]: { host: '10.0.0.13', port: 31003, priority: 20 },
});

describe('createZoneResolver', () => {
  it('gives lookupSrv the answer srvlink dns would give, glue included', async () => {
    const result = await lookupSrv(createZoneResolver({ zones: ['skydns.local.'], store }), '_zookeeper._tcp.env1.skydns.local');
    expect(result.status).toBe('found');
    expect(result.ttl).toBe(300);
    expect(result.targets.map((t) => [t.priority, t.weight, t.port, t.addresses, t.addressSource])).toEqual([
      [10, 66, 31001, ['10.0.0.11'], 'additional'],
      [10, 33, 31002, ['10.0.0.12'], 'additional'],
      [20, 100, 31003, ['10.0.0.13'], 'additional'],
    ]);
  });

  it('reports a missing service as NXDOMAIN and refuses names outside its zones', async () => {
    const resolver = createZoneResolver({ zones: ['skydns.local.'], store });
    expect((await lookupSrv(resolver, '_nosuch._tcp.env1.skydns.local')).status).toBe('nxdomain');
    expect((await resolver.query('example.com', 'A')).rcode).toBe(5);
  });

  it('fails while its store cannot vouch for its data', async () => {
    const resolver = createZoneResolver({ zones: ['skydns.local.'], store, unavailable: () => 'etcd is unreachable' });
    await expect(lookupSrv(resolver, '_zookeeper._tcp.env1.skydns.local')).rejects.toMatchObject({ code: 'ERR_ZONE_UNAVAILABLE' });
  });
});
