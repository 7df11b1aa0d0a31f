/**
 * srvlink as a sidecar container (images/README.md, uses 2 and 3): `srvlink
 * run` with the sidecar image's ENTRYPOINT arguments (every address, the
 * stub on :53) and no command, in a network namespace of its own. The
 * cluster (dnsmasq with the SRV record, the backend) is another namespace
 * that only the sidecar is linked to, so an app reaches the backend through
 * the sidecar or not at all. The app is unmodified clients: getaddrinfo
 * (`getent`), `socat` and `dig`.
 *
 *   cluster 10.99.0.2 ── 10.99.0.1 sidecar 10.99.1.1 ── 10.99.1.2 app        (allowed)
 *                                          10.99.2.1 ── 10.99.2.2 outsider   (not allowed)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { digArgs, parseDigOutput, type DigResult } from '../helpers/dig.js';
import { NETNS_UNAVAILABLE, connectNamespaces, createNamespace, startDnsmasqIn, type Namespace } from '../helpers/netns.js';
import { SRVLINK_MAIN, spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { sample } from '../admin/admin-fixtures.js';

const BACKEND_PORT = 31001;
const CLUSTER = '10.99.0.2';
const SIDECAR_TO_APP = '10.99.1.1';
const APP = '10.99.1.2';
const SIDECAR_TO_OUTSIDER = '10.99.2.1';
const OUTSIDER = '10.99.2.2';
/** The sidecar's own admin endpoint, on its own loopback. */
const ADMIN = '127.0.0.1:9053';

/** The sidecar image's ENTRYPOINT after the executable: `run --listen 0.0.0.0 --dns-listen 0.0.0.0:53`. */
function sidecarEntrypoint(): string[] {
  const containerfile = readFileSync(fileURLToPath(new URL('../../images/sidecar/Containerfile', import.meta.url)), 'utf8');
  const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(containerfile)?.[1] ?? '[]') as string[];
  expect(entrypoint.slice(0, 2)).toEqual(['/srvlink/srvlink', 'run']);
  return entrypoint.slice(1);
}

function file(text: string): string {
  const path = join(tempDir(), 'file');
  writeFileSync(path, text);
  return path;
}

async function digIn(ns: Namespace, server: string, name: string, extra: string[] = []): Promise<DigResult> {
  const result = await ns.exec('dig', digArgs({ host: server, port: 53 }, name, 'A', extra));
  expect(result.stderr).toBe('');
  return parseDigOutput(result.stdout);
}

/** What `socat` (a client we did not write) reads from HOST:PORT, resolving HOST with getaddrinfo; the exit code. */
async function connectIn(ns: Namespace, hostPort: string, shell = (command: string): string[] => ['sh', '-c', command]): Promise<{ code: number; out: string }> {
  const [command, ...args] = shell(`exec socat -t 10 -T 10 - TCP:${hostPort},connect-timeout=5 </dev/null`);
  const result = await ns.exec(command as string, args);
  return { code: result.code, out: result.stdout + result.stderr };
}

/** The cluster namespace (cluster DNS and a backend that says whom it sees), the sidecar namespace linked to it, and srvlink running there. */
async function startSidecar(): Promise<{ sidecar: Namespace; srvlink: SrvlinkProcess }> {
  const cluster = await createNamespace({ name: 'cluster' });
  const sidecar = await createNamespace({ name: 'sidecar' });
  await connectNamespaces(sidecar, cluster, { aAddress: '10.99.0.1/24', bAddress: `${CLUSTER}/24` });
  const backend = cluster.spawn('node', [
    '-e',
    `require('net').createServer((s) => s.end('zk-backend, client ' + s.remoteAddress + '\\n')).listen(${BACKEND_PORT}, '${CLUSTER}', () => console.log('ready'))`,
  ]);
  await new Promise<void>((resolve, reject) => {
    backend.stdout?.once('data', () => resolve());
    backend.once('exit', (code) => reject(new Error(`backend exited with ${code}`)));
  });
  await startDnsmasqIn(cluster, {
    listen: { host: CLUSTER, port: 53 },
    srv: [{ name: '_zookeeper._tcp.env1.skydns.local', target: 'zk1.env1.skydns.local', port: BACKEND_PORT, priority: 10, weight: 10 }],
    hosts: [{ name: 'zk1.env1.skydns.local', address: CLUSTER }],
  });
  // What the engine gives the sidecar container: its own resolv.conf.
  await sidecar.bindMount(file(`nameserver ${CLUSTER}\n`), '/etc/resolv.conf');
  // images/README.md, use 2: the image's ENTRYPOINT, then these arguments.
  const args = [...sidecarEntrypoint(), '--domain', 'env1.skydns.local', '--cluster-dns', CLUSTER, '--map', '2181=zookeeper', '--allow-from', '10.99.1.0/24', '--admin', ADMIN];
  const srvlink = spawnSrvlink(args, { spawner: (command, commandArgs, env) => sidecar.spawn(command, commandArgs, { env }) });
  await srvlink.waitForLog((l) => l.msg === 'srvlink run ready');
  return { sidecar, srvlink };
}

