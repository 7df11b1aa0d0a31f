import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { writeFileSync, renameSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { formatHostPort, parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { startDnsmasq, type DnsmasqSrv } from '../helpers/dnsmasq.js';
import { runSrvlink, spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { connectTcp, readAll, startEchoBackend, startNamedBackend, startTcpBackend, unusedPort, whoAnswers } from '../helpers/tcp-backends.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const SRV = '_zookeeper._tcp.env1.skydns.local';

/** SRV records for dnsmasq pointing at loopback backends, each target with an A record (glue). */
function srvFor(backends: { port: number; priority?: number; weight?: number }[]): { srv: DnsmasqSrv[]; hosts: { name: string; address: string }[] } {
  return {
    srv: backends.map((b, i) => ({ name: SRV, target: `zk${i}.env1.skydns.local`, port: b.port, priority: b.priority ?? 10, weight: b.weight ?? 10 })),
    hosts: backends.map((_, i) => ({ name: `zk${i}.env1.skydns.local`, address: '127.0.0.1' })),
  };
}

/** `srvlink run` mapping a free port to zookeeper, ready when its listener is. */
async function startRun(clusterDns: HostPort, extra: string[] = []): Promise<{ proc: SrvlinkProcess; address: HostPort }> {
  const proc = spawnSrvlink([
    'run',
    '--dns-listen',
    'none',
    '--domain',
    'env1.skydns.local',
    '--cluster-dns',
    formatHostPort(clusterDns),
    '--map',
    '127.0.0.1:0=zookeeper',
    '--dns-timeout',
    '300ms',
    '--connect-timeout',
    '2s',
    ...extra,
  ]);
  const line = await proc.waitForLog((l) => l.msg === 'listening');
  return { proc, address: parseHostPort(String(line.address), 'address') };
}

async function tally(address: HostPort, count: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const name = await whoAnswers(address);
    seen[name] = (seen[name] ?? 0) + 1;
  }
  return seen;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Send `payload`, half-close, and read everything the backend sends back until it ends. */
async function echoThrough(address: HostPort, payload: Buffer): Promise<Buffer> {
  const socket: Socket = await connectTcp(address);
  const reply = readAll(socket, 60_000);
  socket.end(payload);
  return reply;
}

describe('srvlink run against dnsmasq', () => {
  it('forwards 200 parallel connections of 1 MiB each, every byte echoed back intact', async () => {
    const echoes = await Promise.all([startEchoBackend(), startEchoBackend(), startEchoBackend()]);
    const dnsmasq = await startDnsmasq(srvFor(echoes.map((e) => ({ port: e.address.port }))));
    const { address } = await startRun(dnsmasq.address);
    const results = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const payload = randomBytes(1024 * 1024);
        const reply = await echoThrough(address, payload);
        return sha256(reply) === sha256(payload) && reply.length === payload.length;
      }),
    );
    expect(results.filter((ok) => !ok)).toHaveLength(0);
    // Load went to every backend of the tier.
    for (const echo of echoes) expect(echo.accepted).toBeGreaterThan(10);
  });

  it('propagates half-close: the client shuts its write side and still receives the rest', async () => {
    // This backend answers only once the client's FIN has reached it: the digest of all it got.
    const digestBackend = await startTcpBackend((socket) => {
      const hash = createHash('sha256');
      socket.on('data', (chunk: Buffer) => hash.update(chunk));
      socket.on('end', () => socket.end(hash.digest('hex')));
    });
    const dnsmasq = await startDnsmasq(srvFor([{ port: digestBackend.address.port }]));
    const { address } = await startRun(dnsmasq.address);
    const payload = randomBytes(256 * 1024);
    const reply = await echoThrough(address, payload);
    expect(reply.toString()).toBe(sha256(payload));
  });

  it('costs no client connection for a dead backend in the set, and ejects it', async () => {
    const live = await startNamedBackend('live');
    const dead = await unusedPort();
    const dnsmasq = await startDnsmasq(srvFor([{ port: live.address.port }, { port: dead }]));
    const { address, proc } = await startRun(dnsmasq.address);
    expect(await tally(address, 60)).toEqual({ live: 60 });
    // After 3 refusals in a row the dead backend is ejected (the default --eject-after).
    await proc.waitForLog((l) => /ejected/.test(l.msg) && String(l.msg).includes(`:${dead}`));
  });

  it('fails over by priority: priority 10 down, priority 20 takes the traffic', async () => {
    const primary = await startNamedBackend('primary');
    const backup = await startNamedBackend('backup');
    const dnsmasq = await startDnsmasq(srvFor([{ port: primary.address.port, priority: 10 }, { port: backup.address.port, priority: 20 }]));
    const { address } = await startRun(dnsmasq.address);
    expect(await tally(address, 20)).toEqual({ primary: 20 });
    await primary.close();
    expect(await tally(address, 20)).toEqual({ backup: 20 });
  });

  it('keeps working on the last good set while the cluster DNS is down', async () => {
    const backend = await startNamedBackend('zk');
    const dnsmasq = await startDnsmasq(srvFor([{ port: backend.address.port }]));
    const { address, proc } = await startRun(dnsmasq.address, ['--ttl-min', '200ms', '--ttl-max', '200ms']);
    expect(await whoAnswers(address)).toBe('zk');
    await dnsmasq.stop();
    await proc.waitForLog((l) => l.msg === 'backend set is stale: refreshing fails');
    expect(await tally(address, 10)).toEqual({ zk: 10 });
  });

  it('follows changed records within the clamped TTL (dnsmasq restarted with new ones)', async () => {
    const before = await startNamedBackend('before');
    const after = await startNamedBackend('after');
    const dnsmasq = await startDnsmasq(srvFor([{ port: before.address.port }]));
    const { address } = await startRun(dnsmasq.address, ['--ttl-min', '500ms', '--ttl-max', '1s']);
    expect(await whoAnswers(address)).toBe('before');
    await dnsmasq.stop();
    await startDnsmasq({ ...srvFor([{ port: after.address.port }]), listen: dnsmasq.address });
    await waitFor(async () => (await whoAnswers(address)) === 'after', { what: 'connections to reach the new backend' });
    // Followed for good: the old backend, still listening, gets no connection any more.
    expect(await tally(address, 10)).toEqual({ after: 10 });
  });
});

