import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatHostPort, parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { dig } from '../helpers/dig.js';
import { startDnsmasq } from '../helpers/dnsmasq.js';
import { freePort } from '../helpers/free-port.js';
import { RUN_DATA_PLANES } from '../helpers/run-data-planes.js';
import { startSocatServer } from '../helpers/socat-server.js';
import { runSrvlink } from '../helpers/srvlink-process.js';
import { connectTcp, readAll, startEchoBackend, startTcpBackend, unusedPort } from '../helpers/tcp-backends.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';
import { adminGet, sample, spawnWithAdmin, startPrometheus } from './admin-fixtures.js';

const SRV = '_zookeeper._tcp.env1.skydns.local.';

/** Send `payload`, half-close, read the echo to the end. */
async function echo(address: HostPort, payload: Buffer): Promise<Buffer> {
  const socket = await connectTcp(address);
  const reply = readAll(socket);
  socket.end(payload);
  return reply;
}

/** `srvlink run` with one mapping to `backend`, static discovery, no stub. */
function staticRun(backend: HostPort): string[] {
  return ['run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--dns-listen', 'none', '--map', '127.0.0.1:0=zookeeper', '--backend', `zookeeper=${formatHostPort(backend)}`];
}

/** `promtool check metrics` (Prometheus's own linter) on `page`: its complaints, empty when it accepts. */
async function promtoolCheck(page: string): Promise<string> {
  const child = execFile('promtool', ['check', 'metrics']);
  child.stdin?.end(page);
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return code === 0 ? '' : out || `exit ${code}`;
}

