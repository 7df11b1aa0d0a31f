/**
 * The artifact as PID 1 of a "container" with peers: the cluster DNS
 * (dnsmasq), a backend and etcd run in a namespace of their own; srvlink
 * joins its network and mount namespaces and is PID 1 of its own PID
 * namespace, started as the base image's ENTRYPOINT starts it.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { NETNS_UNAVAILABLE, createNamespace, startDnsmasqIn, type Namespace } from '../helpers/netns.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';
import { ensureArtifact, spawnPid1 } from './artifact.js';

const CLUSTER_DNS = '127.0.0.2';
const BACKEND_PORT = 31001;

/** A namespace dressed as a container: an address beside loopback (for getaddrinfo's AI_ADDRCONFIG), its own resolv.conf naming the cluster DNS. */
async function container(): Promise<{ ns: Namespace; dir: string }> {
  const ns = await createNamespace();
  await ns.addAddress('10.99.255.1/32');
  await ns.addAddress(`${CLUSTER_DNS}/32`);
  const dir = tempDir();
  writeFileSync(join(dir, 'resolv.conf'), `nameserver ${CLUSTER_DNS}\n`);
  await ns.bindMount(join(dir, 'resolv.conf'), '/etc/resolv.conf');
  return { ns, dir };
}

async function startBackend(ns: Namespace): Promise<void> {
  const backend = ns.spawn('node', ['-e', `require('net').createServer((s) => s.end('zk-backend\\n')).listen(${BACKEND_PORT}, '127.0.0.1', () => console.log('ready'))`]);
  await new Promise<void>((resolve, reject) => {
    backend.stdout?.once('data', () => resolve());
    backend.once('exit', (code) => reject(new Error(`backend exited with ${code}`)));
  });
}

/** etcd (Debian's etcd-server) inside the namespace, on its own 127.0.0.1:2379. */
async function startEtcdIn(ns: Namespace, dataDir: string): Promise<(args: string[]) => Promise<string>> {
  const etcd = ns.spawn('etcd', [
    '--name=m0',
    `--data-dir=${dataDir}`,
    '--listen-client-urls=http://127.0.0.1:2379',
    '--advertise-client-urls=http://127.0.0.1:2379',
    '--listen-peer-urls=http://127.0.0.1:2380',
    '--initial-advertise-peer-urls=http://127.0.0.1:2380',
    '--initial-cluster=m0=http://127.0.0.1:2380',
  ]);
  etcd.stderr?.resume();
  const etcdctl = async (args: string[]): Promise<string> => {
    const result = await ns.exec('etcdctl', ['--endpoints=http://127.0.0.1:2379', '--command-timeout=5s', ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
    if (result.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  };
  await waitFor(
    async () => {
      try {
        await etcdctl(['endpoint', 'health']);
        return true;
      } catch {
        return false;
      }
    },
    { what: 'etcd to serve', timeout: 30_000, interval: 100 },
  );
  return etcdctl;
}

describe.skipIf(NETNS_UNAVAILABLE !== undefined)(`the artifact as PID 1 in a container${NETNS_UNAVAILABLE ? ` (skipped: ${NETNS_UNAVAILABLE})` : ''}`, () => {
  beforeAll(() => ensureArtifact(), 300_000);

  it('leads a legacy client from an alias, through the stub on 127.0.0.1:53, to a backend found by SRV', async () => {
    const { ns, dir } = await container();
    await startBackend(ns);
    await startDnsmasqIn(ns, {
      listen: { host: CLUSTER_DNS, port: 53 },
      srv: [{ name: '_zookeeper._tcp.env1.skydns.local', target: 'zk1.env1.skydns.local', port: BACKEND_PORT, priority: 10, weight: 10 }],
      hosts: [{ name: 'zk1.env1.skydns.local', address: '127.0.0.1' }],
    });
    const config = join(dir, 'srvlink.yaml');
    writeFileSync(
      config,
      [
        'domain: env1.skydns.local',
        'map:',
        '  - {listen: "127.0.0.1:2181", service: zookeeper, aliases: [zk-legacy]}',
        'write-resolv-conf: true',
        'dns-timeout: 1s',
        '',
      ].join('\n'),
    );
    // The legacy client: the name it always used, through glibc's resolver
    // (resolv.conf now names the stub), then a plain TCP connection.
    const client = 'getent hosts zk-legacy && exec 3<>/dev/tcp/zk-legacy/2181 && head -1 <&3';
    const srvlink = spawnPid1(['run', '--config', config, '--', 'bash', '-c', client], { joinNamespaceOf: ns.pid });
    expect(await srvlink.exited).toBe(0);
    expect(srvlink.stdout()).toMatch(/^127\.0\.0\.1\s+zk-legacy/m);
    expect(srvlink.stdout()).toContain('zk-backend');
    expect(srvlink.logs.find((l) => l.msg === 'dns stub listening')).toMatchObject({ address: '127.0.0.1:53' });
  });

  it("registers the app once its check passes, and withdraws the key on SIGTERM before the app has exited", async () => {
    const { ns, dir } = await container();
    const etcdctl = await startEtcdIn(ns, join(dir, 'etcd'));
    const config = join(dir, 'srvlink.yaml');
    writeFileSync(
      config,
      [
        'domain: env1.skydns.local',
        'discovery: static',
        'map: ["2181=zookeeper"]',
        'backend: ["zookeeper=127.0.0.1:31001"]',
        'etcd: ["http://127.0.0.1:2379"]',
        // An exec check: a command Node spawns while the reaper runs, whose status Node must still see.
        `register: ["web:8080:host=10.99.255.1:check-interval=100ms:check=exec:test -e ${dir}/ready"]`,
        '',
      ].join('\n'),
    );
    // Ready when the test says so; on SIGTERM takes two seconds to finish.
    const app = `trap 'echo TERM > ${dir}/term; sleep 2; echo done > ${dir}/done; exit 0' TERM; echo up > ${dir}/up; while :; do sleep 0.05; done`;
    const srvlink = spawnPid1(['run', '--config', config, '--', 'sh', '-c', app], { joinNamespaceOf: ns.pid });
    const keys = async (): Promise<string[]> => (await etcdctl(['get', '--prefix', '/skydns/', '--keys-only'])).split('\n').filter((l) => l !== '');
    await waitFor(() => existsSync(join(dir, 'up')), { what: 'the app to start' });
    // Ready once the registration has run its first check, which fails until the app is ready: no key yet.
    await srvlink.waitForLog((l) => l.msg === 'srvlink run ready');
    expect(await keys()).toEqual([]);
    writeFileSync(join(dir, 'ready'), '');
    await waitFor(async () => (await keys()).length === 1, { what: 'the key to appear', interval: 100 });
    expect((await keys())[0]).toMatch(/^\/skydns\/local\/skydns\/env1\/_tcp\/_web\//);
    expect(srvlink.logs.some((l) => l.msg === 'health check passing')).toBe(true);

    await srvlink.signal('SIGTERM');
    await waitFor(async () => (await keys()).length === 0, { what: 'the key to go', interval: 50 });
    // Gone while the app is still finishing its work.
    expect(existsSync(join(dir, 'done'))).toBe(false);
    expect(srvlink.logs.some((l) => l.msg === 'command exited')).toBe(false);
    expect(await srvlink.exited).toBe(0);
    expect(existsSync(join(dir, 'term'))).toBe(true);
    expect(existsSync(join(dir, 'done'))).toBe(true);
  });
});
