/**
 * No descriptor leak in `srvlink run`, on either data plane: after a
 * warm-up (which fills the native plane's pool of pipes), 20,000 forwarded
 * connections ending every way a pair can end (clean FINs, a client reset,
 * a backend reset by a perl server that closes with SO_LINGER 0, the idle
 * timeout, and a drain cut short when a reload removes the mapping) leave
 * the process with the open descriptors it had before.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { DATA_PLANES } from '../helpers/data-planes.js';
import { openFds } from '../helpers/proc-stats.js';
import { spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { startEchoBackend } from '../helpers/tcp-backends.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const CONNECTIONS = 20_000;
const CONCURRENCY = 64;
const DOMAIN = 'env1.skydns.local';

/** A server we did not write: reads one byte of each connection, then resets it (SO_LINGER 0 and close). */
const PERL_RESETTER = `
use strict; use Socket; use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1024, ReuseAddr => 1) or die "listen: $!";
$| = 1; print $s->sockport, "\\n";
while (my $c = $s->accept) { my $b; sysread($c, $b, 1); setsockopt($c, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0)); close $c; }
`;

async function startResetter(): Promise<HostPort> {
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', 'perl', '-e', PERL_RESETTER], { stdio: ['ignore', 'pipe', 'inherit'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await waitFor(() => out.includes('\n') || child.exitCode !== null, { what: 'the perl server to listen' });
  return { host: '127.0.0.1', port: Number(out.trim()) };
}

type End = 'clean' | 'client-reset' | 'backend-reset' | 'idle';
const CYCLE: readonly End[] = ['clean', 'clean', 'client-reset', 'backend-reset', 'clean', 'client-reset', 'backend-reset', 'idle'];

/** One connection ended the way `end` says; resolves once its socket is closed, whatever happened. */
function oneConnection(address: HostPort, end: End): Promise<void> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ host: address.host, port: address.port, allowHalfOpen: true });
    const timer = setTimeout(() => socket.destroy(), 20_000);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('connect', () => {
      if (end === 'backend-reset') {
        socket.write('x');
        socket.resume();
        return;
      }
      socket.write('ping');
      let echoed = 0;
      socket.on('data', (chunk: Buffer) => {
        echoed += chunk.length;
        if (echoed < 4) return;
        if (end === 'clean') socket.end();
        else if (end === 'client-reset') socket.resetAndDestroy();
        // idle: wait for srvlink's idle timeout to close the pair.
      });
      socket.once('end', () => socket.destroy());
    });
  });
}

async function connections(count: number, target: (i: number) => { address: HostPort; end: End }): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) {
        const { address, end } = target(next++);
        await oneConnection(address, end);
      }
    }),
  );
}

/** Open descriptors once they stand still (pairs finishing on srvlink's side after the client saw the close). */
async function settledFds(pid: number, atMost?: number): Promise<number> {
  let last = -1;
  let same = 0;
  await waitFor(
    () => {
      const now = openFds(pid);
      same = now === last && (atMost === undefined || now <= atMost) ? same + 1 : 0;
      last = now;
      return same >= 3;
    },
    { what: `open descriptors of srvlink to settle${atMost === undefined ? '' : ` at ${atMost} or fewer`}`, interval: 200, timeout: 30_000 },
  );
  return last;
}

function listenerOf(proc: SrvlinkProcess, service: string, after = 0): Promise<HostPort> {
  return proc
    .waitForLog((l) => l.msg === 'listening' && l.srvName === `_${service}._tcp.${DOMAIN}.` && proc.logs.indexOf(l) >= after)
    .then((l) => parseHostPort(String(l.address), 'address'));
}

describe.each(DATA_PLANES)('srvlink run on the $name data plane', ({ name, skip }) => {
  // A time bound of its own: a loaded machine forwards a few hundred of these connections a second.
  it.skipIf(skip !== undefined)(`leaves no descriptor behind after ${CONNECTIONS} connections ended every way (clean, reset either side, idle, drain)`, async () => {
    const echo = await startEchoBackend();
    const resetter = await startResetter();
    const dir = tempDir();
    const file = join(dir, 'srvlink.yaml');
    const config = (withDrain: boolean): string =>
      [
        `domain: ${DOMAIN}`,
        'discovery: static',
        'dns-listen: none',
        `data-plane: ${name}`,
        'idle-timeout: 300ms',
        'drain-timeout: 200ms',
        'map:',
        '  - "127.0.0.1:0=echo"',
        '  - "127.0.0.1:0=resetter"',
        ...(withDrain ? ['  - "127.0.0.1:0=drained"'] : []),
        'backend:',
        `  echo: ["127.0.0.1:${echo.address.port}"]`,
        `  resetter: ["127.0.0.1:${resetter.port}"]`,
        ...(withDrain ? [`  drained: ["127.0.0.1:${echo.address.port}"]`] : []),
      ].join('\n');
    writeFileSync(file, config(true));
    const srvlink = spawnSrvlink(['run', '--config', file]);
    const [echoAt, resetterAt, drainedAt] = await Promise.all([listenerOf(srvlink, 'echo'), listenerOf(srvlink, 'resetter'), listenerOf(srvlink, 'drained')]);
    const pid = srvlink.child.pid as number;
    const target = (i: number): { address: HostPort; end: End } => {
      const end = CYCLE[i % CYCLE.length] as End;
      return { address: end === 'backend-reset' ? resetterAt : echoAt, end };
    };
    // Warm-up: the pool of pipes fills, Node's and the plane's lazily made descriptors are there.
    await connections(400, target);
    const baseline = await settledFds(pid);

    await connections(CONNECTIONS, target);
    // A drain cut short: pairs still open when a reload removes their mapping are reset after drain-timeout.
    const open = await Promise.all(
      Array.from({ length: 32 }, () => {
        const socket = connect({ host: drainedAt.host, port: drainedAt.port, allowHalfOpen: true });
        socket.on('error', () => undefined);
        onTestFinished(() => void socket.destroy());
        return new Promise<Socket>((resolve) => socket.once('data', () => resolve(socket)).write('hold'));
      }),
    );
    const closed = Promise.all(open.map((socket) => new Promise<void>((resolve) => (socket.closed ? resolve() : socket.once('close', () => resolve())))));
    writeFileSync(file, config(false));
    srvlink.child.kill('SIGHUP');
    await closed;
    // And back: the mapping listens again, as at the baseline.
    const marker = srvlink.logs.length;
    writeFileSync(file, config(true));
    srvlink.child.kill('SIGHUP');
    await listenerOf(srvlink, 'drained', marker);

    const after = await settledFds(pid, baseline);
    expect(after).toBe(baseline);
    expect(srvlink.logs.filter((l) => l.level === 'error')).toEqual([]);
  }, 240_000);
});