describe('srvlink run --admin', () => {
  it('counts connections, failed dials, the ejection, NXDOMAIN and cache hits; status shows the failover order; one access-log line per connection, reopened on SIGUSR1', async () => {
    const live = await startEchoBackend();
    const dead = await unusedPort();
    // The dead backend is tried first (priority 10): every connection fails over until it is ejected.
    const dnsmasq = await startDnsmasq({
      srv: [
        { name: SRV.slice(0, -1), target: 'dead.env1.skydns.local', port: dead, priority: 10, weight: 10 },
        { name: SRV.slice(0, -1), target: 'live.env1.skydns.local', port: live.address.port, priority: 20, weight: 10 },
      ],
      hosts: [
        { name: 'dead.env1.skydns.local', address: '127.0.0.1' },
        { name: 'live.env1.skydns.local', address: '127.0.0.1' },
      ],
      localZones: ['skydns.local'],
      ttl: 60,
    });
    const logFile = join(tempDir(), 'access.log');
    const { proc, admin, listeners } = await spawnWithAdmin([
      'run',
      '--domain',
      'env1.skydns.local',
      '--cluster-dns',
      formatHostPort(dnsmasq.address),
      '--dns-listen',
      '127.0.0.1:0',
      '--upstream',
      formatHostPort(dnsmasq.address),
      '--map',
      '127.0.0.1:0=zookeeper',
      '--eject-after',
      '3',
      '--eject-time',
      '10m',
      '--access-log',
      logFile,
    ]);
    const listener = listeners[0] as HostPort;
    const sizes = [10, 2000, 1, 65_536, 300, 7];
    for (const size of sizes) {
      const payload = randomBytes(size);
      expect((await echo(listener, payload)).equals(payload)).toBe(true);
    }

    const stub = { host: '127.0.0.1', port: Number(String((await proc.waitForLog((l) => l.msg === 'dns stub listening')).address).split(':')[1]) };
    expect((await dig(stub, 'missing.env1.skydns.local', 'A')).status).toBe('NXDOMAIN');
    expect((await dig(stub, 'live.env1.skydns.local', 'A')).status).toBe('NOERROR');
    expect((await dig(stub, 'live.env1.skydns.local', 'A')).status).toBe('NOERROR');

    const page = (await adminGet(admin, '/metrics')).body;
    const mapping = { mapping: SRV };
    expect(sample(page, 'srvlink_connections_accepted_total', mapping)).toBe(sizes.length);
    expect(sample(page, 'srvlink_connections_forwarded_total', mapping)).toBe(sizes.length);
    expect(sample(page, 'srvlink_connections_failed_total', mapping)).toBe(0);
    // Three refusals in a row eject the dead backend; later connections skip it.
    expect(sample(page, 'srvlink_backend_connect_failures_total', { ...mapping, backend: `127.0.0.1:${dead}` })).toBe(3);
    expect(sample(page, 'srvlink_failovers_total', mapping)).toBe(3);
    expect(sample(page, 'srvlink_ejections_total', mapping)).toBe(1);
    expect(sample(page, 'srvlink_backend_ejected', { ...mapping, backend: `127.0.0.1:${dead}` })).toBe(1);
    expect(sample(page, 'srvlink_backend_connections_total', { ...mapping, backend: `127.0.0.1:${live.address.port}` })).toBe(sizes.length);
    const total = sizes.reduce((a, b) => a + b, 0);
    expect(sample(page, 'srvlink_received_bytes_total', mapping)).toBe(total);
    expect(sample(page, 'srvlink_sent_bytes_total', mapping)).toBe(total);
    expect(sample(page, 'srvlink_dial_duration_seconds_count', mapping)).toBe(sizes.length);
    expect(sample(page, 'srvlink_dns_queries_total', { listener: 'stub', type: 'A', rcode: 'NXDOMAIN' })).toBe(1);
    expect(sample(page, 'srvlink_dns_cache_hits_total', { listener: 'stub' })).toBeGreaterThanOrEqual(1);
    expect(sample(page, 'srvlink_dns_upstream_duration_seconds_count', { upstream: formatHostPort(dnsmasq.address), role: 'discovery' })).toBeGreaterThanOrEqual(1);
    expect(sample(page, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    // Never a client address as a label.
    expect(page).not.toMatch(/client="/);
    expect(await promtoolCheck(page)).toBe('');

    // `srvlink status`: the dead backend first (priority 10), ejected; the live one after it.
    const status = await runSrvlink(['status', '--admin', formatHostPort(admin)]);
    expect(status.code).toBe(0);
    const rows = status.stdout.split('\n').filter((line) => /^\s+\d+\s+127\.0\.0\.1:/.test(line));
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(new RegExp(`^\\s+1\\s+127\\.0\\.0\\.1:${dead}\\s.*\\b10\\s+10\\s+EJECTED for`));
    expect(rows[1]).toMatch(new RegExp(`^\\s+2\\s+127\\.0\\.0\\.1:${live.address.port}\\s.*\\b20\\s+10\\s+up`));
    const json = JSON.parse((await runSrvlink(['status', '--admin', formatHostPort(admin), '--json'])).stdout) as { mappings: { backends: { address: string; ejectedUntil?: string }[] }[] };
    expect(json.mappings[0]?.backends.map((b) => [b.address, b.ejectedUntil !== undefined])).toEqual([
      [`127.0.0.1:${dead}`, true],
      [`127.0.0.1:${live.address.port}`, false],
    ]);

    // The access log: one line per connection, the backend chosen, what was tried, the bytes.
    await waitFor(() => readFileSync(logFile, 'utf8').split('\n').filter(Boolean).length === sizes.length, { what: 'an access-log line per connection' });
    const lines = readFileSync(logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.backend, l.bytesIn, l.bytesOut, l.outcome, l.mapping])).toEqual(sizes.map((size) => [`127.0.0.1:${live.address.port}`, size, size, 'closed', SRV]));
    expect(lines.map((l) => (l.tried as string[]).length)).toEqual([1, 1, 1, 0, 0, 0]);
    expect(String(lines[0]?.client)).toMatch(/^127\.0\.0\.1:\d+$/);

    // Log rotation: the file is moved away, SIGUSR1 reopens the path.
    renameSync(logFile, `${logFile}.1`);
    proc.child.kill('SIGUSR1');
    await proc.waitForLog((l) => l.msg === 'access log reopened');
    const payload = randomBytes(123);
    expect((await echo(listener, payload)).equals(payload)).toBe(true);
    await waitFor(() => readFileSync(logFile, 'utf8').includes('"bytesIn":123'), { what: 'the next line in the reopened file' });
    expect(readFileSync(`${logFile}.1`, 'utf8').split('\n').filter(Boolean)).toHaveLength(sizes.length);
    expect(await proc.stop()).toBe(0);
  });

  it('/readyz is 503 while a mapping has no backends and 200 once the cluster DNS answers', async () => {
    const backend = await startEchoBackend();
    const dnsPort = await freePort();
    const clusterDns = { host: '127.0.0.1', port: dnsPort };
    const { admin } = await spawnWithAdmin([
      'run',
      '--domain',
      'env1.skydns.local',
      '--cluster-dns',
      formatHostPort(clusterDns),
      '--dns-listen',
      'none',
      '--map',
      '127.0.0.1:0=zookeeper',
      '--dns-timeout',
      '200ms',
      '--ttl-min',
      '200ms',
    ]);
    const before = await adminGet(admin, '/readyz');
    expect(before.status).toBe(503);
    const verdict = JSON.parse(before.body) as { ready: boolean; missing: string[] };
    expect(verdict.ready).toBe(false);
    expect(verdict.missing.join('\n')).toContain(SRV);
    expect((await adminGet(admin, '/healthz')).status).toBe(200);

    await startDnsmasq({
      srv: [{ name: SRV.slice(0, -1), target: 'zk.env1.skydns.local', port: backend.address.port, priority: 10, weight: 10 }],
      hosts: [{ name: 'zk.env1.skydns.local', address: '127.0.0.1' }],
      listen: clusterDns,
    });
    await waitFor(async () => (await adminGet(admin, '/readyz')).status === 200, { what: '/readyz to turn 200' });
    const page = (await adminGet(admin, '/metrics')).body;
    expect(sample(page, 'srvlink_backend_set_refresh_failures_total', { mapping: SRV })).toBeGreaterThanOrEqual(1);
    expect(sample(page, 'srvlink_dns_upstream_failures_total', { upstream: formatHostPort(clusterDns), role: 'discovery' })).toBeGreaterThanOrEqual(1);
    expect(sample(page, 'srvlink_backend_set_usable', { mapping: SRV })).toBe(1);
  });

  it('is scraped by a real Prometheus while traffic flows: up == 1 and the connection counter equals the connections made', async () => {
    const backend = await startEchoBackend();
    const { admin, listeners } = await spawnWithAdmin([
      ...staticRun(backend.address),
    ]);
    const prometheus = await startPrometheus([admin]);
    const listener = listeners[0] as HostPort;
    let made = 0;
    const connect = async (): Promise<void> => {
      const payload = randomBytes(64);
      expect((await echo(listener, payload)).equals(payload)).toBe(true);
      made++;
    };
    // Traffic before, during and after the first scrapes.
    for (let i = 0; i < 5; i++) await connect();
    await waitFor(async () => (await prometheus.query('up{job="srvlink"}'))[0]?.value[1] === '1', { what: 'prometheus to scrape srvlink', timeout: 60_000, interval: 200 });
    for (let i = 0; i < 15; i++) await connect();
    const expr = `srvlink_connections_accepted_total{job="srvlink",mapping="${SRV}"}`;
    await waitFor(async () => (await prometheus.query(expr))[0]?.value[1] === String(made), {
      what: `prometheus to see ${made} connections`,
      timeout: 60_000,
      interval: 200,
    });
    expect((await prometheus.query('up{job="srvlink"}'))[0]?.value[1]).toBe('1');
    expect(made).toBe(20);
    // Prometheus parsed the whole page (it asks for OpenMetrics first), not just the counter.
    expect(Number((await prometheus.query('scrape_samples_scraped{job="srvlink"}'))[0]?.value[1])).toBeGreaterThan(50);
  });

  it('keeps answering under a connection flood on a mapping (separate limits)', async () => {
    // A backend that accepts and never answers: every forwarded connection stays open.
    const silent = await startTcpBackend(() => undefined);
    const { admin, listeners } = await spawnWithAdmin([
      ...staticRun(silent.address),
      '--max-conns',
      '100',
    ]);
    const listener = listeners[0] as HostPort;
    const flood = await Promise.all(Array.from({ length: 400 }, () => connectTcp(listener).catch(() => undefined)));
    try {
      await waitFor(async () => (sample((await adminGet(admin, '/metrics')).body, 'srvlink_connections_rejected_total', { mapping: SRV }) ?? 0) > 0, {
        what: 'connections over --max-conns to be rejected',
      });
      for (let i = 0; i < 5; i++) {
        expect((await adminGet(admin, '/healthz')).status).toBe(200);
        const page = (await adminGet(admin, '/metrics')).body;
        expect(sample(page, 'srvlink_connections_active', { mapping: SRV })).toBe(100);
      }
      expect((await adminGet(admin, '/status')).status).toBe(200);
    } finally {
      for (const socket of flood) socket?.destroy();
    }
  });

  it.each(RUN_DATA_PLANES)('on the $name data plane: its pairs, pipes and the bytes it copied for want of a pipe, or no such series', async (plane) => {
    if (plane.skip !== undefined) return;
    // socat hands what it reads to sleep, which reads nothing: every pair keeps bytes in flight towards it.
    const { address: backend } = await startSocatServer('fork', 'EXEC:sleep 60');
    // 1,024 descriptors: 16 pipes (the fewest the native plane opens), fewer than the 24 directions with bytes to move.
    const prlimit = (command: string, args: string[], env: NodeJS.ProcessEnv): ReturnType<typeof spawn> =>
      spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'prlimit', '--nofile=1024', command, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const { admin, listeners } = await spawnWithAdmin([...staticRun(backend), ...plane.args], {}, prlimit);
    const clients = await Promise.all(Array.from({ length: 24 }, () => connectTcp(listeners[0] as HostPort)));
    try {
      // More than the kernel's buffers towards the stalled backend hold: every direction keeps bytes to move.
      const bulk = randomBytes(16 * 1024 * 1024);
      for (const client of clients) client.write(bulk);
      const metric = async (name: string): Promise<number | undefined> => sample((await adminGet(admin, '/metrics')).body, name, { plane: 'native' });
      if (plane.name === 'js') {
        await waitFor(async () => sample((await adminGet(admin, '/metrics')).body, 'srvlink_connections_active', { mapping: SRV }) === 24, { what: '24 pairs' });
        const page = (await adminGet(admin, '/metrics')).body;
        expect(page).not.toMatch(/^srvlink_data_plane_/m);
        return;
      }
      await waitFor(async () => (await metric('srvlink_data_plane_pairs')) === 24, { what: '24 pairs on the native plane' });
      await waitFor(async () => ((await metric('srvlink_data_plane_copied_bytes_total')) ?? 0) > 0, { what: 'bytes copied for want of a pipe' });
      const page = (await adminGet(admin, '/metrics')).body;
      expect(sample(page, 'srvlink_data_plane_pipes_max', { plane: 'native' })).toBe(16);
      expect(sample(page, 'srvlink_data_plane_pipes_open', { plane: 'native' })).toBeLessThanOrEqual(16);
      expect(sample(page, 'srvlink_data_plane_pipe_bytes', { plane: 'native' })).toBeGreaterThan(0);
      expect(await promtoolCheck(page)).toBe('');
    } finally {
      for (const client of clients) client.destroy();
    }
  });

  it('exits 1 with one line when the admin port is taken, and `srvlink status` exits 1 when nothing answers', async () => {
    const taken = await startTcpBackend(() => undefined);
    const result = await runSrvlink(
      ['run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--dns-listen', 'none', '--map', '127.0.0.1:0=zookeeper', '--backend', 'zookeeper=127.0.0.1:1'],
      { env: { SRVLINK_ADMIN: formatHostPort(taken.address) } },
    );
    expect(result.code).toBe(1);
    expect(result.lines).toContainEqual(expect.objectContaining({ msg: `cannot listen on "${formatHostPort(taken.address)}": the port is already in use`, code: 'ERR_LISTEN' }));
    const nobody = await unusedPort();
    const status = await runSrvlink(['status', '--admin', `127.0.0.1:${nobody}`]);
    expect(status.code).toBe(1);
    expect(status.lines.map((l) => l.msg)).toEqual([`cannot get the status of "127.0.0.1:${nobody}": nothing listens there (is srvlink running with --admin?)`]);
  });
});

describe('srvlink dns --admin', () => {
  it('counts replies by rcode and type, and serves /readyz', async () => {
    const { admin, proc } = await spawnWithAdmin(['dns', '--listen', '127.0.0.1:0']);
    const server = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'dns server listening')).address), 'dns address');
    expect((await dig(server, 'nothing.env1.skydns.local', 'SRV')).status).toBe('NXDOMAIN');
    expect((await dig(server, '_zookeeper._tcp.env1.skydns.local', 'SRV')).status).toBe('NOERROR');
    const page = (await adminGet(admin, '/metrics')).body;
    expect(sample(page, 'srvlink_dns_queries_total', { listener: 'dns', type: 'SRV', rcode: 'NXDOMAIN' })).toBe(1);
    expect(sample(page, 'srvlink_dns_queries_total', { listener: 'dns', type: 'SRV', rcode: 'NOERROR' })).toBe(1);
    expect((await adminGet(admin, '/readyz')).status).toBe(200);
  });
});
