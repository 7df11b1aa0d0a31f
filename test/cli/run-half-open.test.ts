import { describe, expect, it } from 'vitest';
import { sample } from '../admin/admin-fixtures.js';
import { blackHole } from '../helpers/black-hole.js';
import { NETNS_UNAVAILABLE, createNamespace, startDnsmasqIn, type Namespace } from '../helpers/netns.js';
import { spawnSrvlink } from '../helpers/srvlink-process.js';
import { waitFor } from '../helpers/wait-for.js';

const title = `srvlink run: half-open probe of an ejected backend${NETNS_UNAVAILABLE ? ` (skipped: ${NETNS_UNAVAILABLE})` : ''}`;

const SRV = '_svc._tcp.env1.skydns.local';
const MAPPING = `${SRV}.`;
// Inside a namespace of our own: fixed ports are ours.
const LISTEN = 2181;
const ADMIN = 9053;
const DEAD_PORT = 7000;
const LIVE_PORT = 7001;
const CONNECT_TIMEOUT = 3000;

/** Start TCP servers inside `ns` that send their name and close: tells which backend a connection reached. */
async function startNamedServers(ns: Namespace, servers: { name: string; host: string; port: number }[]): Promise<void> {
  const script = `
    const net = require('net');
    let ready = 0;
    for (const { name, host, port } of ${JSON.stringify(servers)}) {
      net.createServer((s) => { s.on('error', () => undefined); s.end(name + '\\n'); }).listen(port, host, () => {
        if (++ready === ${servers.length}) console.log('ready');
      });
    }`;
  const child = ns.spawn('node', ['-e', script]);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
    void child.exited.then((code) => reject(new Error(`named servers exited with ${code}`)));
  });
}

/** `count` clients at once from inside `ns`: which backend each reached, and after how many ms, in the order they finished. */
async function parallelClients(ns: Namespace, count: number): Promise<{ name: string; ms: number }[]> {
  const script = `
    const net = require('net');
    const started = Date.now();
    const done = [];
    for (let i = 0; i < ${count}; i++) {
      const s = net.connect(${LISTEN}, '127.0.0.1');
      let data = '';
      s.on('data', (d) => (data += d));
      s.on('error', () => undefined);
      s.on('close', () => {
        done.push({ name: data.trim(), ms: Date.now() - started });
        if (done.length === ${count}) console.log(JSON.stringify(done));
      });
    }`;
  const result = await ns.exec('node', ['-e', script], { timeout: 60_000 });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as { name: string; ms: number }[];
}

