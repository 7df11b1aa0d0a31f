/**
 * The artifact as a container's PID 1: run exactly as the base image's
 * ENTRYPOINT (`/srvlink/srvlink run --config FILE -- CMD...`) inside
 * `unshare --pid --net --mount --fork --mount-proc`, where srvlink is PID 1,
 * nothing else is, and the kernel gives it no default signal actions.
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { NETNS_UNAVAILABLE } from '../helpers/netns.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';
import { ensureArtifact, spawnPid1, type Pid1Process } from './artifact.js';

/** A config as /etc/srvlink.yaml would hold: one mapping, the stub on the namespace's own 127.0.0.1:53. */
function configFile(dir: string): string {
  const file = join(dir, 'srvlink.yaml');
  writeFileSync(
    file,
    ['domain: env1.skydns.local', 'discovery: static', 'map: ["2181=zookeeper"]', 'backend: ["zookeeper=127.0.0.1:31001"]', 'dns-listen: 127.0.0.1:53', ''].join('\n'),
  );
  return file;
}

/** Start the artifact as PID 1 with the app `command(dir)`; dir is a temp dir the app may write to. */
function runPid1(command: (dir: string) => string[], env: NodeJS.ProcessEnv = {}): { srvlink: Pid1Process; dir: string } {
  const dir = tempDir();
  const srvlink = spawnPid1(['run', '--config', configFile(dir), '--', ...command(dir)], { env });
  return { srvlink, dir };
}

/** Lines of a file an app appends to, [] before it exists. */
function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : [];
}

// Leaves five orphans (each subshell exits at once, its sleep is re-parented
// to PID 1), then reports the zombies its namespace's /proc shows once they
// have exited.
const ORPHANS = 'for i in 1 2 3 4 5; do (sleep 0.2 &); done; sleep 1.5; echo "zombies=$(grep -l "^State:[[:space:]]*Z" /proc/[0-9]*/status 2>/dev/null | wc -l)"';

describe.skipIf(NETNS_UNAVAILABLE !== undefined)(`the artifact as PID 1${NETNS_UNAVAILABLE ? ` (skipped: ${NETNS_UNAVAILABLE})` : ''}`, () => {
  beforeAll(() => ensureArtifact(), 300_000);

  it('reaps the orphans an app leaves behind: no zombie in the namespace', async () => {
    const { srvlink } = runPid1(() => ['sh', '-c', ORPHANS]);
    expect(await srvlink.exited).toBe(0);
    expect(srvlink.stdout()).toContain('zombies=0');
    expect(srvlink.logs.some((l) => l.msg === 'reaping orphaned zombies' && l.pid1 === true)).toBe(true);
  });

  it('without the native addon still runs the app, and says once at start that orphans stay zombies', async () => {
    const { srvlink } = runPid1(() => ['sh', '-c', ORPHANS], { SRVLINK_NATIVE_ADDON: '/nonexistent/srvlink_native.node' });
    expect(await srvlink.exited).toBe(0);
    // The same app now sees its five orphans as zombies: the check above can fail.
    expect(srvlink.stdout()).toContain('zombies=5');
    const warnings = srvlink.logs.filter((l) => l.msg.startsWith('orphaned zombies will not be reaped'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.reason).toContain('/nonexistent/srvlink_native.node');
  });

  it('passes SIGTERM to the app and exits with the code the app chose', async () => {
    const { srvlink, dir } = runPid1((dir) => ['sh', '-c', `trap 'echo TERM >> ${dir}/signals; exit 42' TERM; echo up > ${dir}/up; while :; do sleep 0.05; done`]);
    await waitFor(() => existsSync(join(dir, 'up')), { what: 'the app to start' });
    await srvlink.signal('SIGTERM');
    expect(await srvlink.exited).toBe(42);
    expect(lines(join(dir, 'signals'))).toEqual(['TERM']);
    expect(srvlink.logs.map((l) => l.msg)).toContain('stopping command');
  });

  it('exits with 137 when the app is killed by SIGKILL', async () => {
    const { srvlink } = runPid1(() => ['sh', '-c', 'kill -KILL $$']);
    expect(await srvlink.exited).toBe(137);
    expect(srvlink.logs.find((l) => l.msg === 'command exited')).toMatchObject({ signal: 'SIGKILL', status: 137 });
  });

  it('exits with 127 for a command that does not exist, naming it in one log line', async () => {
    const { srvlink } = runPid1(() => ['/nonexistent/app', '--flag']);
    expect(await srvlink.exited).toBe(127);
    const errors = srvlink.logs.filter((l) => l.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ msg: 'cannot run command', command: '/nonexistent/app', status: 127 });
  });

  it('exits with 126 for a file that is not executable', async () => {
    const dir = tempDir();
    const app = join(dir, 'app.sh');
    writeFileSync(app, '#!/bin/sh\necho never\n');
    chmodSync(app, 0o644);
    const srvlink = spawnPid1(['run', '--config', configFile(dir), '--', app]);
    expect(await srvlink.exited).toBe(126);
    expect(srvlink.logs.filter((l) => l.level === 'error')).toEqual([expect.objectContaining({ msg: 'cannot run command', command: app, status: 126 })]);
  });

  it('forwards SIGHUP and SIGUSR1 every time they arrive (three each), and keeps running', async () => {
    const { srvlink, dir } = runPid1((dir) => [
      'sh',
      '-c',
      `trap 'echo HUP >> ${dir}/signals' HUP; trap 'echo USR1 >> ${dir}/signals' USR1; trap 'exit 0' TERM; echo up > ${dir}/up; while :; do sleep 0.05; done`,
    ]);
    await waitFor(() => existsSync(join(dir, 'up')), { what: 'the app to start' });
    const expected: string[] = [];
    for (const signal of ['SIGHUP', 'SIGUSR1'] as const) {
      for (let i = 0; i < 3; i++) {
        await srvlink.signal(signal);
        expected.push(signal.slice(3));
        // One at a time: two equal signals pending at once are one (signal(7)).
        await waitFor(() => lines(join(dir, 'signals')).length === expected.length, { what: `${signal} #${i + 1} to reach the app` });
      }
    }
    expect(lines(join(dir, 'signals'))).toEqual(expected);
    // SIGUSR1 went to the app, not to Node's inspector.
    expect(srvlink.logs.some((l) => l.msg.includes('Debugger'))).toBe(false);
    await srvlink.signal('SIGTERM');
    expect(await srvlink.exited).toBe(0);
  });

  it('--stop-timeout: an app that ignores SIGTERM gets SIGKILL after the timeout, and srvlink exits 137', async () => {
    const dir = tempDir();
    const srvlink = spawnPid1(['run', '--config', configFile(dir), '--stop-timeout', '1s', '--', 'sh', '-c', `trap '' TERM; echo up > ${dir}/up; while :; do sleep 0.05; done`]);
    await waitFor(() => existsSync(join(dir, 'up')), { what: 'the app to start' });
    await srvlink.signal('SIGTERM');
    // Bounded: the timeout is 1 s; the upper bound is generous for a loaded machine.
    await waitFor(() => srvlink.child.exitCode !== null, { what: 'srvlink to exit after the stop timeout', timeout: 30_000 });
    expect(await srvlink.exited).toBe(137);
    expect(srvlink.logs.find((l) => l.msg === 'command did not stop in time: killing it')).toMatchObject({ stopTimeout: 1000 });
    expect(srvlink.logs.find((l) => l.msg === 'command exited')).toMatchObject({ signal: 'SIGKILL', status: 137 });
  });
});
