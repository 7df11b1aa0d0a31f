import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Node modules the bundle requires on the first read of one of their exports (images/srvlink/bundle.mjs). */
const LAZY = ['crypto', 'perf_hooks', 'fs/promises'];

/**
 * `srvlink run` with one static mapping to `backend` and the stub on loopback, under a preload
 * that writes the node modules the process loaded (process.moduleLoadList) to a file as it exits.
 */
function startRun(backend: number): { srvlink: SrvlinkProcess; loaded: () => string[] } {
  const dir = tempDir();
  const preload = join(dir, 'module-list.cjs');
  const list = join(dir, 'modules.txt');
  writeFileSync(preload, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join('\\n')));\n`);
  const srvlink = spawnSrvlink(
    ['run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=web', '--backend', `web=127.0.0.1:${backend}`, '--dns-listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9'],
    { spawner: (command, args, env) => spawn('setpriv', ['--pdeathsig', 'KILL', '--', command, '--require', preload, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }) },
  );
  const loaded = (): string[] => readFileSync(list, 'utf8').split('\n').flatMap((entry) => (entry.startsWith('NativeModule ') ? [entry.slice('NativeModule '.length)] : []));
  return { srvlink, loaded };
}

async function echoServer(): Promise<number> {
  const server = createServer((socket) => socket.pipe(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

describe('the bundle loads node modules on first use', () => {
  it('an idle srvlink run with a static mapping and the stub loads none of them', async () => {
    const { srvlink, loaded } = startRun(await echoServer());
    await srvlink.waitForLog((l) => l.msg === 'srvlink run ready');
    expect(await srvlink.stop()).toBe(0);
    expect(loaded()).toContain('net');
    expect(loaded().filter((name) => LAZY.includes(name))).toEqual([]);
  });

  it('a forwarded connection loads perf_hooks, the forwarder clock, and goes through', async () => {
    const { srvlink, loaded } = startRun(await echoServer());
    const ready = await srvlink.waitForLog((l) => l.msg === 'srvlink run ready');
    const address = String((ready.listeners as string[])[0]).split('=')[0] as string;
    const client = createConnection({ host: '127.0.0.1', port: Number(address.slice(address.lastIndexOf(':') + 1)) });
    client.end('ping');
    const chunks: Buffer[] = [];
    for await (const chunk of client) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('ping');
    expect(await srvlink.stop()).toBe(0);
    expect(loaded()).toContain('perf_hooks');
  });
});
