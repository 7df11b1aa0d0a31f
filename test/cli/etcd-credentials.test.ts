/**
 * An `--etcd` URL with `user:password@` works as etcd auth and is never
 * written verbatim: checked on the real processes' stderr.
 */
import { describe, expect, it } from 'vitest';
import { parseHostPort } from '../../src/core/host-port.js';
import { dig } from '../helpers/dig.js';
import { startEtcd } from '../helpers/etcd.js';
import { runSrvlink, spawnSrvlink } from '../helpers/srvlink-process.js';

const SECRET = 's3cret-pw';

describe('etcd credentials in the --etcd URL', () => {
  it('authenticates with them and strips them from every line on stderr', async () => {
    const etcd = await startEtcd();
    const endpoint = etcd.endpoints[0] as string;
    const withCredentials = (password: string): string => endpoint.replace('://', `://root:${password}@`);
    expect((await etcd.etcdctl(['user', 'add', `root:${SECRET}`])).code).toBe(0);
    expect((await etcd.etcdctl(['auth', 'enable'])).code).toBe(0);
    expect((await etcd.etcdctl(['--user', `root:${SECRET}`, 'put', '/skydns/local/skydns/env1/_tcp/_pg/pg1', '{"host":"10.0.0.1","port":5432}'])).code).toBe(0);

    const dns = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--etcd', withCredentials(SECRET)]);
    const listening = await dns.waitForLog((l) => l.msg === 'dns server listening');
    const srv = await dig(parseHostPort(String(listening.address), 'address'), '_pg._tcp.env1.skydns.local', 'SRV');
    expect(srv.answer.map((r) => r.data)).toEqual(['10 100 5432 pg1._pg._tcp.env1.skydns.local.']);
    expect(JSON.stringify(listening)).toContain(`etcd ${endpoint}`);

    // A wrong password: the failures are logged, the password is not.
    const refused = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--etcd', withCredentials('wrong-pw')]);
    const failing = await refused.waitForLog((l) => l.msg === 'cannot read the zone from etcd yet, retrying');
    expect(String(failing.error)).not.toBe('');

    // A usage error that quotes the URL.
    const bad = await runSrvlink(['dns', '--etcd', `http://root:${SECRET}@localhost`]);
    expect(bad.code).toBe(2);
    expect(bad.messages).toContain('invalid --etcd "http://localhost"');

    for (const text of [JSON.stringify(dns.logs), JSON.stringify(refused.logs), bad.stderr]) {
      expect(text).not.toMatch(/s3cret-pw|wrong-pw/);
    }
    expect([...dns.logs, ...refused.logs].filter((l) => l.level === 'raw')).toEqual([]);
  });
});
