/**
 * `srvlink run --data-plane`: by default (auto) the native plane forwards
 * when the addon loads, its pairs holding pipes in the process; with the
 * addon removed srvlink says so in one line and forwards on the JS plane;
 * `--data-plane native` without the addon is a start-up error. The echo
 * behind it is socat.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { loadNativeAddon } from '../../src/core/native-addon.js';
import { startSocatServer } from '../helpers/socat-server.js';
import { runSrvlink, spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { connectTcp, echoRoundTrip, readAll } from '../helpers/tcp-backends.js';
import { waitFor } from '../helpers/wait-for.js';

const NO_ADDON = { SRVLINK_NATIVE_ADDON: '/nonexistent/srvlink_native.node' };
const addon = loadNativeAddon().addon;
const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');

function runArgs(backend: HostPort, extra: string[] = []): string[] {
  return ['run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--dns-listen', 'none', '--map', '127.0.0.1:0=svc', '--backend', `svc=${backend.host}:${backend.port}`, ...extra];
}

async function start(backend: HostPort, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ srvlink: SrvlinkProcess; address: HostPort; ready: Record<string, unknown> }> {
  const srvlink = spawnSrvlink(runArgs(backend, extra), { env });
  const listening = await srvlink.waitForLog((line) => line.msg === 'listening');
  const ready = await srvlink.waitForLog((line) => line.msg === 'srvlink run ready');
  return { srvlink, address: parseHostPort(String(listening.address), 'address'), ready: ready.settings as Record<string, unknown> };
}

/** Pipes the process holds open: a pair on the native plane holds two. */
function pipes(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('pipe:')) n++;
    } catch {
      // Closed meanwhile.
    }
  }
  return n;
}

async function carries(address: HostPort): Promise<void> {
  const socket = await connectTcp(address);
  const payload = randomBytes(2 * 1024 * 1024);
  const received = readAll(socket, 60_000);
  socket.end(payload);
  expect(sha256(await received)).toBe(sha256(payload));
}

describe('srvlink run --data-plane', () => {
  it('without the addon: one warning line, and forwarding on the JS plane intact', async () => {
    const { address: echo } = await startSocatServer('fork', 'PIPE', ['-t', '30']);
    const { srvlink, address, ready } = await start(echo, [], NO_ADDON);
    expect(ready.dataPlane).toBe('js');
    await carries(address);
    const warnings = srvlink.logs.filter((line) => line.level === 'warn');
    expect(warnings).toEqual([expect.objectContaining({ msg: 'forwarding on the JS data plane: the native one is not available', reason: expect.stringContaining('/nonexistent/srvlink_native.node') })]);
  });

  it('--data-plane native without the addon does not start, and says why', async () => {
    const run = await runSrvlink(runArgs({ host: '127.0.0.1', port: 1 }, ['--data-plane', 'native']), { env: NO_ADDON });
    expect(run.code).not.toBe(0);
    expect(run.messages).toContain('invalid --data-plane "native": no native addon at "/nonexistent/srvlink_native.node"');
  });

  it('refuses a plane it does not know, naming the choices', async () => {
    const run = await runSrvlink(runArgs({ host: '127.0.0.1', port: 1 }, ['--data-plane', 'fast']));
    expect(run.code).not.toBe(0);
    expect(run.messages).toContain('invalid --data-plane "fast": expected native, js or auto');
  });

  it('--data-plane js forwards in JavaScript, with no warning', async () => {
    const { address: echo } = await startSocatServer('fork', 'PIPE', ['-t', '30']);
    const { srvlink, address, ready } = await start(echo, ['--data-plane', 'js']);
    expect(ready.dataPlane).toBe('js');
    await carries(address);
    expect(srvlink.logs.filter((line) => line.level === 'warn')).toEqual([]);
  });

  it.skipIf(addon?.spliceAdd === undefined)('by default forwards on the native plane when the addon loads: an open pair holds its pipes', async () => {
    const { address: echo } = await startSocatServer('fork', 'PIPE', ['-t', '30']);
    const { srvlink, address, ready } = await start(echo);
    expect(ready.dataPlane).toBe('native');
    const pid = srvlink.child.pid as number;
    const before = pipes(pid);
    const socket = await connectTcp(address);
    await echoRoundTrip(socket, 'through the pipes');
    await waitFor(() => pipes(pid) >= before + 2, { what: 'the pair to hold two pipes' });
    socket.destroy();
    await carries(address);
    expect(srvlink.logs.filter((line) => line.level === 'warn')).toEqual([]);
  });

  it('is in --help', async () => {
    const run = await runSrvlink(['run', '--help']);
    expect(run.stdout).toMatch(/--data-plane <plane>\s+what moves forwarded bytes: native/);
  });
});
