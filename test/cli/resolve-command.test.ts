import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { formatHostPort } from '../../src/core/host-port.js';
import type { ResolveReport } from '../../src/cli/resolve-command.js';
import { startDnsmasq } from '../helpers/dnsmasq.js';
import { unusedPort } from '../helpers/tcp-backends.js';
import { runSrvlink, spawnSrvlink } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';

const SRV = '_zookeeper._tcp.env1.skydns.local';

async function resolveJson(args: string[]): Promise<ResolveReport> {
  const result = await runSrvlink(['resolve', ...args, '--json']);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as ResolveReport;
}

describe('srvlink resolve', () => {
  it('resolves through dnsmasq: SRV records, glue matched by owner name, A queries for the rest', async () => {
    const dnsmasq = await startDnsmasq({
      srv: [
        { name: SRV, target: 'zk1.env1.skydns.local', port: 31001, priority: 10, weight: 60 },
        { name: SRV, target: 'zk2.env1.skydns.local', port: 31002, priority: 10, weight: 30 },
        { name: SRV, target: 'zk3.env1.skydns.local', port: 31003, priority: 20, weight: 10 },
      ],
      // zk1 and zk2 get glue (dnsmasq adds it for --host-record targets); zk3 only an --address A record.
      hosts: [
        { name: 'zk1.env1.skydns.local', address: '10.0.0.11' },
        { name: 'zk2.env1.skydns.local', address: '10.0.0.12' },
      ],
      extraArgs: ['--address=/zk3.env1.skydns.local/10.0.0.13'],
    });
    const report = await resolveJson(['zookeeper', '--domain', 'env1.skydns.local', '--cluster-dns', formatHostPort(dnsmasq.address)]);
    expect(report.srvName).toBe(`${SRV}.`);
    expect(report.records.map((r) => [r.priority, r.weight, r.port, r.target, r.addresses, r.addressSource])).toEqual([
      [10, 60, 31001, 'zk1.env1.skydns.local.', ['10.0.0.11'], 'additional'],
      [10, 30, 31002, 'zk2.env1.skydns.local.', ['10.0.0.12'], 'additional'],
      [20, 10, 31003, 'zk3.env1.skydns.local.', ['10.0.0.13'], 'lookup'],
    ]);
    // Priority 10 always before priority 20, whatever the random draw.
    expect(report.failoverOrder.map((b) => b.priority)).toEqual([10, 10, 20]);
    expect(report.failoverOrder[2]).toMatchObject({ address: '10.0.0.13', port: 31003 });
  });

  it('resolves through srvlink dns and prints a readable table', async () => {
    const file = join(tempDir(), 'records.yaml');
    writeFileSync(
      file,
      [
        '/skydns/local/skydns/env1/_tcp/_zookeeper/zk1: {host: 10.0.0.11, port: 31001}',
        '/skydns/local/skydns/env1/_tcp/_zookeeper/zk2: {host: 10.0.0.12, port: 31002, weight: 50}',
        '/skydns/local/skydns/env1/_tcp/_zookeeper/zk3: {host: 10.0.0.13, port: 31003, priority: 20}',
        '/skydns/local/skydns/env2/_tcp/_postgres/pg1: {host: 10.0.1.5, port: 5432}',
      ].join('\n'),
    );
    const dns = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--records', file]);
    const server = String((await dns.waitForLog((l) => l.msg === 'dns server listening')).address);

    const table = await runSrvlink(['resolve', 'zookeeper', '--domain', 'env1.skydns.local', '--cluster-dns', server]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^_zookeeper\._tcp\.env1\.skydns\.local\. via 127\.0\.0\.1:\d+: 3 record\(s\), ttl 300s/);
    expect(table.stdout).toMatch(/10 +66 +31001 +zk1\._zookeeper\._tcp\.env1\.skydns\.local\. +10\.0\.0\.11 \(additional section\)/);
    expect(table.stdout).toMatch(/10 +33 +31002 +zk2\._zookeeper\._tcp\.env1\.skydns\.local\. +10\.0\.0\.12/);
    expect(table.stdout).toMatch(/20 +100 +31003 +zk3\._zookeeper\._tcp\.env1\.skydns\.local\. +10\.0\.0\.13/);
    expect(table.stdout).toMatch(/3\. 10\.0\.0\.13:31003 +zk3\./);

    // Another environment by NAME.ENV, through the environment variables.
    const other = await runSrvlink(['resolve', 'postgres.env2', '--json'], { env: { SRVLINK_DOMAIN: 'env1.skydns.local', SRVLINK_CLUSTER_DNS: server } });
    expect(other.code).toBe(0);
    expect((JSON.parse(other.stdout) as ResolveReport).records).toEqual([
      expect.objectContaining({ port: 5432, target: 'pg1._postgres._tcp.env2.skydns.local.', addresses: ['10.0.1.5'] }),
    ]);

    const missing = await runSrvlink(['resolve', 'nosuch', '--domain', 'env1.skydns.local', '--cluster-dns', server]);
    expect(missing.code).toBe(1);
    expect(missing.messages).toBe(`cannot resolve "_nosuch._tcp.env1.skydns.local." SRV via ${server}: no such name (NXDOMAIN)`);
  });

  it('fails with exit code 1 and one line when the server never answers', async () => {
    const silent = createSocket('udp4');
    silent.bind(0, '127.0.0.1');
    await once(silent, 'listening');
    onTestFinished(() => void silent.close());
    const server = formatHostPort({ host: '127.0.0.1', port: silent.address().port });
    const result = await runSrvlink(['resolve', SRV, '--cluster-dns', server, '--timeout', '300ms']);
    expect(result.code).toBe(1);
    expect(result.lines).toEqual([expect.objectContaining({ level: 'error', command: 'resolve', exitCode: 1 })]);
    expect(result.messages).toMatch(/^cannot resolve "_zookeeper\._tcp\.env1\.skydns\.local\." SRV/);
    expect(result.messages).toContain(server);
  });

  it('fails with exit code 1 and one line when nothing listens on the port', async () => {
    // A privileged port no test binds: nothing answers there, over UDP either.
    const server = `127.0.0.1:${await unusedPort()}`;
    const result = await runSrvlink(['resolve', SRV, '--cluster-dns', server, '--timeout', '1s']);
    expect(result.code).toBe(1);
    expect(result.lines).toHaveLength(1);
    expect(result.messages).toContain(server);
  });

  it.each([
    [['resolve', 'zookeeper'], /invalid service "zookeeper": no --domain/],
    [['resolve', 'a.b.c'], /invalid service "a\.b\.c": too many labels/],
    [['resolve', SRV, '--cluster-dns', 'not a host'], /invalid --cluster-dns "not a host"/],
    [['resolve', SRV, '--timeout', 'soon'], /invalid --timeout "soon"/],
    [['resolve'], /missing required argument 'service'/],
  ])('exits 2 for bad usage: %j', async (args, message) => {
    const result = await runSrvlink(args);
    expect(result.messages).toMatch(message);
    expect(result.code).toBe(2);
  });
});