describe('srvlink run against srvlink dns', () => {
  it('spreads by weight, fails over by priority, and follows the records file', async () => {
    const alpha = await startNamedBackend('alpha');
    const beta = await startNamedBackend('beta');
    const gamma = await startNamedBackend('gamma');
    const key = '/skydns/local/skydns/env1/_tcp/_zookeeper';
    const file = join(tempDir(), 'records.yaml');
    const write = (lines: string[]): void => {
      writeFileSync(`${file}.new`, lines.join('\n'));
      renameSync(`${file}.new`, file);
    };
    write([
      `${key}/alpha: {host: 127.0.0.1, port: ${alpha.address.port}, weight: 75}`,
      `${key}/beta: {host: 127.0.0.1, port: ${beta.address.port}, weight: 25}`,
      `${key}/gamma: {host: 127.0.0.1, port: ${gamma.address.port}, priority: 20}`,
    ]);
    const dns = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--records', file]);
    const dnsAddress = parseHostPort(String((await dns.waitForLog((l) => l.msg === 'dns server listening')).address), 'address');
    const { address } = await startRun(dnsAddress, ['--ttl-min', '200ms', '--ttl-max', '500ms']);

    const shares = await tally(address, 400);
    expect(shares.gamma).toBeUndefined();
    // 75 % expected; wide bounds keep this from flaking while still telling 3:1 from 1:1.
    expect(shares.alpha ?? 0).toBeGreaterThan(250);
    expect(shares.beta ?? 0).toBeGreaterThan(50);

    await alpha.close();
    await beta.close();
    expect(await tally(address, 20)).toEqual({ gamma: 20 });

    const delta = await startNamedBackend('delta');
    write([`${key}/delta: {host: 127.0.0.1, port: ${delta.address.port}}`]);
    await dns.waitForLog((l) => l.msg === 'records file reloaded');
    await waitFor(async () => (await whoAnswers(address)) === 'delta', { what: 'connections to reach the new backend' });
  });
});

