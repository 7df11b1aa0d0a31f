/**
 * The DNS stub as a container sees it: `srvlink run` inside private network,
 * mount and PID namespaces, bound to that namespace's real 127.0.0.1:53, with
 * a bind-mounted resolv.conf. The cluster DNS and "the internet's resolver"
 * are dnsmasq instances on other loopback addresses of the same namespace.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HostPort } from '../../src/core/host-port.js';
import { digArgs, parseDigOutput, type DigResult } from '../helpers/dig.js';
import { NETNS_UNAVAILABLE, connectNamespaces, createNamespace, startDnsmasqIn, type Namespace } from '../helpers/netns.js';
import { spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const CLUSTER_DNS = '127.0.0.2';
const INTERNET_DNS = '127.0.0.3';
const BACKEND_PORT = 31001;

async function digIn(ns: Namespace, server: HostPort, name: string, type: string, extra: string[] = []): Promise<DigResult> {
  const result = await ns.exec('dig', digArgs(server, name, type, extra));
  expect(result.stderr).toBe('');
  return parseDigOutput(result.stdout);
}

/** A namespace dressed as a container: lo up, a non-loopback address (as eth0 would give), a resolv.conf of our own. */
async function container(resolvConf: string): Promise<{ ns: Namespace; resolvConfFile: string }> {
  const ns = await createNamespace();
  // getaddrinfo's AI_ADDRCONFIG (the default of most apps) ignores IPv4 when the
  // only address is 127.0.0.1; a real container has eth0.
  await ns.addAddress('10.99.255.1/32');
  for (const address of [CLUSTER_DNS, INTERNET_DNS]) await ns.addAddress(`${address}/32`);
  const resolvConfFile = join(tempDir(), 'resolv.conf');
  writeFileSync(resolvConfFile, resolvConf);
  await ns.bindMount(resolvConfFile, '/etc/resolv.conf');
  return { ns, resolvConfFile };
}

/** The cluster (SRV for zookeeper, an A record) and "the internet" (example.com), both dnsmasq. */
async function startWorld(ns: Namespace): Promise<{ stopInternet: () => Promise<void> }> {
  const backend = ns.spawn('node', ['-e', `require('net').createServer((s) => s.end('zk-backend\\n')).listen(${BACKEND_PORT}, '127.0.0.1', () => console.log('ready'))`]);
  await new Promise<void>((resolve, reject) => {
    backend.stdout?.once('data', () => resolve());
    backend.once('exit', (code) => reject(new Error(`backend exited with ${code}`)));
  });
  await startDnsmasqIn(ns, {
    listen: { host: CLUSTER_DNS, port: 53 },
    srv: [{ name: '_zookeeper._tcp.env1.skydns.local', target: 'zk1.env1.skydns.local', port: BACKEND_PORT, priority: 10, weight: 10 }],
    hosts: [
      { name: 'zk1.env1.skydns.local', address: '127.0.0.1' },
      { name: 'db.env1.skydns.local', address: '127.0.0.9' },
    ],
  });
  // TTL 1: the stub's cached copy expires quickly, so the stale path can be seen.
  const internet = await startDnsmasqIn(ns, { listen: { host: INTERNET_DNS, port: 53 }, localZones: [], ttl: 1, extraArgs: ['--address=/example.com/192.0.2.10'] });
  return { stopInternet: internet.stop };
}

function runIn(ns: Namespace, args: string[], map = '2181=zookeeper'): SrvlinkProcess {
  return spawnSrvlink(['run', '--domain', 'env1.skydns.local', '--map', map, '--dns-timeout', '1s', ...args], {
    spawner: (command, commandArgs, env) => ns.spawn(command, commandArgs, { env }),
  });
}

const STUB: HostPort = { host: '127.0.0.1', port: 53 };

