/**
 * SIGUSR1 with `run -- CMD --access-log FILE`: the signal belongs to the
 * command (it is forwarded, and the access log does not take it too); the
 * log follows a rotation by itself, when the file is moved away, and also
 * where no file watch can be made.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatHostPort, parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { spawnSrvlink } from '../helpers/srvlink-process.js';
import { connectTcp, echoRoundTrip, startEchoBackend, waitClosed } from '../helpers/tcp-backends.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : [];
}

/** One connection through `listener`, closed by us: one access-log line once srvlink has seen the close. */
async function oneConnection(listener: HostPort): Promise<void> {
  const socket = await connectTcp(listener);
  await echoRoundTrip(socket);
  socket.end();
  await waitClosed(socket);
}

describe('srvlink run --access-log FILE -- CMD', () => {
  it('passes SIGUSR1 to the command only, and reopens the log when the file is moved away', async () => {
    const backend = await startEchoBackend();
    const dir = tempDir();
    const logFile = join(dir, 'access.log');
    const acks = join(dir, 'signals');
    const app = `trap 'echo USR1 >> ${acks}' USR1; trap 'exit 0' TERM; while :; do sleep 0.05; done`;
    const proc = spawnSrvlink([
      'run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--dns-listen', 'none', '--map', '127.0.0.1:0=zookeeper',
      '--backend', `zookeeper=${formatHostPort(backend.address)}`, '--access-log', logFile, '--', 'sh', '-c', app,
    ]);
    const listener = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'listening')).address), 'listener');
    expect(await proc.waitForLog((l) => l.msg === 'access log open')).toMatchObject({ file: logFile, reopen: 'when moved or deleted (SIGUSR1 goes to the command)' });
    await proc.waitForLog((l) => l.msg === 'command started');

    await oneConnection(listener);
    await waitFor(() => lines(logFile).length === 1, { what: 'the first access-log line' });
    // Each SIGUSR1 reaches the app (it acknowledges every one) and leaves the log as it is.
    for (let i = 1; i <= 3; i++) {
      proc.child.kill('SIGUSR1');
      await waitFor(() => lines(acks).length === i, { what: `SIGUSR1 #${i} to reach the app` });
    }
    await oneConnection(listener);
    await waitFor(() => lines(logFile).length === 2, { what: 'the second access-log line' });

    // logrotate's `create`: the file is moved away; srvlink notices and writes to a new one.
    const rotated = join(dir, 'access.log.1');
    renameSync(logFile, rotated);
    await proc.waitForLog((l) => l.msg === 'access log reopened');
    await oneConnection(listener);
    await waitFor(() => lines(logFile).length === 1, { what: 'a line in the new file' });
    expect(lines(rotated)).toHaveLength(2);
    // One reopen, the move's: none for the three signals.
    expect(proc.logs.filter((l) => l.msg === 'access log reopened')).toHaveLength(1);
    expect(lines(acks)).toEqual(['USR1', 'USR1', 'USR1']);
    expect(await proc.stop('SIGTERM')).toBe(0);
  });

  it('follows a rotation without any file watch: with no inotify instance to be had, it checks the file instead and says so', async () => {
    const backend = await startEchoBackend();
    const logFile = join(tempDir(), 'access.log');
    // A user namespace of its own whose inotify instances are all taken (the limit is 0), as on a
    // machine where other processes hold them all; setpriv twice: srvlink dies with this worker.
    const noInotify = (command: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess =>
      spawn(
        'setpriv',
        ['--pdeathsig', 'KILL', '--', 'unshare', '--user', '--map-root-user', 'sh', '-c', 'echo 0 > /proc/sys/user/max_inotify_instances && exec setpriv --pdeathsig KILL -- "$@"', 'sh', command, ...args],
        { env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
    const proc = spawnSrvlink(
      ['run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--dns-listen', 'none', '--map', '127.0.0.1:0=zookeeper', '--backend', `zookeeper=${formatHostPort(backend.address)}`, '--access-log', logFile],
      { spawner: noInotify },
    );
    const listener = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'listening')).address), 'listener');
    expect((await proc.waitForLog((l) => l.level === 'warn' && /cannot watch access log/.test(l.msg))).msg).toMatch(/checking it every 1000 ms instead/);
    await oneConnection(listener);
    await waitFor(() => lines(logFile).length === 1, { what: 'the first access-log line' });
    rmSync(logFile);
    await proc.waitForLog((l) => l.msg === 'access log reopened');
    await oneConnection(listener);
    await waitFor(() => lines(logFile).length === 1, { what: 'a line in the new file' });
    expect(await proc.stop('SIGTERM')).toBe(0);
  });
});