async function adminGetInside(ns: Namespace, path: string): Promise<string> {
  const result = await ns.exec('node', ['-e', `fetch('http://127.0.0.1:${ADMIN}${path}').then((r) => r.text()).then((t) => process.stdout.write(t))`]);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

/** Wait until the backend at `address` is no longer ejected, as `/status` says. */
async function waitEjectionOver(ns: Namespace, address: string): Promise<void> {
  await waitFor(
    async () => {
      const status = JSON.parse(await adminGetInside(ns, '/status')) as { mappings: { backends: { address: string; ejectedUntil?: string }[] }[] };
      const entry = status.mappings[0]?.backends.find((b) => b.address === address);
      return entry !== undefined && entry.ejectedUntil === undefined;
    },
    { what: `the ejection of ${address} to run out`, timeout: 30_000 },
  );
}

describe.skipIf(NETNS_UNAVAILABLE !== undefined)(title, () => {
  it('after an ejection runs out, one connection probes the dead host and the others go straight to the live one; the probe re-ejects, then re-admits', async () => {
    const ns = await createNamespace();
    const { hosts } = await blackHole(ns, { subnet: 72, count: 1 });
    const deadHost = hosts[0] as string;
    const dead = `${deadHost}:${DEAD_PORT}`;
    await startNamedServers(ns, [{ name: 'live', host: '127.0.0.1', port: LIVE_PORT }]);
    // The dead host first (priority 1), the live one second: without a probe, every client would dial the dead one first.
    await startDnsmasqIn(ns, {
      srv: [
        { name: SRV, target: 'dead.env1.skydns.local', port: DEAD_PORT, priority: 1, weight: 10 },
        { name: SRV, target: 'live.env1.skydns.local', port: LIVE_PORT, priority: 2, weight: 10 },
      ],
      hosts: [
        { name: 'dead.env1.skydns.local', address: deadHost },
        { name: 'live.env1.skydns.local', address: '127.0.0.1' },
      ],
    });
    const proc = spawnSrvlink(
      [
        'run',
        '--domain',
        'env1.skydns.local',
        '--cluster-dns',
        '127.0.0.1:53',
        '--map',
        `127.0.0.1:${LISTEN}=svc`,
        '--connect-timeout',
        `${CONNECT_TIMEOUT}ms`,
        '--dial-deadline',
        '20s',
        '--eject-after',
        '1',
        '--eject-time',
        '1s',
        '--dns-listen',
        'none',
        '--admin',
        `127.0.0.1:${ADMIN}`,
      ],
      { spawner: (command, args, env) => ns.spawn(command, args, { env }) },
    );
    await proc.waitForLog((l) => l.msg === 'srvlink run ready');

    // One client finds the dead host out: it is ejected for 1 s, the client reaches the live one.
    expect((await parallelClients(ns, 1)).map((c) => c.name)).toEqual(['live']);
    const ejected = await proc.waitForLog((l) => l.msg.includes('ejected for 1000 ms'));
    // Named by address and by instance.
    expect(ejected).toMatchObject({ backend: dead, target: 'dead.env1.skydns.local', ejectMs: 1000 });
    expect(ejected.msg).toBe(`backend ${dead} (dead.env1.skydns.local) of "${MAPPING}" ejected for 1000 ms after 1 consecutive connect failure`);

    // Ejection over: 8 clients at once. One probes the dead host (and pays the connect timeout), the other 7 skip it.
    await waitEjectionOver(ns, dead);
    const clients = await parallelClients(ns, 8);
    expect(clients.map((c) => c.name)).toEqual(Array(8).fill('live'));
    const probe = clients[7] as { ms: number };
    expect(probe.ms).toBeGreaterThanOrEqual(CONNECT_TIMEOUT - 100);
    // The 7 others finished before the probe's connect timeout ran out (a generous bound: it is 3 s).
    expect(clients.slice(0, 7).every((c) => c.ms < CONNECT_TIMEOUT)).toBe(true);
    const reEjected = await proc.waitForLog((l) => l.msg.includes('after its probe failed'));
    // Backoff: twice as long.
    expect(reEjected).toMatchObject({ backend: dead, target: 'dead.env1.skydns.local', probe: true, ejectMs: 2000, ejections: 2 });
    let page = await adminGetInside(ns, '/metrics');
    expect(sample(page, 'srvlink_backend_probes_total', { mapping: MAPPING, outcome: 'failure' })).toBe(1);
    expect(sample(page, 'srvlink_backend_probes_total', { mapping: MAPPING, outcome: 'success' })).toBe(0);
    expect(sample(page, 'srvlink_backend_connect_failures_total', { mapping: MAPPING, backend: dead })).toBe(2);

    // The host comes back (its address is now local, a server listens): the next probe re-admits it.
    const up = await ns.exec('ip', ['address', 'add', `${deadHost}/32`, 'dev', 'lo']);
    expect(up.code, up.stderr).toBe(0);
    await startNamedServers(ns, [{ name: 'revived', host: deadHost, port: DEAD_PORT }]);
    await waitEjectionOver(ns, dead);
    const after = await parallelClients(ns, 8);
    expect(after.map((c) => c.name)).toContain('revived');
    const restored = await proc.waitForLog((l) => l.msg.includes('is reachable again'));
    expect(restored).toMatchObject({ backend: dead, target: 'dead.env1.skydns.local', probe: true, ejections: 2 });
    expect((await parallelClients(ns, 1)).map((c) => c.name)).toEqual(['revived']);
    page = await adminGetInside(ns, '/metrics');
    expect(sample(page, 'srvlink_backend_probes_total', { mapping: MAPPING, outcome: 'success' })).toBe(1);
    expect(sample(page, 'srvlink_backend_probes_total', { mapping: MAPPING, outcome: 'failure' })).toBe(1);
    expect(sample(page, 'srvlink_backend_ejected', { mapping: MAPPING, backend: dead })).toBe(0);
  });
});