describe.skipIf(NETNS_UNAVAILABLE !== undefined)(`srvlink as a sidecar${NETNS_UNAVAILABLE ? ` (skipped: ${NETNS_UNAVAILABLE})` : ''}`, () => {
  it('serves an app sharing its network namespace on localhost:2181 and 127.0.0.1:53', async () => {
    const { sidecar } = await startSidecar();
    // The app's container: the sidecar's network namespace, a mount namespace and resolv.conf of its own (images/README.md, use 3).
    const resolvConf = file('nameserver 127.0.0.1\nsearch env1.skydns.local\n');
    const app = (command: string): string[] => ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', `mount --bind ${resolvConf} /etc/resolv.conf && ${command}`];

    expect(await connectIn(sidecar, 'localhost:2181', app)).toEqual({ code: 0, out: 'zk-backend, client 10.99.0.1\n' });
    // By name through the stub: the container itself is answered with loopback.
    const [command, ...args] = app('getent hosts zookeeper');
    expect((await sidecar.exec(command as string, args)).stdout).toMatch(/^127\.0\.0\.1\s+zookeeper/);
    expect(await connectIn(sidecar, 'zookeeper:2181', app)).toEqual({ code: 0, out: 'zk-backend, client 10.99.0.1\n' });
  });

  it('serves an app in another namespace by name (--link style): the stub answers with the address the app reached it at', async () => {
    const { sidecar } = await startSidecar();
    const app = await createNamespace({ name: 'app' });
    await connectNamespaces(sidecar, app, { aAddress: `${SIDECAR_TO_APP}/24`, bAddress: `${APP}/24` });
    // What `--link amb --dns <amb> --dns-search env1.skydns.local` gives the app's container.
    await app.bindMount(file(`nameserver ${SIDECAR_TO_APP}\nsearch env1.skydns.local\n`), '/etc/resolv.conf');
    await app.bindMount(file(`127.0.0.1 localhost\n${SIDECAR_TO_APP} amb\n`), '/etc/hosts');

    // The cluster is out of the app's reach: only the sidecar gets there.
    expect((await connectIn(app, `${CLUSTER}:${BACKEND_PORT}`)).code).not.toBe(0);
    // The same alias, per client: the app gets the sidecar's address on its network, the sidecar itself loopback; UDP and TCP.
    for (const transport of [[], ['+tcp']]) {
      const answer = await digIn(app, SIDECAR_TO_APP, 'zookeeper', transport);
      expect([answer.status, answer.answer.map((r) => r.data)]).toEqual(['NOERROR', [SIDECAR_TO_APP]]);
      expect((await digIn(sidecar, '127.0.0.1', 'zookeeper', transport)).answer.map((r) => r.data)).toEqual(['127.0.0.1']);
    }
    expect((await app.exec('getent', ['hosts', 'zookeeper'])).stdout).toMatch(new RegExp(`^${SIDECAR_TO_APP.replaceAll('.', '\\.')}\\s+zookeeper`));
    // The legacy app: zookeeper:2181 by name (the stub), amb:2181 by the link's hosts entry.
    for (const target of ['zookeeper:2181', 'amb:2181', 'zookeeper.env1.skydns.local:2181']) {
      expect(await connectIn(app, target)).toEqual({ code: 0, out: 'zk-backend, client 10.99.0.1\n' });
    }
    // Names of the cluster domain go on to the cluster DNS.
    expect((await digIn(app, SIDECAR_TO_APP, 'zk1.env1.skydns.local')).answer.map((r) => r.data)).toEqual([CLUSTER]);
  });

  it('refuses and counts the queries of a network outside --allow-from', async () => {
    const { sidecar, srvlink } = await startSidecar();
    const app = await createNamespace({ name: 'app' });
    await connectNamespaces(sidecar, app, { aAddress: `${SIDECAR_TO_APP}/24`, bAddress: `${APP}/24` });
    // Another private network of the sidecar's: allowed by default, not by --allow-from 10.99.1.0/24.
    const outsider = await createNamespace({ name: 'outsider' });
    await connectNamespaces(sidecar, outsider, { aAddress: `${SIDECAR_TO_OUTSIDER}/24`, bAddress: `${OUTSIDER}/24` });

    for (const transport of [[], ['+tcp'], []]) {
      expect((await digIn(outsider, SIDECAR_TO_OUTSIDER, 'zookeeper', transport)).status).toBe('REFUSED');
    }
    expect((await digIn(outsider, SIDECAR_TO_OUTSIDER, 'zk1.env1.skydns.local')).status).toBe('REFUSED');
    expect((await digIn(app, SIDECAR_TO_APP, 'zookeeper')).status).toBe('NOERROR');

    const refusal = await srvlink.waitForLog((l) => l.msg.startsWith('dns query refused'));
    expect(refusal).toMatchObject({ reason: 'notAllowed', client: OUTSIDER, name: 'zookeeper' });
    const metrics = await sidecar.exec('node', ['-e', `fetch('http://${ADMIN}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`]);
    expect(sample(metrics.stdout, 'srvlink_dns_queries_total', { listener: 'stub', type: 'A', rcode: 'REFUSED' })).toBe(4);
    expect(sample(metrics.stdout, 'srvlink_dns_queries_total', { listener: 'stub', type: 'A', rcode: 'NOERROR' })).toBe(1);
    // `srvlink status` inside the sidecar shows them too.
    const status = await sidecar.exec('node', [SRVLINK_MAIN, 'status', '--admin', ADMIN, '--json']);
    expect((JSON.parse(status.stdout) as { stub: { refused: number } }).stub.refused).toBeGreaterThanOrEqual(4);
  });
});
