/**
 * The supervised child in `/status`, in `/metrics` and in `srvlink status`:
 * a real `sh` started by `srvlink run -- CMD`, seen while it runs and, once
 * it has exited, during the drain that follows.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AdminSnapshot } from '../../src/admin/admin-source.js';
import { formatHostPort, parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { runSrvlink, spawnSrvlink } from '../helpers/srvlink-process.js';
import { connectTcp, echoRoundTrip, startEchoBackend } from '../helpers/tcp-backends.js';
import { tempDir } from '../helpers/temp-dir.js';
import { adminGet, sample } from './admin-fixtures.js';

async function status(admin: HostPort): Promise<AdminSnapshot> {
  const res = await adminGet(admin, '/status');
  expect(res.status).toBe(200);
  return JSON.parse(res.body) as AdminSnapshot;
}

/** The parent pid of `pid`, from /proc/PID/stat (after the command name in parentheses). */
function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

describe('srvlink run -- CMD with --admin', () => {
  it('shows the child (pid, uptime, command) while it runs, and how it ended while srvlink drains', async () => {
    const backend = await startEchoBackend();
    const dir = tempDir();
    const fifo = join(dir, 'exit-now');
    execFileSync('mkfifo', [fifo]);
    // The app runs until the test writes to its FIFO, then exits 3.
    const script = `read line < ${fifo}; exit 3`;
    // The admin address by variable: anything after -- belongs to the command.
    const run = ['run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--dns-listen', 'none', '--map', '127.0.0.1:0=zookeeper'];
    const proc = spawnSrvlink([...run, '--backend', `zookeeper=${formatHostPort(backend.address)}`, '--drain-timeout', '1m', '--', 'sh', '-c', script], {
      env: { SRVLINK_ADMIN: '127.0.0.1:0' },
    });
    const admin = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'admin endpoint listening')).address), 'admin address');
    const listener = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'listening')).address), 'listener address');
    const started = await proc.waitForLog((l) => l.msg === 'command started');

    const running = (await status(admin)).child;
    expect(running).toMatchObject({ command: ['sh', '-c', script], state: 'running', pid: started.pid });
    expect(running?.exit).toBeUndefined();
    // The pid is the real process: an sh whose parent is srvlink.
    const pid = running?.pid as number;
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]).toBe('sh');
    expect(parentOf(pid)).toBe(proc.child.pid);
    expect(running?.uptime).toBeGreaterThan(0);
    expect((await status(admin)).child?.uptime).toBeGreaterThan(running?.uptime as number);
    const metrics = (await adminGet(admin, '/metrics')).body;
    expect(sample(metrics, 'srvlink_child_uptime_seconds', { pid: String(pid) })).toBeGreaterThan(0);

    const shown = await runSrvlink(['status', '--admin', formatHostPort(admin)]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`^child pid ${pid}, running, up [\\d.]+s: sh -c read line < \\S+; exit 3$`, 'm'));

    // An open connection keeps srvlink draining after the child has gone: the state it shows meanwhile.
    const socket = await connectTcp(listener);
    await echoRoundTrip(socket);
    writeFileSync(fifo, 'go\n');
    await proc.waitForLog((l) => l.msg === 'draining');
    const ended = (await status(admin)).child;
    expect(ended).toMatchObject({ state: 'exited', pid, exit: { code: 3, signal: null, status: 3 } });
    // Uptime stops at the exit.
    expect((await status(admin)).child?.uptime).toBe(ended?.uptime);
    expect(sample((await adminGet(admin, '/metrics')).body, 'srvlink_child_uptime_seconds')).toBeUndefined();
    const afterExit = await runSrvlink(['status', '--admin', formatHostPort(admin)]);
    expect(afterExit.stdout).toMatch(new RegExp(`^child pid ${pid}, EXITED after [\\d.]+s: exited with code 3 \\(srvlink exits 3 once drained\\): sh -c `, 'm'));

    socket.end();
    expect(await proc.exited).toBe(3);
  });
});