describe('srvlink run: lifecycle and usage', () => {
  it('drains on SIGTERM: stops accepting, lets the open connection finish, exits 0', async () => {
    const echo = await startEchoBackend();
    const proc = spawnSrvlink(['run', '--dns-listen', 'none', '--domain', 'env1.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=zookeeper', '--backend', `zookeeper=${formatHostPort(echo.address)}`]);
    const address = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'listening')).address), 'address');
    const open = await connectTcp(address);
    const reply = readAll(open);
    open.write('before ');
    proc.child.kill('SIGTERM');
    await proc.waitForLog((l) => l.msg === 'draining connections');
    await expect(connectTcp(address, 2000)).rejects.toThrow();
    open.end('after');
    expect((await reply).toString()).toBe('before after');
    expect(await proc.exited).toBe(0);
  });

  it('gives distinct loopback addresses to two mappings on one port', async () => {
    const echo = await startEchoBackend();
    const port = await unusedPort();
    const proc = spawnSrvlink([
      'run', '--dns-listen', 'none', '--domain', 'env1.skydns.local', '--discovery', 'static',
      '--map', `${port}=zookeeper`, '--map', `${port}=zookeeper.env2`,
      '--backend', `zookeeper=${formatHostPort(echo.address)}`, '--backend', `zookeeper.env2=${formatHostPort(echo.address)}`,
    ]);
    await proc.waitForLog((l) => l.msg === 'srvlink run ready');
    const addresses = proc.logs.filter((l) => l.msg === 'listening').map((l) => l.address);
    expect(addresses).toEqual([`127.0.0.1:${port}`, `127.0.0.2:${port}`]);
  });

  it('exits 1 with a clear message when a port is taken', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    onTestFinished(() => void taken.close());
    const port = (taken.address() as { port: number }).port;
    const result = await runSrvlink(['run', '--dns-listen', 'none', '--domain', 'env1.skydns.local', '--discovery', 'static', '--map', `${port}=zookeeper`, '--backend', 'zookeeper=127.0.0.1:1']);
    expect(result.messages).toContain(`cannot listen on "127.0.0.1:${port}": the port is already in use`);
    expect(result.code).toBe(1);
  });

  it.each([
    [['--map', 'zookeeper'], {}, 'invalid --map "zookeeper": expected [ADDR:]PORT=SERVICE'],
    [['--map', '99999=zookeeper'], {}, 'invalid port "99999" in --map "99999=zookeeper"'],
    [['--map', '2181=zoo_keeper'], {}, 'invalid --map "2181=zoo_keeper": invalid service "zoo_keeper"'],
    [['--map', '2181=zookeeper', '--connect-timeout', 'soon'], {}, 'invalid --connect-timeout "soon"'],
    [['--map', '2181=zookeeper', '--discovery', 'magic'], {}, 'invalid --discovery "magic": expected dns, etcd or static'],
    [['--map', '2181=zookeeper', '--frobnicate'], {}, "unknown option '--frobnicate'"],
    [[], { SRVLINK_MAP: '2181' }, 'invalid SRVLINK_MAP (for --map) "2181"'],
  ])('exits 2 for bad usage: %j %j', async (args, env, message) => {
    const result = await runSrvlink(['run', '--dns-listen', 'none', '--domain', 'env1.skydns.local', ...args], { env });
    expect(result.messages).toContain(message);
    expect(result.code).toBe(2);
  });

  it.each([
    ['bad_name:80', 'invalid --register "bad_name:80" service "bad_name": holds "_"'],
    ['web:80:instance=zk.1', 'invalid --register "web:80" instance "zk.1": holds "."'],
    ['web:80:host=not a host', 'invalid --register "web:80" host "not a host": expected an IP address or a host name'],
  ])('names a bad --register %j by the flag and the key typed, not by a flag run does not have', async (spec, message) => {
    const result = await runSrvlink(['run', '--dns-listen', 'none', '--domain', 'env1.skydns.local', '--map', '2181=zookeeper', '--etcd', 'http://127.0.0.1:1', '--register', spec]);
    expect(result.messages).toContain(message);
    expect(result.messages).not.toMatch(/--service|--instance|--host/);
    expect(result.code).toBe(2);
  });

  it('reads a config file, with flags winning, and names a bad key', async () => {
    const echo = await startEchoBackend();
    const dir = tempDir();
    const good = join(dir, 'srvlink.yaml');
    writeFileSync(good, `domain: env1.skydns.local\ndiscovery: static\nmap: ["127.0.0.1:0=zookeeper"]\nbackend:\n  zookeeper: ["${formatHostPort(echo.address)}"]\nconnect-timeout: 1s\n`);
    const proc = spawnSrvlink(['run', '--dns-listen', 'none', '--config', good, '--connect-timeout', '3s']);
    const address = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'listening')).address), 'address');
    const ready = await proc.waitForLog((l) => l.msg === 'srvlink run ready');
    expect(ready.settings).toMatchObject({ discovery: 'static', connectTimeout: 3000 });
    const socket = await connectTcp(address);
    const reply = readAll(socket);
    socket.end('hello');
    expect((await reply).toString()).toBe('hello');

    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'domain: env1.skydns.local\nmapping: ["2181=zookeeper"]\n');
    const result = await runSrvlink(['run', '--config', bad]);
    expect(result.messages).toContain(`unknown key "mapping" in config file "${bad}"`);
    expect(result.code).toBe(2);
  });

  it('takes log-format and log-level from the config file, and names the key of a bad value', async () => {
    const echo = await startEchoBackend();
    const dir = tempDir();
    const settings = `domain: env1.skydns.local\ndiscovery: static\nmap: ["127.0.0.1:0=zookeeper"]\nbackend: ["zookeeper=${formatHostPort(echo.address)}"]\n`;
    const file = join(dir, 'srvlink.yaml');
    writeFileSync(file, `${settings}log-format: text\nlog-level: debug\n`);
    const proc = spawnSrvlink(['run', '--dns-listen', 'none', '--config', file]);
    // Text lines are no JSON: the helper keeps them raw.
    const ready = await proc.waitForLog((l) => l.level === 'raw' && / INFO  srvlink run ready /.test(l.msg));
    expect(ready.msg).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z INFO  srvlink run ready domain=env1\.skydns\.local\. /);
    expect(proc.logs.some((l) => / DEBUG /.test(l.msg))).toBe(true);
    expect(proc.logs.filter((l) => l.level !== 'raw')).toEqual([]);
    expect(await proc.stop()).toBe(0);

    // A flag still wins over the file.
    const json = spawnSrvlink(['run', '--dns-listen', 'none', '--config', file, '--log-format', 'json']);
    expect(await json.waitForLog((l) => l.msg === 'srvlink run ready')).toMatchObject({ level: 'info' });

    writeFileSync(file, `${settings}log-format: yaml\n`);
    const bad = await runSrvlink(['run', '--dns-listen', 'none', '--config', file]);
    expect(bad.code).toBe(2);
    expect(bad.messages).toBe(`invalid key "log-format" in ${file} "yaml": expected one of json, text`);
  });

  it('explains itself in --help', async () => {
    const result = await runSrvlink(['run', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('--map <[addr:]port=service>');
    expect(result.stdout).toContain('Examples:');
  });
});
