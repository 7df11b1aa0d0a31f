import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatHostPort, parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { startDnsmasq } from '../helpers/dnsmasq.js';
import type { LogLine } from '../helpers/log-line.js';
import { spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { connectTcp, startEchoBackend, startNamedBackend, whoAnswers } from '../helpers/tcp-backends.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const DOMAIN = 'env1.skydns.local';

/** dnsmasq publishing `_NAME._tcp.env1.skydns.local` for each backend port (a cluster DNS we did not write). */
async function clusterDns(services: Record<string, number>): Promise<HostPort> {
  const names = Object.keys(services);
  const dnsmasq = await startDnsmasq({
    srv: names.map((name) => ({ name: `_${name}._tcp.${DOMAIN}`, target: `${name}-0.${DOMAIN}`, port: services[name] as number })),
    hosts: names.map((name) => ({ name: `${name}-0.${DOMAIN}`, address: '127.0.0.1' })),
  });
  return dnsmasq.address;
}

/** Write like an editor that saves to a new file and renames it over the old one. */
function replaceFile(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

function configText(dns: HostPort, maps: string[], extra = ''): string {
  return [`domain: ${DOMAIN}`, `cluster-dns: ["${formatHostPort(dns)}"]`, 'dns-listen: none', 'map:', ...maps.map((m) => `  - "${m}"`), extra].join('\n');
}

function listenerOf(proc: SrvlinkProcess, srvName: string, after = 0): Promise<HostPort> {
  return proc
    .waitForLog((l) => l.msg === 'listening' && l.srvName === `_${srvName}._tcp.${DOMAIN}.` && proc.logs.indexOf(l) >= after)
    .then((l) => parseHostPort(String(l.address), 'address'));
}

/**
 * A connection that keeps sending random chunks to an echo backend and
 * hashes what it sends and what comes back, until `finish()`.
 */
function streamThrough(socket: Socket): { sent: () => number; received: () => number; finish: () => Promise<{ sent: string; received: string; bytes: number }> } {
  const sentHash = createHash('sha256');
  const receivedHash = createHash('sha256');
  let sent = 0;
  let received = 0;
  let stopped = false;
  socket.on('data', (chunk: Buffer) => {
    receivedHash.update(chunk);
    received += chunk.length;
  });
  const ended = new Promise<void>((resolve, reject) => {
    socket.once('end', resolve);
    socket.once('error', reject);
  });
  const timer = setInterval(() => {
    if (stopped) return;
    const chunk = randomBytes(16 * 1024);
    sentHash.update(chunk);
    sent += chunk.length;
    socket.write(chunk);
  }, 10);
  return {
    sent: () => sent,
    received: () => received,
    finish: async () => {
      stopped = true;
      clearInterval(timer);
      socket.end();
      await ended;
      return { sent: sentHash.digest('hex'), received: receivedHash.digest('hex'), bytes: received };
    },
  };
}

async function connectionRefused(address: HostPort): Promise<string> {
  try {
    const socket = await connectTcp(address, 5000);
    socket.destroy();
    return 'connected';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

describe('srvlink run: live reload of the config file', () => {
  it('adds B and removes C while a connection on A keeps flowing, and refuses a broken rewrite', async () => {
    const echo = await startEchoBackend();
    const b = await startNamedBackend('b');
    const c = await startNamedBackend('c');
    const dns = await clusterDns({ alpha: echo.address.port, bravo: b.address.port, charlie: c.address.port });
    const file = join(tempDir(), 'srvlink.yaml');
    writeFileSync(file, configText(dns, ['127.0.0.1:0=alpha', '127.0.0.1:0=charlie']));
    const proc = spawnSrvlink(['run', '--config', file]);
    await proc.waitForLog((l) => l.msg === 'srvlink run ready');
    const alpha = await listenerOf(proc, 'alpha');
    const charlie = await listenerOf(proc, 'charlie');
    expect(await whoAnswers(charlie)).toBe('c');

    const stream = streamThrough(await connectTcp(alpha));
    // Bytes keep coming back on A: another 256 KiB echoed after each step.
    const flowing = async (): Promise<void> => {
      const before = stream.received();
      await waitFor(() => stream.received() >= before + 256 * 1024, { what: 'bytes to keep flowing on mapping A' });
    };
    await flowing();

    // Rewrite: B added, C removed, A unchanged.
    const mark = proc.logs.length;
    replaceFile(file, configText(dns, ['127.0.0.1:0=alpha', '127.0.0.1:0=bravo'], 'connect-timeout: 3s'));
    const reloaded = await proc.waitForLog((l) => l.msg === 'config reloaded' && proc.logs.indexOf(l) >= mark);
    expect(reloaded).toMatchObject({ trigger: 'file', kept: 1, failed: [], restartNeeded: [] });
    expect(reloaded.added).toEqual([expect.stringMatching(/=_bravo\._tcp\.env1\.skydns\.local\.$/)]);
    expect(reloaded.removed).toEqual([`${formatHostPort(charlie)}=_charlie._tcp.${DOMAIN}.`]);
    const bravo = await listenerOf(proc, 'bravo', mark);
    expect(await whoAnswers(bravo)).toBe('b');
    expect(await connectionRefused(charlie)).toBe('ECONNREFUSED');
    await flowing();

    // A broken rewrite (a typo in a key) is refused and named; A and B keep working.
    const badMark = proc.logs.length;
    writeFileSync(file, configText(dns, ['127.0.0.1:0=alpha'], 'conect-timeout: 1s'));
    const refused: LogLine = await proc.waitForLog((l) => l.msg === 'config reload refused, the running config stays' && proc.logs.indexOf(l) >= badMark);
    expect(refused).toMatchObject({ level: 'error', key: 'conect-timeout', file });
    expect(String(refused.error)).toContain(`unknown key "conect-timeout" in config file "${file}": did you mean "connect-timeout"?`);
    expect(await whoAnswers(bravo)).toBe('b');
    await flowing();

    const result = await stream.finish();
    expect(result.bytes).toBe(stream.sent());
    expect(result.received).toBe(result.sent);
    expect(result.bytes).toBeGreaterThan(3 * 256 * 1024);
    // Nothing but the refused rewrite was logged as an error: no connection dropped.
    expect(proc.logs.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual(['config reload refused, the running config stays']);
    expect(await proc.stop()).toBe(0);
  });

  it('reloads on SIGHUP, says which settings need a restart, and follows a ConfigMap symlink swap', async () => {
    const b = await startNamedBackend('b');
    const dns = await clusterDns({ bravo: b.address.port, delta: b.address.port });
    // A Kubernetes ConfigMap volume: srvlink.yaml → ..data/srvlink.yaml, ..data → a timestamped directory.
    const dir = tempDir();
    const version = (name: string, text: string): void => {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, 'srvlink.yaml'), text);
    };
    version('..2026_01', configText(dns, ['127.0.0.1:0=bravo']));
    symlinkSync('..2026_01', join(dir, '..data'));
    symlinkSync('..data/srvlink.yaml', join(dir, 'srvlink.yaml'));
    const proc = spawnSrvlink(['run', '--config', join(dir, 'srvlink.yaml')]);
    await proc.waitForLog((l) => l.msg === 'srvlink run ready');
    const bravo = await listenerOf(proc, 'bravo');

    // SIGHUP without a supervised command: read the file again (nothing changed: every mapping kept, backends re-resolved).
    proc.child.kill('SIGHUP');
    expect(await proc.waitForLog((l) => l.msg === 'config reloaded')).toMatchObject({ trigger: 'signal SIGHUP', kept: 1, added: [], removed: [] });
    expect(await whoAnswers(bravo)).toBe('b');

    // The kubelet's update: a new directory, a new ..data link renamed over the old one.
    const mark = proc.logs.length;
    version('..2026_02', configText(dns, ['127.0.0.1:0=bravo', '127.0.0.2:0=delta'], 'allow-from: ["10.0.0.0/8"]'));
    symlinkSync('..2026_02', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    const reloaded = await proc.waitForLog((l) => l.msg === 'config reloaded' && proc.logs.indexOf(l) >= mark);
    expect(reloaded).toMatchObject({ trigger: 'file', kept: 1, removed: [], restartNeeded: ['allow-from'] });
    expect(reloaded.added).toEqual([expect.stringMatching(/^127\.0\.0\.2:\d+=_delta\._tcp\.env1\.skydns\.local\.$/)]);
    const warning = await proc.waitForLog((l) => l.msg.startsWith('config changes that take effect only after a restart'));
    expect(warning).toMatchObject({ level: 'warn', settings: ['allow-from'] });
    const second = parseHostPort(String((reloaded.added as string[])[0]).split('=')[0] as string, 'address');
    expect(await whoAnswers(second)).toBe('b');
    expect(await whoAnswers(bravo)).toBe('b');
    expect(await proc.stop()).toBe(0);
  });
});
