/**
 * One bad etcd key must not fail a whole service: `srvlink dns --etcd` with a
 * real etcd, asked with dig.
 */
import { describe, expect, it } from 'vitest';
import { parseHostPort } from '../../src/core/host-port.js';
import { dig } from '../helpers/dig.js';
import { startEtcd } from '../helpers/etcd.js';
import { spawnSrvlink } from '../helpers/srvlink-process.js';

const SRV = '_pg._tcp.env1.skydns.local';
const KEY = '/skydns/local/skydns/env1/_tcp/_pg';

describe('srvlink dns --etcd with a key that is not a DNS label', () => {
  it('skips and counts the bad instance and answers the rest of the service', async () => {
    const etcd = await startEtcd();
    const long = 'x'.repeat(70);
    for (const [key, value] of [
      [`${KEY}/pg1`, '{"host":"10.0.0.1","port":5432}'],
      [`${KEY}/${long}`, '{"host":"10.0.0.2","port":5432}'],
      [`${KEY}/${'a'.repeat(60)}/${'b'.repeat(60)}/${'c'.repeat(60)}/${'d'.repeat(60)}`, '{"host":"10.0.0.3","port":5432}'],
    ] as const) {
      expect((await etcd.etcdctl(['put', key, value])).code).toBe(0);
    }
    const proc = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--etcd', etcd.endpoints.join(',')]);
    const listening = await proc.waitForLog((l) => l.msg === 'dns server listening');
    const server = parseHostPort(String(listening.address), 'address');

    const srv = await dig(server, SRV, 'SRV');
    expect(srv.status).toBe('NOERROR');
    expect(srv.answer.map((r) => r.data)).toEqual(['10 100 5432 pg1._pg._tcp.env1.skydns.local.']);
    const loaded = await proc.waitForLog((l) => l.msg === 'etcd zone loaded');
    expect(loaded.malformed).toBe(2);
    const skipped = proc.logs.filter((l) => l.msg === 'skipping malformed skydns record').map((l) => l.key);
    expect(skipped).toHaveLength(2);
    expect(skipped).toContain(`${KEY}/${long}`);

    // Added later, through the watch: skipped and counted the same way, the service still answers.
    expect((await etcd.etcdctl(['put', `${KEY}/${'y'.repeat(64)}`, '{"host":"10.0.0.4","port":5432}'])).code).toBe(0);
    await proc.waitForLog((l) => l.msg === 'skipping malformed skydns record' && String(l.key).endsWith('y'.repeat(64)));
    expect((await dig(server, SRV, 'SRV')).answer.map((r) => r.data)).toEqual(['10 100 5432 pg1._pg._tcp.env1.skydns.local.']);
    expect((await dig(server, `pg1._pg._tcp.env1.skydns.local`, 'A')).answer.map((r) => r.data)).toEqual(['10.0.0.1']);
  });
});
