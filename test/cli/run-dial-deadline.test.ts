import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { sample } from '../admin/admin-fixtures.js';
import { blackHole } from '../helpers/black-hole.js';
import { NETNS_UNAVAILABLE, createNamespace, type Namespace } from '../helpers/netns.js';
import { runSrvlink, spawnSrvlink } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';

const title = `srvlink run --dial-deadline${NETNS_UNAVAILABLE ? ` (skipped: ${NETNS_UNAVAILABLE})` : ''}`;

/** Connect from inside `ns`, send nothing, and report how long until srvlink closed the connection. */
async function timeToClose(ns: Namespace, address: HostPort): Promise<{ ms: number; bytes: number }> {
  const script = `
    const started = Date.now();
    let bytes = 0;
    const s = require('net').connect(${address.port}, '${address.host}');
    s.on('data', (d) => (bytes += d.length));
    s.on('error', () => undefined);
    s.on('close', () => console.log(JSON.stringify({ ms: Date.now() - started, bytes })));`;
  const result = await ns.exec('node', ['-e', script], { timeout: 60_000 });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as { ms: number; bytes: number };
}

async function metrics(ns: Namespace, admin: HostPort): Promise<string> {
  const result = await ns.exec('node', ['-e', `fetch('http://${admin.host}:${admin.port}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`]);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

describe.skipIf(NETNS_UNAVAILABLE !== undefined)(title, () => {
  it('closes a client within the deadline when every backend black-holes its SYNs, not after N × the connect timeout', async () => {
    const ns = await createNamespace();
    // Five backends whose connect hangs: without a deadline a client waits 5 × 2 s = 10 s.
    const { hosts } = await blackHole(ns, { subnet: 71, count: 5 });
    const config = join(tempDir(), 'srvlink.yaml');
    // The key from the config file, as a user would set it.
    writeFileSync(config, 'dial-deadline: 3s\nconnect-timeout: 2s\n');
    const proc = spawnSrvlink(
      [
        'run',
        '--config',
        config,
        '--domain',
        'env1.skydns.local',
        '--discovery',
        'static',
        '--map',
        '127.0.0.1:0=svc',
        '--backend',
        `svc=${hosts.map((h) => `${h}:5432`).join(',')}`,
        '--eject-after',
        '100',
        '--dns-listen',
        'none',
        '--admin',
        '127.0.0.1:0',
      ],
      { spawner: (command, args, env) => ns.spawn(command, args, { env }) },
    );
    const admin = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'admin endpoint listening')).address), 'admin');
    const ready = await proc.waitForLog((l) => l.msg === 'srvlink run ready');
    expect(ready.settings).toMatchObject({ connectTimeout: 2000, dialDeadline: 3000 });
    const listener = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'listening')).address), 'listener');

    const closed = await timeToClose(ns, listener);
    // It waited for the deadline (it did dial), and was closed well before 10 s (margin for a loaded machine).
    expect(closed.bytes).toBe(0);
    expect(closed.ms).toBeGreaterThanOrEqual(2900);
    expect(closed.ms).toBeLessThan(3000 + 4000);

    const line = await proc.waitForLog((l) => l.msg.includes('within the dial deadline'));
    expect(line).toMatchObject({ level: 'warn', dialDeadline: 3000, untried: 3 });
    expect(line.msg).toMatch(/^no backend of "_svc\._tcp\.env1\.skydns\.local\." answered within the dial deadline \(3000 ms; tried 10\.99\.71\.\d:5432: timed out after 2000 ms, 10\.99\.71\.\d:5432: timed out after \d+ ms; 3 not tried\)$/);
    const page = await metrics(ns, admin);
    const mapping = '_svc._tcp.env1.skydns.local.';
    expect(sample(page, 'srvlink_no_backend_closes_total', { mapping, reason: 'deadline' })).toBe(1);
    expect(sample(page, 'srvlink_no_backend_closes_total', { mapping, reason: 'unreachable' })).toBe(0);
    expect(sample(page, 'srvlink_connect_failures_total', { mapping })).toBe(2);
  });
});

describe('srvlink run --dial-deadline option', () => {
  it('is a flag, documented in --help, and refuses a bad duration', async () => {
    const help = await runSrvlink(['run', '--help']);
    expect(help.stdout).toMatch(/--dial-deadline <duration>\s+longest a client waits for a backend, all failovers included/);
    expect(help.stdout).toContain('(default: "5s"');
    const bad = await runSrvlink(['run', '--domain', 'env1.skydns.local', '--map', '2181=zk', '--dial-deadline', '0s']);
    expect(bad.code).toBe(2);
    expect(bad.messages).toContain('invalid --dial-deadline "0s": expected a duration above 0');
  });
});
