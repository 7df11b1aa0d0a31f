/**
 * No REFUSED is silent: `srvlink run` warns at start when it has no upstream
 * left, every refusal is counted by reason, and the first of each reason is
 * logged (then only counted). dig is the client; dnsmasq the cluster DNS.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseHostPort } from '../../src/core/host-port.js';
import { Rcode, createReply } from '../../src/dns/codec.js';
import { dig } from '../helpers/dig.js';
import { startDnsmasq } from '../helpers/dnsmasq.js';
import { spawnSrvlink } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { aRecord, ask, query, resolverFor, startStub, startUpstream } from '../helpers/stub-fixtures.js';

describe('refusals', () => {
  it('counts the stub’s refusals by reason: no upstream, not allowed, unsupported', async () => {
    const cluster = await startUpstream((q) => createReply(q, { answers: [aRecord(q.questions[0]?.name ?? '', '10.0.0.9')] }));
    const open = await startStub({ clusterDomain: 'skydns.local', clusterResolver: resolverFor(cluster.address) });
    expect((await ask(open.address(), query('www.example.org'))).rcode).toBe(Rcode.REFUSED);
    expect((await ask(open.address(), query('www.example.net'))).rcode).toBe(Rcode.REFUSED);
    expect((await ask(open.address(), query('version.bind', 'TXT', { questions: [{ name: 'version.bind', type: 'TXT', class: 'CH' }] }))).rcode).toBe(Rcode.REFUSED);
    expect((await ask(open.address(), query('zk.skydns.local'))).rcode).toBe(Rcode.NOERROR);
    expect(open.stubStats.refusals).toEqual({ noUpstream: 2, notAllowed: 0, outsideZone: 0, unsupported: 1 });
    expect(open.stubStats.refused).toBe(3);

    const closed = await startStub({ allowFrom: ['10.0.0.0/8'], clusterDomain: 'skydns.local', clusterResolver: resolverFor(cluster.address) });
    expect((await ask(closed.address(), query('zk.skydns.local'))).rcode).toBe(Rcode.REFUSED);
    expect(closed.stubStats.refusals.notAllowed).toBe(1);
    expect(cluster.count('zk.skydns.local')).toBe(1);
  });

  it('srvlink run with no upstream left warns at start, and logs the first refusal of a reason only', async () => {
    const dnsmasq = await startDnsmasq({ srv: [{ name: '_zookeeper._tcp.env1.skydns.local', target: 'zk1.env1.skydns.local', port: 2181 }] });
    // A resolv.conf with no nameserver but the stub: nothing to send other names to.
    const resolvConf = join(tempDir(), 'resolv.conf');
    writeFileSync(resolvConf, 'search env1.skydns.local\n');
    const run = spawnSrvlink([
      'run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=zookeeper', '--backend', 'zookeeper=127.0.0.1:1',
      '--dns-listen', '127.0.0.1:0', '--resolv-conf', resolvConf, '--cluster-dns', `127.0.0.1:${dnsmasq.address.port}`,
    ]);
    const stub = parseHostPort(String((await run.waitForLog((l) => l.msg === 'dns stub listening')).address), 'address');
    const warning = await run.waitForLog((l) => l.msg.startsWith('no upstream dns'));
    expect(warning).toMatchObject({ level: 'warn', resolvConf });

    for (const name of ['www.example.org', 'www.example.net', 'www.example.com']) {
      expect((await dig(stub, name, 'A')).status).toBe('REFUSED');
    }
    // Cluster names still resolve through dnsmasq.
    expect((await dig(stub, '_zookeeper._tcp.env1.skydns.local', 'SRV')).answer.map((r) => r.data)).toEqual(['0 0 2181 zk1.env1.skydns.local.']);
    const refused = run.logs.filter((l) => l.msg.startsWith('dns query refused'));
    expect(refused).toEqual([expect.objectContaining({ level: 'warn', reason: 'noUpstream', name: 'www.example.org' })]);
  });

  it('srvlink dns counts names outside its zones, logs the first, and reports the counts when it stops', async () => {
    const file = join(tempDir(), 'records.yaml');
    writeFileSync(file, '/skydns/local/skydns/env1/_tcp/_zk/a: {host: 10.0.0.1, port: 1}\n');
    const proc = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--records', file]);
    const address = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'dns server listening')).address), 'address');
    expect((await dig(address, 'www.example.org', 'A')).status).toBe('REFUSED');
    expect((await dig(address, 'www.example.net', 'A')).status).toBe('REFUSED');
    expect(proc.logs.filter((l) => l.msg.startsWith('dns query refused'))).toEqual([
      expect.objectContaining({ level: 'info', reason: 'outsideZone', name: 'www.example.org' }),
    ]);
    expect(await proc.stop()).toBe(0);
    const stopping = proc.logs.find((l) => l.msg === 'dns server stopping');
    expect(stopping?.refused).toEqual({ noUpstream: 0, notAllowed: 0, outsideZone: 2, unsupported: 0 });
  });
});
