/**
 * Log lines a user reads right, from the real process: each says what
 * happened, once per cause, and never reads as the opposite.
 */
import { describe, expect, it } from 'vitest';
import { formatHostPort, parseHostPort } from '../../src/core/host-port.js';
import { adminGet, sample } from '../admin/admin-fixtures.js';
import { startDnsmasq } from '../helpers/dnsmasq.js';
import { startEtcd } from '../helpers/etcd.js';
import { runSrvlink, spawnSrvlink } from '../helpers/srvlink-process.js';
import { expectReset } from '../helpers/tcp-backends.js';
import { waitFor } from '../helpers/wait-for.js';

const KEY = '/skydns/local/skydns/env1/_tcp/_web/w1';

describe('log wording', () => {
  it('register: while etcd is down nothing reads as success; "registered" comes once the key is in place', async () => {
    const etcd = await startEtcd();
    const member = etcd.members[0];
    if (!member) throw new Error('no etcd member');
    await member.stop();
    const proc = spawnSrvlink(['register', '--etcd', member.endpoint, '--domain', 'env1.skydns.local', '--service', 'web', '--instance', 'w1', '--host', '127.0.0.1', '--port', '8080']);
    await proc.waitForLog((l) => l.msg === 'cannot register in etcd, retrying');
    const waiting = await proc.waitForLog((l) => l.msg.startsWith('not registered yet'));
    expect(waiting).toMatchObject({ level: 'info', msg: 'not registered yet: waiting for etcd, the key is put as soon as it answers', key: KEY });
    const before = proc.logs.map((l) => l.msg);
    expect(before[before.indexOf('cannot register in etcd, retrying') - 1]).toBe('registration starting');
    expect(before.filter((msg) => /\bregistered\b|started/.test(msg) && !msg.startsWith('not registered yet'))).toEqual([]);

    await member.start();
    await proc.waitForLog((l) => l.msg === 'registered');
    // The line comes after the put: the key is there.
    expect((await etcd.etcdctl(['get', '--keys-only', KEY])).stdout.trim()).toBe(KEY);
    expect(proc.logs.filter((l) => l.msg === 'registered')).toHaveLength(1);
    expect(await proc.stop()).toBe(0);
  });

  it('--map SERVICE=PORT says the form is PORT=SERVICE', async () => {
    const result = await runSrvlink(['run', '--domain', 'env1.skydns.local', '--map', 'postgres=5432', '--dns-listen', 'none']);
    expect(result.code).toBe(2);
    expect(result.lines).toEqual([
      expect.objectContaining({
        level: 'error',
        msg: 'invalid --map "postgres=5432": "postgres" is not a port; expected PORT=SERVICE (or ADDR:PORT=SERVICE), as in 5432=postgres',
      }),
    ]);
  });

  it('a service that does not exist: one line that says it once, then counted, not one per connection', async () => {
    // dnsmasq answers NXDOMAIN for names of its local zone it has no record for.
    const dnsmasq = await startDnsmasq({ hosts: [{ name: 'other.env1.skydns.local', address: '127.0.0.9' }] });
    const proc = spawnSrvlink([
      'run', '--domain', 'env1.skydns.local', '--cluster-dns', formatHostPort(dnsmasq.address), '--map', '127.0.0.1:0=missing',
      '--dns-listen', 'none', '--admin', '127.0.0.1:0',
    ]);
    const admin = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'admin endpoint listening')).address), 'admin');
    const listener = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'listening')).address), 'listener');
    const clients = 20;
    for (let i = 0; i < clients; i++) await expectReset(listener);
    const mapping = '_missing._tcp.env1.skydns.local.';
    await waitFor(async () => sample((await adminGet(admin, '/metrics')).body, 'srvlink_no_backend_closes_total', { mapping, reason: 'discovery' }) === clients, {
      what: `${clients} closes counted`,
    });
    const lines = proc.logs.filter((l) => l.msg.includes('no backends for'));
    expect(lines).toEqual([expect.objectContaining({ level: 'warn', msg: `no backends for "${mapping}": the name does not exist (NXDOMAIN)` })]);
    expect(proc.logs.filter((l) => l.msg.includes('cannot find backends'))).toEqual([]);
  });
});