describe.skipIf(NETNS_UNAVAILABLE !== undefined)(`the DNS stub in a container${NETNS_UNAVAILABLE ? ` (skipped: ${NETNS_UNAVAILABLE})` : ''}`, () => {
  it('leads a legacy app from a plain name to a backend found by SRV, and keeps other names working', async () => {
    const { ns } = await container('nameserver 127.0.0.1\nsearch env1.skydns.local\n');
    const { stopInternet } = await startWorld(ns);
    const srvlink = runIn(ns, ['--cluster-dns', CLUSTER_DNS, '--upstream', INTERNET_DNS]);
    await srvlink.waitForLog((l) => l.msg === 'srvlink run ready');

    for (const transport of [[], ['+tcp']]) {
      for (const name of ['zookeeper', 'ZooKeeper.env1.skydns.local']) {
        const a = await digIn(ns, STUB, name, 'A', transport);
        expect(a.status).toBe('NOERROR');
        expect(a.answer.map((r) => [r.name, r.type, r.data])).toEqual([[`${name}.`, 'A', '127.0.0.1']]);
      }
      const aaaa = await digIn(ns, STUB, 'zookeeper', 'AAAA', transport);
      expect([aaaa.status, aaaa.answer]).toEqual(['NOERROR', []]);
    }

    // getaddrinfo, as every unmodified app resolves names.
    const getent = await ns.exec('getent', ['hosts', 'zookeeper']);
    expect(getent.stdout).toMatch(/^127\.0\.0\.1\s/);
    // The legacy app: connects to zookeeper:2181 by name and reaches the backend the SRV record names.
    const app = await ns.exec('node', ['-e', "const s = require('net').connect(2181, 'zookeeper'); s.on('data', (d) => process.stdout.write(String(d)));"]);
    expect(app.stdout).toBe('zk-backend\n');

    // The cluster domain goes to the cluster DNS, everything else to the upstream.
    expect((await digIn(ns, STUB, 'db.env1.skydns.local', 'A')).answer.map((r) => r.data)).toEqual(['127.0.0.9']);
    expect((await digIn(ns, STUB, 'www.example.com', 'A')).answer.map((r) => r.data)).toEqual(['192.0.2.10']);
    expect((await ns.exec('getent', ['hosts', 'www.example.com'])).stdout).toMatch(/^192\.0\.2\.10\s/);

    // The upstream goes away: what was answered before is served stale (TTL 30, RFC 8767), the rest is SERVFAIL.
    await stopInternet();
    await waitFor(
      async () => {
        const stale = await digIn(ns, STUB, 'www.example.com', 'A');
        return stale.status === 'NOERROR' && stale.answer[0]?.ttl === 30 && stale.answer[0]?.data === '192.0.2.10';
      },
      { what: 'a stale answer for www.example.com' },
    );
    const unknown = await digIn(ns, STUB, 'new.example.org', 'A', ['+tries=1']);
    expect(unknown.status).toBe('SERVFAIL');
  });

  it('--write-resolv-conf points the container at the stub and keeps the old nameservers as upstreams', async () => {
    const { ns, resolvConfFile } = await container(`nameserver ${INTERNET_DNS}\noptions ndots:1 timeout:2\n`);
    await startWorld(ns);
    const srvlink = runIn(ns, ['--cluster-dns', CLUSTER_DNS, '--write-resolv-conf']);
    const stubLine = await srvlink.waitForLog((l) => l.msg === 'dns stub listening');
    expect(stubLine.upstream).toEqual([`${INTERNET_DNS}:53`]);
    await srvlink.waitForLog((l) => l.msg === 'srvlink run ready');

    const written = (await ns.exec('cat', ['/etc/resolv.conf'])).stdout;
    expect(written.split('\n').filter((line) => !line.startsWith('#'))).toEqual(['nameserver 127.0.0.1', 'search env1.skydns.local', 'options ndots:1 timeout:2', '']);
    // The bind mount was rewritten in place: the host-side file shows it too.
    expect(readFileSync(resolvConfFile, 'utf8')).toBe(written);

    expect((await ns.exec('getent', ['hosts', 'zookeeper'])).stdout).toMatch(/^127\.0\.0\.1\s/);
    expect((await ns.exec('getent', ['hosts', 'www.example.com'])).stdout).toMatch(/^192\.0\.2\.10\s/);
  });

  it('refuses clients outside --allow-from, and answers the container network by default', async () => {
    const server = await createNamespace({ name: 'stub' });
    const client = await createNamespace({ name: 'client' });
    await connectNamespaces(server, client, { aAddress: '10.99.0.1/24', bAddress: '10.99.0.2/24' });
    const common = ['--discovery', 'static', '--backend', 'zookeeper=127.0.0.1:1', '--dns-listen'];
    const strict = runIn(server, [...common, '10.99.0.1:53', '--allow-from', '10.99.0.3/32', '--allow-from', '127.0.0.0/8']);
    await strict.waitForLog((l) => l.msg === 'srvlink run ready');
    const relaxed = runIn(server, [...common, '10.99.0.1:5353'], '2182=zookeeper');
    await relaxed.waitForLog((l) => l.msg === 'srvlink run ready');

    expect((await digIn(client, { host: '10.99.0.1', port: 53 }, 'zookeeper', 'A')).status).toBe('REFUSED');
    const allowed = await digIn(client, { host: '10.99.0.1', port: 5353 }, 'zookeeper', 'A');
    expect(allowed.status).toBe('NOERROR');
    expect(allowed.answer.map((r) => r.data)).toEqual(['127.0.0.1']);
  });
});
